"""Sweeps for the cluster tests: small files on the article's data, drivers run as processes,
and what a sweep left in MLflow, read back over HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.cluster.native_stack import BIN, HERE, NativeStack, Proc
from tests.helpers import child_runs as _child_runs, wait_for
from tests.sweep_files import write_sweep_file

# 4 learning rates x 3 initializers x 4 seeds = 48 variants sharing one network shape: the
# planner splits them into 8 packs of 6 for the cluster's 2 CPUs, so both nodes get packs and a
# pack is still training when the first ones are logged (the moment faults are injected at).
PARAMETERS = {
    "train.lr": [0.05, 0.1, 0.5, 1.0],
    "model.init": ["uniform01", "xavier_normal", "he_normal"],
    "seed": [0, 1, 2, 3],
}
VARIANTS = 48
PACK_TASK = "_train_pack_task"       # the Ray task that trains one pack (sweeps.execution.execute)
# Packs must outlast the start of a worker process on the second node (a second or more on a
# busy machine), or the head node's warm worker takes every pack before the other node joins in.
SWEEP_EPOCHS = 20000                 # ~1 s per pack
FAULT_EPOCHS = 60000                 # ~3 s per pack: long enough to inject a fault mid-sweep
SWEEP_TIMEOUT = 300.0


def write_sweep(directory: Path, name: str, epochs: int = SWEEP_EPOCHS) -> Path:
    return write_sweep_file(directory, name, PARAMETERS, epochs=epochs, log_every=500)


def variant_keys(path: Path) -> set[str]:
    from sweeps.spec.sweep import load_sweep

    keys = {variant.key for variant in load_sweep(path).variants}
    assert len(keys) == VARIANTS
    return keys


def start_sweeps(stack: NativeStack, args: list[str], cwd: Path, name: str) -> Proc:
    """`sweeps <args>` as a process of its own, with the cluster's environment (and what a
    driver writing straight to the database needs)."""
    return Proc(name, [str(BIN / "sweeps"), *args], cwd / f"{name}.log", stack.driver_env(),
                cwd=cwd)


def start_run_sweep(stack: NativeStack, sweep: Path, address: str, cwd: Path,
                    name: str = "run_sweep") -> Proc:
    """`sweeps.run.run_sweep(...)` in a process of its own (see run_sweep_driver.py), writing
    to the server's database in bulk while the server serves the UI, as docker-compose.yml's
    sweep service does."""
    argv = [sys.executable, str(HERE / "run_sweep_driver.py"), str(sweep), stack.store_uri,
            address, str(cwd / "out"), str(cwd / "result")]
    return Proc(name, argv, cwd / f"{name}.log", stack.driver_env(), cwd=cwd)


def finish(proc: Proc, timeout: float = SWEEP_TIMEOUT) -> int:
    """Wait for a driver to exit; its return code. On timeout it is stopped and the test fails."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.stop()
        raise AssertionError(f"{proc.name} still running after {timeout:.0f} s\n{proc.tail(60)}")


def run_sweeps(stack: NativeStack, args: list[str], cwd: Path, name: str) -> tuple[int, str]:
    """`sweeps <args>` to completion: (exit code, everything it printed)."""
    proc = start_sweeps(stack, args, cwd, name)
    code = finish(proc)
    return code, proc.log_path.read_text(errors="replace")


# ---------------------------------------------------------------------------------------------
# What MLflow holds
# ---------------------------------------------------------------------------------------------

def mlflow_client(stack: NativeStack):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.tracking_uri)


def child_runs(stack: NativeStack, experiment: str) -> list:
    """The sweep's active (not deleted) variant runs, any status."""
    return _child_runs(stack.tracking_uri, experiment)


def finished_children(stack: NativeStack, experiment: str) -> int:
    return sum(run.info.status == "FINISHED" for run in child_runs(stack, experiment))


def assert_each_variant_logged_once(stack: NativeStack, experiment: str, keys: set[str]) -> None:
    """Exactly one FINISHED child per variant, and no other child left behind."""
    runs = child_runs(stack, experiment)
    statuses = Counter(run.info.status for run in runs)
    assert statuses == {"FINISHED": len(keys)}, f"child runs by status: {dict(statuses)}"
    per_key = Counter(run.data.tags["sweep.variant_key"] for run in runs)
    assert set(per_key) == keys, "variants missing or unknown"
    assert max(per_key.values()) == 1, [key for key, n in per_key.items() if n > 1]


def wait_for_finished_children(stack: NativeStack, experiment: str, driver: Proc,
                               at_least: int = 1) -> int:
    """Wait until the sweep has logged `at_least` variants (its first packs are done)."""
    return wait_for(f"{at_least} finished child runs in {experiment}",
                    lambda: (n := finished_children(stack, experiment)) >= at_least and n,
                    timeout=SWEEP_TIMEOUT, watch=(driver,), interval=0.3)


# ---------------------------------------------------------------------------------------------
# What Ray ran
# ---------------------------------------------------------------------------------------------

def pack_task_ids(stack: NativeStack) -> set[str]:
    return {task["task_id"] for task in stack.ray.tasks(PACK_TASK)}


def new_pack_tasks(stack: NativeStack, before: set[str]) -> list[dict]:
    """Attempts of pack tasks submitted since `before` was taken (every attempt of each)."""
    return [task for task in stack.ray.tasks(PACK_TASK) if task["task_id"] not in before]


def finished_nodes(tasks: list[dict]) -> Counter:
    """node id -> finished pack attempts."""
    return Counter(task["node_id"] for task in tasks if task["state"] == "FINISHED")
