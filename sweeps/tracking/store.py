"""Connecting to an MLflow tracking store: the default URI, SQLite set-up, reachability,
which errors are worth retrying, experiments and paged searches.

MLflow is imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

PAGE = 1000                       # search_runs page size
# The MLflow server whose artifact proxy serves `mlflow-artifacts:` locations, for a driver that
# writes runs straight to the server's database (docker-compose.yml's sweep service).
ARTIFACTS_SERVER_ENV = "SWEEPS_ARTIFACTS_SERVER"

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else an SQLite store ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


# --------------------------------------------------------------------------------------------
# Transient failures (a tracking server restarting, a locked SQLite file).

_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
_TRANSIENT_TEXT = ("failed with exception", "max retries exceeded", "connection refused",
                   "connection aborted", "connection reset", "remotedisconnected",
                   "database is locked", "temporarily unavailable", "timed out")


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: connection trouble, timeouts, a busy database."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    try:
        import requests
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
    except ImportError:  # pragma: no cover - requests ships with mlflow
        pass
    code = getattr(error, "error_code", None)
    if code in _TRANSIENT_CODES:
        return True
    text = str(error).lower()
    return any(t in text for t in _TRANSIENT_TEXT)


# --------------------------------------------------------------------------------------------

class TrackingUnavailable(ConnectionError):
    """The tracking server does not answer at all (a wrong URI, a server that is down)."""


def check_tracking_server(tracking_uri: str, timeout: float = 10.0) -> None:
    """Fail fast, with the URI in the message, when a tracking server does not answer.

    MLflow's own client retries a refused connection for minutes; the retries in
    SweepTracker are for a server that goes away in the middle of a sweep, not for a typo.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=5).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (auth in front of it, no /health route): the client decides
        except (urllib.error.URLError, OSError) as error:
            if time.monotonic() > deadline:
                reason = getattr(error, "reason", error)
                raise TrackingUnavailable(
                    f"no MLflow tracking server answers at {tracking_uri}: {reason}") from None
        time.sleep(1.0)


# --------------------------------------------------------------------------------------------
# Clients, experiments and searches.

def make_client(tracking_uri: str, create: bool = True):
    """An MlflowClient; SQLite stores get WAL journaling (readers never block the writer).

    create=False: a missing SQLite file is an error (LookupError), not a new empty store.
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # A new SQLite store announces its schema migrations at INFO; the run's own output is enough.
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    path = _sqlite_path(tracking_uri)
    if not create and path is not None and not path.exists():
        raise LookupError(f"no MLflow store at {path} (tracking URI {tracking_uri})")
    _prepare_sqlite(tracking_uri)
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri)


def _sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _relaxed_sqlite_sync(dbapi_connection, _record) -> None:
    """SQLAlchemy connect hook: in WAL mode, commit without an fsync each time.

    With synchronous=NORMAL a commit survives a killed process (SIGKILL included), only an
    operating-system crash may lose the last commits; it makes a child run ~40% cheaper.
    """
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _prepare_sqlite(tracking_uri: str) -> None:
    path = _sqlite_path(tracking_uri)
    if path is None:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _relaxed_sqlite_sync):
        event.listen(Engine, "connect", _relaxed_sqlite_sync)
    path.parent.mkdir(parents=True, exist_ok=True)
    import sqlite3
    con = sqlite3.connect(str(path), timeout=30)
    try:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def artifact_repository(artifact_uri: str, tracking_uri: str):
    """MLflow's artifact repository for a run's `artifact_uri` (see `artifacts_tracking_uri`)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(artifact_uri, artifacts_tracking_uri(artifact_uri,
                                                                        tracking_uri))


def write_artifact(artifact_uri: str, tracking_uri: str, path: str, data: bytes,
                   tmpdir: str | None = None) -> None:
    """Bytes as the artifact `path` ("dir/name") under a run's `artifact_uri`, replacing an
    older one (staged in a temporary directory under `tmpdir`: MLflow uploads files)."""
    folder, _, name = path.rpartition("/")
    with tempfile.TemporaryDirectory(dir=tmpdir) as directory:
        local = Path(directory) / name
        local.write_bytes(data)
        artifact_repository(artifact_uri, tracking_uri).log_artifact(str(local), folder or None)


def artifacts_tracking_uri(artifact_uri: str, tracking_uri: str) -> str:
    """The tracking URI through which a run's `artifact_uri` is reached: `tracking_uri`
    itself, except that ``mlflow-artifacts:`` locations are served by a tracking server's
    proxy, which a database tracking URI reaches through $SWEEPS_ARTIFACTS_SERVER."""
    if artifact_uri.startswith("mlflow-artifacts:") \
            and not tracking_uri.startswith(("http://", "https://")):
        server = os.environ.get(ARTIFACTS_SERVER_ENV)
        if not server:
            raise RuntimeError(
                f"the artifacts of this experiment live behind an MLflow server "
                f"({artifact_uri}); set {ARTIFACTS_SERVER_ENV} to its URL (e.g. "
                f"http://mlflow:5000) to write them while writing runs to {tracking_uri}")
        return server
    return tracking_uri


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The directory of `artifact_uri` when it is on this machine's disk (``file:`` or a
    plain path), else None."""
    from urllib.parse import urlparse

    from mlflow.utils.file_utils import local_file_uri_to_path

    if urlparse(artifact_uri).scheme not in ("", "file"):
        return None
    return Path(local_file_uri_to_path(artifact_uri))


def remove_run_artifacts(artifact_uri: str, tracking_uri: str) -> None:
    """Delete everything under a run's `artifact_uri` (and, on a local disk, the run's
    then empty directory)."""
    artifact_repository(artifact_uri, tracking_uri).delete_artifacts()
    local = local_artifact_dir(artifact_uri)
    if local is not None and local.parent.is_dir() and not any(local.parent.iterdir()):
        local.parent.rmdir()


def ensure_experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, created if needed (SQLite: artifacts beside the database file;
    with $SWEEPS_ARTIFACTS_SERVER: behind that server's artifact proxy, as it would place them)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage != "active":
            raise RuntimeError(
                f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments "
                f"restore --experiment-id {experiment.experiment_id}) or remove it for good "
                f"(mlflow gc) before running this sweep again")
        return experiment.experiment_id
    location = None
    path = _sqlite_path(tracking_uri)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if path is not None:
        location = (path.resolve().parent / "mlruns" / slug).as_uri()
    elif os.environ.get(ARTIFACTS_SERVER_ENV) \
            and not tracking_uri.startswith(("http://", "https://")):
        location = f"mlflow-artifacts:/{slug}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        experiment = client.get_experiment_by_name(name)   # created meanwhile
        if experiment is None:
            raise
        return experiment.experiment_id


def search_all(client, experiment_ids: Sequence[str], filter_string: str = "",
               order_by: Sequence[str] | None = None, max_results: int | None = None) -> list:
    """Every active run matching the filter, following page tokens past 1000."""
    runs: list = []
    token = None
    while True:
        page_size = PAGE if max_results is None else min(PAGE, max_results - len(runs))
        page = client.search_runs(list(experiment_ids), filter_string, max_results=page_size,
                                  order_by=list(order_by) if order_by else None, page_token=token)
        runs.extend(page)
        token = page.token
        if not token or (max_results is not None and len(runs) >= max_results):
            return runs



def chunks(items: Sequence, size: int) -> list:
    return [items[i:i + size] for i in range(0, len(items), size)] or []
