"""What several test folders share: a free loopback port, a sweep's child runs as MLflow holds
them, and waiting for a condition (never a fixed sleep: the suite runs under CPU load)."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Iterable, Protocol

LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 300.0       # generous: start-ups on a loaded 2-core machine


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` (a loopback address) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def child_runs(tracking_uri: str, experiment: str, status: str | None = None) -> list:
    """Every active child run of the experiment (paged), optionally with one status."""
    from mlflow import MlflowClient

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


class Watched(Protocol):
    """A process a wait gives up on when it exits (`tests.cluster.native_stack.Proc`,
    `tests.integration.helpers.Driver`)."""

    name: str

    def alive(self) -> bool: ...

    def exit_code(self) -> int | None: ...

    def tail(self) -> str: ...


class ProcessExited(RuntimeError):
    """A watched process exited while waiting for something from it."""

    def __init__(self, what: str, proc: Watched):
        super().__init__(f"{what}: {proc.name} exited with {proc.exit_code()}\n{proc.tail()}")
        self.proc = proc


def wait_for(what: str, condition: Callable[[], Any], timeout: float = READY_TIMEOUT,
             watch: Iterable[Watched] = (), interval: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy, and return that; fail early if a
    watched process exits, and with `what` after `timeout` seconds.

    Exceptions raised by `condition` count as "not yet" (a server still starting refuses
    connections; a store being written is locked); the last one is reported on timeout.
    """
    watch = tuple(watch)
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        for proc in watch:
            if not proc.alive():
                raise ProcessExited(what, proc)
        try:
            result = condition()
        except Exception as error:  # noqa: BLE001 - "not ready yet"
            result, last_error = None, error
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(proc.tail() for proc in watch)
            raise TimeoutError(f"{what}: not within {timeout:.0f} s (last error: {last_error!r})"
                               f"\n{logs}")
        time.sleep(interval)
