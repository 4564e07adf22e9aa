"""Fixtures for tests/cluster: the topology of docker-compose.yml as native processes.

`stack`: PostgreSQL in a temp dir -> `mlflow server` on it with served artifacts, and a two-node
Ray cluster (`ray start --head` + a second node), all on 127.0.0.1 with free ports. Started once,
for the first test that needs it; stopped when the last test of this directory is done (see
native_stack.py for how, and why never `ray stop`). Server logs stay in pytest's temp dir
(cluster-logs*).
`cluster` (per test): the same stack, with both Ray nodes and the tracking server verified up
first, since fault tests kill a node or restart the server.

Tests using them are marked `cluster`; they need PostgreSQL installed
(scripts/ensure_postgres.sh, run by `make test`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.native_stack import NativeStack

HERE = Path(__file__).resolve().parent


class _StackHolder:
    """Starts the stack on first use; stopped when the session leaves tests/cluster."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.stack: NativeStack | None = None

    def get(self) -> NativeStack:
        if self.stack is None:
            self.stack = NativeStack.start(logs=self.logs)
        return self.stack

    def stop(self) -> None:
        stack, self.stack = self.stack, None
        if stack is not None:
            stack.stop()


_holder: _StackHolder | None = None


@pytest.fixture(scope="session")
def _stack_holder(tmp_path_factory):
    global _holder
    _holder = _StackHolder(tmp_path_factory.mktemp("cluster-logs"))
    try:
        yield _holder
    finally:
        _holder.stop()
        _holder = None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the stack as soon as the last test of this directory is done, not at session end:
    the rest of the suite should not share 2 cores with an idle cluster."""
    if _holder is not None and (nextitem is None or not Path(nextitem.path).is_relative_to(HERE)):
        _holder.stop()


@pytest.fixture
def stack(_stack_holder) -> NativeStack:
    """The running stack (started for the first test that needs it)."""
    return _stack_holder.get()


@pytest.fixture
def cluster(stack: NativeStack) -> NativeStack:
    """The stack with two Ray nodes alive and the tracking server answering."""
    return stack.ensure_ready()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory for a driver (results, logs), with no stray MLflow/Ray env."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path
