"""Run packs as Ray tasks (a local instance or a cluster) or serially in-process.

The only module that imports Ray. Every pack is submitted at once; results are consumed with
`ray.wait` as packs finish, so the driver logs finished packs while others still train.
Training is deterministic, so a task whose worker died is simply run again (`max_retries`).
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable, Iterable, Mapping

import ray

from sweeps.data import Dataset
from sweeps.plan import Pack
from sweeps.training import VariantResult, train_pack

# NumPy's BLAS gets one thread per Ray worker: the workers themselves fill the cores.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MAX_RETRIES = 3
POLL_SECONDS = 0.5  # how often the driver wakes to notice Ctrl-C / SIGTERM while waiting

OnDone = Callable[[Pack, list[VariantResult]], None]
OnFailed = Callable[[Pack, str], None]


def init_ray(address: str | None = None) -> bool:
    """Join the Ray cluster at `address`, or start a local instance when it is None.

    Returns True when this call connected (the caller then shuts Ray down), False when Ray
    was already initialized in this process (a test session, a notebook).
    """
    if ray.is_initialized():
        return False
    common = dict(runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
    if address:
        check_reachable(address)
        ray.init(address=address, **common)
    else:
        # "local" always starts a fresh instance instead of joining one found in /tmp/ray.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, **common)
    return True


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at a `host:port` (or `ray://host:port`) Ray address.

    Ray itself waits minutes for an unreachable cluster; `auto` and other forms are left to it.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"no Ray cluster answers at {address}: {error}") from None


def shutdown_ray() -> None:
    ray.shutdown()


def worker_count(executor: str) -> int:
    """How many packs can train at once."""
    if executor == "serial":
        return 1
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@ray.remote(max_retries=MAX_RETRIES)
def _train_pack_task(pack: Pack, dataset: Dataset) -> tuple[list[VariantResult], str]:
    """Ray task: train one pack; returns its results and the node it ran on."""
    return train_pack(pack, dataset), ray.get_runtime_context().get_node_id()


def _describe_error(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def run_serial(packs: Iterable[Pack], datasets: Mapping[str, Dataset],
               on_done: OnDone, on_failed: OnFailed) -> None:
    """Train the packs one after another in this process (debugging, equivalence tests)."""
    for pack in packs:
        try:
            results = train_pack(pack, datasets[pack.data_key])
        except Exception as error:  # a bad pack must not lose the others' results
            on_failed(pack, _describe_error(error))
            continue
        on_done(pack, results)


def run_ray(packs: Iterable[Pack], datasets: Mapping[str, Dataset],
            on_done: OnDone, on_failed: OnFailed) -> dict[str, int]:
    """Train the packs as Ray tasks; returns how many packs ran on each node id.

    On any interruption (KeyboardInterrupt, a signal turned into an exception) the tasks
    still outstanding are cancelled before the exception propagates.
    """
    packs = list(packs)
    needed = {pack.data_key for pack in packs}
    data_refs = {key: ray.put(datasets[key]) for key in needed}  # placed once, shared by tasks
    pending = {_train_pack_task.remote(pack, data_refs[pack.data_key]): pack for pack in packs}
    nodes: dict[str, int] = {}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                pack = pending.pop(ref)
                try:
                    results, node = ray.get(ref)
                except Exception as error:  # RayTaskError, WorkerCrashedError after retries
                    on_failed(pack, _describe_error(error))
                    continue
                nodes[node] = nodes.get(node, 0) + 1
                on_done(pack, results)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return nodes
