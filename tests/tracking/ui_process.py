"""`sweeps ui` as a user starts it: a child process, its printed address, its server's processes.

The child starts in its own session with SIGINT, SIGTERM and SIGHUP at their default
disposition, so a signal test gives the same answer however the suite was launched (a
terminal, CI, `nohup`, a background job that inherited SIGINT ignored).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sweeps.tracking import ui

URL = re.compile(r"MLflow UI: (http://\S+)")


def group_members(group: int) -> dict[int, str]:
    """Live (not zombie) processes of process group `group`: pid -> command line."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:            # it ended while we looked
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
        if int(pgrp) == group and state not in ("Z", "X"):
            members[int(entry.name)] = command
    return members


def _default_signals() -> None:      # runs in the child before exec
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class SweepsUi:
    """A running `sweeps ui <args>`; its output is collected as it comes."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sweeps.cli", "ui", *args], cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, preexec_fn=_default_signals, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.server_group: int | None = None

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_url(self, timeout: float) -> str:
        """The runs address `sweeps ui` prints once the server answers."""
        deadline = time.monotonic() + timeout
        while True:
            found = URL.search(self.output)
            if found:
                self.server_group = self._server_pid()
                return found.group(1)
            if self.process.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"sweeps ui exited with {self.process.returncode}:\n"
                                     f"{self.output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweeps ui printed no address within {timeout:.0f} s:\n"
                                   f"{self.output}")
            time.sleep(0.2)    # poll interval while the server starts

    def _server_pid(self) -> int:
        """The `mlflow server` child: leader of its own process group."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, f"expected one mlflow server child, found {children}"
        server = int(children[0])
        assert os.getpgid(server) == server, "mlflow server is not leader of its own group"
        return server

    def stop(self, signum: int, timeout: float) -> int:
        """Send `signum` to `sweeps ui` (not its group: as `kill` or a service manager would);
        its exit status."""
        self.process.send_signal(signum)
        returncode = self.process.wait(timeout)
        self._reader.join(5)
        return returncode

    def kill_all(self) -> None:
        """Clean-up after a failed test: whatever is left of both groups."""
        for group in (self.process.pid, self.server_group):
            if group is not None and group_members(group):
                os.killpg(group, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> "SweepsUi":
        return self

    def __exit__(self, *exc) -> None:
        self.kill_all()
