"""Shared pieces for the `sweeps run` tests: small sweep files, store queries, drivers started
as processes, process lookup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import child_runs, wait_for  # noqa: F401 - the tests import them from here
from tests.processes import spawn
from tests.sweep_files import write_sweep  # noqa: F401 - the tests import it from here


# A fresh local Ray instance, then a first pack on a loaded 2-core machine: minutes, not seconds.
START_TIMEOUT = 360.0


@dataclass
class Driver:
    """A `sweeps` process started by a test, its output in files (a pipe that nobody reads
    while the test waits fills up and blocks the process)."""

    popen: subprocess.Popen
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def name(self) -> str:
        return self.stdout.stem

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def tail(self) -> str:
        return self.stderr.read_text(errors="replace")[-3000:]

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the process to exit: (exit code, what it wrote to stderr)."""
        code = self.popen.wait(timeout)
        return code, self.stderr.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process group (the driver and anything it started in it)."""
        if self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()


def sweeps_command(*args: str, cwd: Path, name: str = "sweeps", **spawn_options) -> Driver:
    """Start `sweeps ...` as its own process group with SIGINT and SIGTERM at their defaults,
    like a terminal's shell would, however the test session was started (tests/processes.py).
    Its output goes to cwd/<name>.out and cwd/<name>.err."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    stdout, stderr = cwd / f"{name}.out", cwd / f"{name}.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        popen = spawn([sys.executable, "-m", "sweeps", *args], cwd=cwd, env=env,
                      stdin=subprocess.DEVNULL, stdout=out, stderr=err, **spawn_options)
    return Driver(popen, stdout, stderr)


def pack_task_pids() -> list[int]:
    """PIDs of this process's Ray workers currently running a pack (Ray sets their process
    title). Only descendants of this process: the machine is shared, and a worker of another
    user's Ray (a benchmark, another test run) must never be the one a test kills."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"ray::_train_pack_task") and _descends_from_us(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _descends_from_us(pid: int) -> bool:
    """Whether this process is among pid's ancestors (the local Ray node this process started
    spawns its workers)."""
    while pid > 1:
        if pid == os.getpid():
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])     # the field after the state: ppid
    return False


def assert_logged_once(tracking_uri: str, experiment: str, before: Mapping[str, str],
                       total: int) -> list[str]:
    """A resumed sweep's children: `total` variants, each FINISHED once, and every run logged
    `before` ({variant key: run id}) kept as it was. Returns the variant keys."""
    children = child_runs(tracking_uri, experiment)
    keys = [r.data.tags["sweep.variant_key"] for r in children]
    assert len(keys) == len(set(keys)) == total
    assert {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        key = run.data.tags["sweep.variant_key"]
        assert before.get(key, run.info.run_id) == run.info.run_id
    return keys
