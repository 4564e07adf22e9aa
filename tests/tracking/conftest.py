"""Fixtures for the tracking tests: a throwaway PostgreSQL server and a real `mlflow server`
(on it or on the shared SQLite `tracking_uri` store) (the classes of tests/cluster/native_stack.py, reused)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.cluster.native_stack import MlflowServer, Postgres


@pytest.fixture(scope="session")
def _postgres():
    """One PostgreSQL server for the session (databases are created per test)."""
    root = Path(tempfile.mkdtemp(prefix="sweeps-pg-"))
    root.chmod(0o755)                      # the postgres account must reach its data dir
    (root / "pg").mkdir()
    server = Postgres.create(root / "pg")
    try:
        server.start()
        server.wait_ready()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgresql_uri(_postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL database; artifacts under the test's temp dir (the default root)."""
    name = f"t{tmp_path.name.lower().replace('-', '_')[-40:]}"
    conn = _postgres.connect()
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PGPASSWORD", _postgres.password)
    return _postgres.store_uri.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request) -> str:
    """Each database store the bulk writer serves: the shared SQLite `tracking_uri`, or a
    database on the session's PostgreSQL server."""
    fixture = "tracking_uri" if request.param == "sqlite" else "postgresql_uri"
    return request.getfixturevalue(fixture)


@pytest.fixture
def serve(tmp_path: Path):
    """serve(store_uri) starts a real `mlflow server` (as docker-compose.yml runs it) on a
    store and returns its URL; stopped after the test."""
    import os

    started: list[MlflowServer] = []

    def start(store_uri: str) -> str:
        logs = tmp_path / f"server-logs-{len(started)}"
        logs.mkdir()
        server = MlflowServer(store_uri=store_uri, password=os.environ.get("PGPASSWORD", ""),
                              artifacts=tmp_path / "served", logs=logs)
        started.append(server)
        server.start()
        server.wait_ready()
        return server.url

    yield start
    for server in started:
        server.stop()
