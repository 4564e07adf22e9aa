"""Run packs as Ray tasks (a local instance or a cluster) or serially in-process.

The only module that runs Ray tasks (`sweeps.execution.submit` hands whole sweeps to Ray's job API).
Every pack is submitted at once; results are consumed with `ray.wait` as packs finish, so the
driver logs finished packs while others still train.
Training is deterministic, so a task whose worker died is simply run again (`max_retries`).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import ray
from ray._private import parameter as ray_parameter
from ray._private import ray_constants

from sweeps.spec.data import Dataset
from sweeps.records import Pack
from sweeps.execution.training import VariantResult, train_pack

# NumPy's BLAS gets one thread per Ray worker: the workers themselves fill the cores.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MAX_RETRIES = 3
RAYLET_START_WAIT_S = "120"
LOOPBACK = "127.0.0.1"
LOOPBACK_SWITCH = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR  # "0": a single-machine, loopback node
POLL_SECONDS = 0.5  # how often the driver wakes to notice Ctrl-C / SIGTERM while waiting
# Ray warns at every local start that it enabled token authentication; for an instance this
# process starts and owns on loopback that is noise. The setting itself is kept as Ray makes it.
TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"

OnDone = Callable[[Pack, list[VariantResult]], None]
OnFailed = Callable[[Pack, str], None]


def init_ray(address: str | None = None) -> bool:
    """Join the Ray cluster at `address`, or start a local instance when it is None.

    Returns True when this call connected (the caller then shuts Ray down), False when Ray
    was already initialized in this process (a test session, a notebook).
    """
    if ray.is_initialized():
        return False
    if address:
        check_ray_address(address)
        # Workers on other machines get the thread limits through the job's runtime_env.
        ray.init(address=address, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
    else:
        start_local_ray()
    return True


def start_local_ray(num_cpus: int | None = None) -> None:
    """Start a fresh local Ray instance whose workers run with WORKER_ENV.

    The workers inherit the raylet's environment, which is this process's while Ray starts.
    That lets the first tasks use the workers Ray starts ahead; a runtime_env would make them
    wait ~1.5 s for new ones. This process's own environment is restored afterwards.
    """
    # On a busy machine the raylet's agents can take longer to register than Ray's default
    # 30 s, and the node then dies while starting; a user's own value wins.
    # Ray's single-machine switch keeps the node and every process it spawns on the loopback
    # (otherwise Ray registers and binds the machine's outward address).
    start_env = {**WORKER_ENV, LOOPBACK_SWITCH: "0", "RAY_raylet_start_wait_time_s":
                 os.environ.get("RAY_raylet_start_wait_time_s", RAYLET_START_WAIT_S)}
    saved = {name: os.environ.get(name) for name in start_env}
    os.environ.update(start_env)
    auth_logger, quiet = logging.getLogger(TOKEN_AUTH_LOGGER), _DropTokenAuthNotice()
    auth_logger.addFilter(quiet)
    # This process read the switch when it first imported Ray (a test session or a notebook
    # may have done so before): the constant is set for this start only.
    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    # ray.init has no arguments for these: the node's parameters made so for this start only.
    params, ray_parameter.RayParams = ray_parameter.RayParams, _LocalNodeParams
    try:
        # "local" always starts a fresh instance instead of joining one found in /tmp/ray.
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(),
                 include_dashboard=False, log_to_driver=False)
    finally:
        ray_parameter.RayParams = params
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
        auth_logger.removeFilter(quiet)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _LocalNodeParams(ray_parameter.RayParams):
    """A local node's parameters without what a sweep's own instance never uses, each of
    which cost its start time on a busy machine (ray.init takes none of them):

    - the dashboard agent listens on any free port, not Ray's fixed 52365: while another
      Ray instance runs on the machine (another sweep, a test session) the agent failed to
      bind it, retried for ~3.3 s, and the raylet waited for it before the node came up.
      That port serves `ray job submit`, which `sweeps submit` uses on clusters started with
      `ray start`, never on this instance; 0 is Ray's own "pick one"
      (`ray start --dashboard-agent-listen-port 0`);
    - no log monitor: it streams workers' output to the driver, which `log_to_driver=False`
      turns away anyway (workers still write their log files);
    - no autoscaler monitor: a local node has a fixed size.

    The two processes left out are Python processes that import Ray while the node starts
    (~0.7 s of the start at a load of ~5 on 2 cores, 3 pairs alternated).
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("dashboard_agent_listen_port", 0)
        kwargs.setdefault("include_log_monitor", False)
        kwargs.setdefault("no_monitor", True)
        super().__init__(*args, **kwargs)


