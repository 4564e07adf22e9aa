"""Shared pieces for the `sweeps run` tests: small sweep files, store queries, process lookup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlflow import MlflowClient

from tests.sweep_files import write_sweep_file


def write_sweep(directory: Path, name: str = "small", epochs: int = 2000,
                lrs: Sequence[float] = (0.1, 0.5), seeds: Iterable[int] = (0, 1, 2),
                **options) -> Path:
    """A grid on the article's data: len(lrs) x 2 hidden sizes x len(seeds) variants."""
    parameters = {"train.lr": list(lrs), "model.hidden": [2, 4], "seed": list(seeds)}
    return write_sweep_file(directory, name, parameters, epochs=epochs, **options)


def child_runs(tracking_uri: str, experiment: str, status: str | None = None) -> list:
    """Every active child run of the experiment (paged), optionally with one status."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    query = "tags.`sweep.role` = 'variant'"
    if status:
        query += f" and attributes.status = '{status}'"
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def sweeps_command(*args: str, cwd: Path, **popen) -> subprocess.Popen:
    """Start `sweeps ...` as its own process group, like a user's shell would."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps", *args], cwd=cwd, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def wait_for(condition, timeout: float, what: str, poll: float = 0.2):
    """Poll `condition()` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def pack_task_pids() -> list[int]:
    """PIDs of Ray workers currently running a pack (Ray sets their process title)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"ray::_train_pack_task"):
            pids.append(int(entry.name))
    return pids