class _DropTokenAuthNotice(logging.Filter):
    """Drops Ray's "Token authentication is enabled for this Ray cluster" notice, only that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


def check_ray_address(address: str, timeout: float = 5.0) -> None:
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


class RayConnection:
    """Ray as one sweep uses it: shuts down, once, only what `init_ray` started here."""

    def __init__(self, address: str | None = None) -> None:
        self.owned = init_ray(address)
        self._closing: threading.Thread | None = None

    def close_soon(self) -> None:
        """Start shutting down in the background: every pack is in, the driver still logs."""
        if self.owned and self._closing is None:
            self._closing = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
            self._closing.start()

    def close(self) -> None:
        """Shut down (or wait for `close_soon` to finish)."""
        if self.owned:
            self.close_soon()
            self._closing.join()


def worker_count(executor: str) -> int:
    """How many packs can train at once."""
    if executor == "serial":
        return 1
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@ray.remote(max_retries=MAX_RETRIES)
def _train_pack_task(pack: Pack, dataset: Dataset, writer=None) -> tuple[object, str]:
    """Ray task: train one pack; returns its results (or what `writer.write` made of them:
    the pack's children written where it trained) and the node it ran on."""
    results = train_pack(pack, dataset)
    if writer is not None:
        results = writer.write(pack, dataset, results)
    return results, ray.get_runtime_context().get_node_id()


@ray.remote(max_retries=MAX_RETRIES, num_cpus=0)
def _write_task(writer, datasets: Mapping[str, Dataset], variants: list, results: list):
    """Ray task: write finished variants' children (`PackWriter.write_variants`). It holds no
    CPU: the driver waits on it while the next round's packs fill every core."""
    return writer.write_variants(datasets, variants, results)


def submit_writes(writer, datasets: Mapping[str, Dataset],
                  batches: list[tuple[list, list]]) -> Callable[[], list]:
    """Submit one write task per (variants, results) batch, each one transaction; returns
    wait(), which gives each batch's outcome in order (``Written``, or ``Unwritten`` when the
    task failed after Ray's retries: the driver writes those)."""
    from sweeps.tracking.pack_writer import Unwritten

    needed = {v.data_key for variants, _ in batches for v in variants}
    data = ray.put({key: datasets[key] for key in needed if key in datasets})
    refs = [_write_task.remote(writer, data, variants, results) for variants, results in batches]

    def wait() -> list:
        outcomes = []
        for ref, (_, results) in zip(refs, batches):
            try:   # deep copies: arrays of ray.get are views of Ray's object store
                outcomes.append(copy.deepcopy(ray.get(ref)))
            except Exception as error:  # noqa: BLE001 - RayTaskError, WorkerCrashedError
                outcomes.append(Unwritten(results, _describe_error(error)))
        return outcomes

    return wait


def _describe_error(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def _fetch(ref: "ray.ObjectRef", pack: Pack,
           nodes: dict[str, int]) -> tuple[Pack, list[VariantResult] | None, str]:
    """(pack, results, "") or (pack, None, error) of a finished task, counted in `nodes`.

    The results are deep copies: arrays `ray.get` returns are views of Ray's object store,
    which must not outlive Ray (`run_ray` lets it shut down while the driver still logs).
    """
    try:
        results, node = ray.get(ref)
    except Exception as error:  # RayTaskError, WorkerCrashedError after retries
        return pack, None, _describe_error(error)
    nodes[node] = nodes.get(node, 0) + 1
    return pack, copy.deepcopy(results), ""


def run_serial(packs: Iterable[Pack], datasets: Mapping[str, Dataset],
               on_done: OnDone, on_failed: OnFailed,
               on_submitted: Callable[[], None] | None = None) -> None:
    """Train the packs one after another in this process (debugging, equivalence tests).

    on_submitted : called before the first pack trains (as `run_ray` calls it).
    """
    if on_submitted is not None:
        on_submitted()
    for pack in packs:
        try:
            results = train_pack(pack, datasets[pack.data_key])
        except Exception as error:  # a bad pack must not lose the others' results
            on_failed(pack, _describe_error(error))
            continue
        on_done(pack, results)


def run_ray(packs: Iterable[Pack], datasets: Mapping[str, Dataset],
            on_done: OnDone, on_failed: OnFailed,
            on_all_trained: Callable[[], None] | None = None,
            cancel_on_interrupt: bool = True,
            on_submitted: Callable[[], None] | None = None,
            writer=None) -> dict[str, int]:
    """Train the packs as Ray tasks; returns how many packs ran on each node id.

    `writer` (picklable, with ``write(pack, dataset, results)``) runs in the worker after
    training, and `on_done` gets what it returns instead of the results.

    `on_submitted` is called once every task is submitted, before the first wait: the
    driver's own work (logging what an earlier round decided) then overlaps the training.

    Finished packs are fetched as soon as they are ready and handed to `on_done` one at a
    time, so a slow `on_done` (logging) never holds results in the cluster. Once every pack
    is fetched, `on_all_trained` is called (Ray is no longer needed) before the backlog is
    handed over. On any interruption (KeyboardInterrupt, a signal turned into an exception)
    the tasks still outstanding are cancelled before the exception propagates, unless
    `cancel_on_interrupt` is False: a caller about to shut Ray down or disconnect needs no
    cancel (Ray ends a departing driver's tasks), and Ray 2.60 can abort the driver when a
    cancel races a task's completion ("Tried to complete task that was not pending").
    """
    packs = list(packs)
    needed = {pack.data_key for pack in packs}
    data_refs = {key: ray.put(datasets[key]) for key in needed}  # placed once, shared by tasks
    pending = {_train_pack_task.remote(pack, data_refs[pack.data_key], writer): pack
               for pack in packs}
    fetched: deque[tuple[Pack, list[VariantResult] | None, str]] = deque()
    nodes: dict[str, int] = {}
    try:
        if on_submitted is not None:
            on_submitted()
        while pending or fetched:
            if pending:
                # Block only when there is nothing fetched to hand over.
                ready, _ = ray.wait(list(pending), num_returns=1 if not fetched else len(pending),
                                    timeout=POLL_SECONDS if not fetched else 0)
                fetched.extend([_fetch(ref, pending.pop(ref), nodes) for ref in ready])
                ready = _ = None
                if not pending and on_all_trained is not None:
                    # Ray may shut down now: this driver holds no object of it any more
                    # (releasing one while Ray shuts down makes the process exit with 1).
                    data_refs.clear()
                    on_all_trained()
            if fetched:
                pack, results, error = fetched.popleft()
                if results is None:
                    on_failed(pack, error)
                else:
                    on_done(pack, results)
    except BaseException:
        if cancel_on_interrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
        raise
    return nodes
