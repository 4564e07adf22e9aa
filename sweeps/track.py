"""MLflow tracking: one parent run per sweep, one child run per variant (`SweepTracker`).

The layout is a contract that users, the MLflow UI and `sweeps.results.load_runs` rely on:

- experiment: the sweep's name.
- parent run (name = sweep name): tags ``sweep.name``, ``sweep.config_hash``,
  ``sweep.role=parent``, ``sweep.swept`` (JSON object: swept dotted path -> value kind, in file
  order); params: the settings every variant shares; artifact: the sweep file as given.
- child run per variant (name = ``Variant.name``), nested with ``mlflow.parentRunId``; tags
  ``sweep.role=variant``, ``sweep.variant_key``, ``sweep.group_key``, ``sweep.status``
  (ok | diverged), ``sweep.variant_index``, ``sweep.curves`` (the metric keys logged as
  histories); params: every resolved setting under its dotted path; metrics: each curve as a
  history with step = epoch, ending with the final value at step = ``train.epochs`` (so the
  run's latest value is the final one), ``test_*``, ``train_seconds`` and ``diverged_epoch``
  when it diverged; artifact ``predictions.csv``. A child is set FINISHED only after all of
  its data is in, so "FINISHED" means "complete".

Writes per child: one ``create_run`` (name and every tag), one ``log_batch`` (metrics and
params, split only beyond MLflow's 1000-entity limit), one artifact copy, one
``set_terminated``. No per-run ``get_run``.

MLflow is imported lazily: importing this module is cheap, and `encode_param` /
`decode_param` (used by results) need no MLflow at all. This is the only module that talks to
MLflow (besides `sweeps.ui`, which starts its server).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# Tags of the layout.
ROLE = "sweep.role"
NAME = "sweep.name"
CONFIG_HASH = "sweep.config_hash"
SWEPT = "sweep.swept"
VARIANT_KEY = "sweep.variant_key"
GROUP_KEY = "sweep.group_key"
STATUS = "sweep.status"
VARIANT_INDEX = "sweep.variant_index"
CURVES = "sweep.curves"
PARENT_ID = "mlflow.parentRunId"
PREDICTIONS_FILE = "predictions.csv"

# MLflow's log_batch limits (mlflow.utils.validation).
MAX_METRICS = 1000
MAX_PARAMS_TAGS = 100
MAX_ENTITIES = 1000
PAGE = 1000                       # search_runs page size

_FLOAT_MAX = 1.7976931348623157e308   # SQL stores +-inf as +-this; read back as inf


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else an SQLite store ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


# --------------------------------------------------------------------------------------------
# Param values: MLflow stores strings. Each swept path has a "kind" (recorded on the parent run)
# that says how to read its strings back, so tables get real dtypes.

def encode_param(value: Any) -> str:
    """A setting as an MLflow param string: strings as is, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if math.isfinite(value) else json.dumps(float(value))
    if isinstance(value, (tuple, list)):
        return json.dumps(_plain(value))
    return json.dumps(_plain(value), sort_keys=True)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def value_kind(values: Iterable[Any]) -> str:
    """How a swept setting's values decode: bool | int | Int64 | float | str | tuple | json."""
    values = list(values)
    present = [v for v in values if v is not None]
    has_none = len(present) < len(values)
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "json" if has_none else "bool"
    if present and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                       for v in present):
        return "Int64" if has_none else "int"
    if present and all(isinstance(v, (int, float, np.integer, np.floating))
                       and not isinstance(v, (bool, np.bool_)) for v in present):
        return "float"
    if present and not has_none and all(isinstance(v, str) for v in present):
        return "str"
    if present and not has_none and all(isinstance(v, (tuple, list)) for v in present):
        return "tuple"
    return "json"


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def decode_param(text: str | None, kind: str) -> Any:
    """Inverse of `encode_param` for a value of the given kind (None stays None)."""
    if text is None:
        return None
    if kind == "str":
        return text
    if kind == "float":
        return math.nan if text == "null" else float(text)
    if kind == "int":
        return int(text)
    if kind == "Int64":
        return None if text == "null" else int(text)
    if kind == "bool":
        return text == "true"
    try:
        return _tuples(json.loads(text))
    except ValueError:
        return text


def decode_metric(value: float) -> float:
    """MLflow's SQL stores keep NaN (is_nan) but clamp +-inf to +-float max: undo the clamp."""
    value = float(value)
    if value >= _FLOAT_MAX:
        return math.inf
    if value <= -_FLOAT_MAX:
        return -math.inf
    return value


# --------------------------------------------------------------------------------------------
# Records: what a child run holds, as plain Python. The tracker builds them while logging and
# `fetch_runs` builds them from MLflow; `sweeps.results` turns either into the same tables.
#
#   {"run_id": str, "name": str, "start_time": int (ms),
#    "tags": {"sweep.variant_key": ..., "sweep.group_key": ..., "sweep.status": ...,
#             "sweep.variant_index": "3", "sweep.curves": "train_loss,train_mse"},
#    "params": {dotted path: str},          # as logged (encode_param)
#    "metrics": {key: float},                # latest value per key = the final values
#    "history": {key: (steps int64 ndarray, values float64 ndarray)},   # the curves
#    "swept": {dotted path: kind},           # shared by all records of a sweep
#    "predictions": {"columns": [...], "values": ndarray} | None}   # in-memory records only


def _curve_keys(tags: Mapping[str, str]) -> list[str]:
    text = tags.get(CURVES, "")
    return [k for k in text.split(",") if k]


def sweep_kinds(sweep: Any) -> dict[str, str]:
    """{swept path: kind} in file order, from the sweep's variants."""
    return {path: value_kind(v.settings.get(path) for v in sweep.variants) for path in sweep.swept}


def shared_settings(variants: Sequence[Any]) -> dict[str, str]:
    """Settings with one value across all variants, encoded as params."""
    if not variants:
        return {}
    first = {k: encode_param(v) for k, v in variants[0].settings.items()}
    for variant in variants[1:]:
        for key in list(first):
            if key not in variant.settings or encode_param(variant.settings[key]) != first[key]:
                del first[key]
    return first


def predictions_table(dataset: Any, output_activation: str,
                      predictions: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Columns and rows of predictions.csv: test inputs, targets, predictions (one row each).

    Columns: the feature names, ``target_<name>`` and ``pred_<name>`` per output column, and
    for classification ``label`` and ``pred_label`` (class ids).
    """
    X = np.asarray(dataset.X_test, dtype=np.float64)                   # (n_test, n_in)
    _, Y = dataset.targets(output_activation)                           # (n_test, n_out)
    Y = np.asarray(Y, dtype=np.float64)
    P = np.asarray(predictions, dtype=np.float64).reshape(len(X), -1)   # (n_test, n_out)
    n_out = P.shape[1]
    names = list(dataset.target_names)
    if len(names) != n_out:
        names = ["y"] if n_out == 1 else [f"y{j}" for j in range(n_out)]
    columns = list(dataset.feature_names) + [f"target_{n}" for n in names] \
        + [f"pred_{n}" for n in names]
    blocks = [X, Y, P]
    if dataset.task == "classification" and dataset.labels_test is not None:
        labels = np.asarray(dataset.labels_test, dtype=np.float64)[:, None]
        guess = (P[:, :1] >= 0.5).astype(np.float64) if n_out == 1 else \
            np.argmax(P, axis=1).astype(np.float64)[:, None]
        columns += ["label", "pred_label"]
        blocks += [labels, guess.reshape(-1, 1)]
    return columns, np.hstack(blocks)


def write_csv(path: Path, columns: Sequence[str], values: np.ndarray) -> None:
    """A plain CSV with full float precision (round-trips exactly)."""
    header = ",".join(_csv_field(c) for c in columns)
    np.savetxt(path, values, delimiter=",", fmt="%.17g", header=header, comments="")


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


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


def check_reachable(tracking_uri: str, timeout: float = 10.0) -> None:
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


class SweepTracker:
    """Writes one sweep to MLflow, resumably.

    Usage::

        tracker = SweepTracker(sweep)              # $MLFLOW_TRACKING_URI or sqlite:///mlflow.db
        done = tracker.start()                     # keys of variants already FINISHED
        run_id = tracker.log_variant(variant, result)    # per finished variant
        tracker.finish()                           # FINISHED | KILLED | FAILED

    Parameters
    ----------
    sweep : the loaded sweep (name, config_hash, text, path, variants, swept, datasets).
    tracking_uri : MLflow tracking URI; default `default_tracking_uri()`.
    fresh : start a new parent run even if one with the same config hash exists.
    retries : how often a write is retried after a transient error (server restart, busy
        database), with exponential backoff from `backoff` seconds. A child is re-created only
        after looking it up by variant key, so a retry never leaves two children per variant.
    histories : the curve keys logged as metric histories (default: every curve a result
        has). Each history point costs MLflow's SQL store about 0.1 ms of CPU; curves left
        out still get their final value.
    """

    def __init__(self, sweep: Any, tracking_uri: str | None = None, fresh: bool = False, *,
                 retries: int = 4, backoff: float = 1.0,
                 histories: Collection[str] | None = None):
        self.sweep = sweep
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.fresh = fresh
        self.retries = retries
        self.backoff = backoff
        self.histories = None if histories is None else frozenset(histories)
        self.parent_run_id: str | None = None
        self._new_parent: str | None = None
        self.experiment_id: str | None = None
        self.kinds = sweep_kinds(sweep)
        self._records: dict[str, dict] = {}          # variant key -> record
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._client = None
        self._sleep: Callable[[float], None] = time.sleep

    # -- MLflow plumbing -------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.tracking_uri)
        return self._client

    def _retry(self, what: str, fn: Callable[[], Any], on_retry: Callable[[], Any] | None = None):
        """fn(), retried after transient errors; on_retry() runs before each new attempt."""
        for attempt in range(self.retries + 1):
            try:
                if attempt and on_retry is not None:
                    result = on_retry()
                    if result is not None:
                        return result
                return fn()
            except Exception as error:  # noqa: BLE001 - classified below
                if attempt == self.retries or not is_transient(error):
                    raise
                delay = self.backoff * 2 ** attempt
                log.warning("MLflow %s failed (%s); retrying in %.1f s", what, error, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _search(self, filter_string: str, order_by: Sequence[str] | None = None,
                max_results: int | None = None) -> list:
        """All active runs of the experiment matching the filter, every page."""
        return search_all(self.client, [self.experiment_id], filter_string, order_by, max_results)

    # -- parent ----------------------------------------------------------------------------

    def start(self) -> set[str]:
        """Create or resume the parent run; return the keys of variants already FINISHED.

        Resuming (same config hash, `fresh` False): the newest active parent with this
        sweep's ``sweep.config_hash`` is reopened; its FINISHED children count as done (their
        records are loaded, so `records()` covers the whole sweep); unfinished children and
        duplicates are deleted.
        """
        check_reachable(self.tracking_uri)
        return self._retry("start", self._start)

    def _start(self) -> set[str]:
        self.experiment_id = ensure_experiment(self.client, self.sweep.name, self.tracking_uri)
        self._records = {}
        if self._new_parent is None:          # (a retry after creating it reuses it)
            parent = None if self.fresh else self._find_parent()
            if parent is not None:
                return self._resume(parent)
            self._new_parent = self.client.create_run(
                self.experiment_id, run_name=self.sweep.name,
                tags={ROLE: "parent", NAME: self.sweep.name, CONFIG_HASH: self.sweep.config_hash,
                      SWEPT: json.dumps(self.kinds)}).info.run_id
        self.parent_run_id = self._new_parent
        self._fill_parent(self.parent_run_id)
        return set()

    def _resume(self, parent) -> set[str]:
        self.parent_run_id = parent.info.run_id
        if parent.info.status != "RUNNING":
            self.client.update_run(self.parent_run_id, status="RUNNING")
        runs = self._search(f"tags.`{PARENT_ID}` = '{self.parent_run_id}'",
                            order_by=["attributes.start_time DESC"])
        keep, drop = split_children(runs)
        for run in drop:
            self.client.delete_run(run.info.run_id)
        wanted = {v.key for v in self.sweep.variants}
        records = [run_record(run, self.kinds) for run in keep
                   if run.data.tags.get(VARIANT_KEY) in wanted]
        attach_histories(self.client, records)
        self._records = {r["tags"][VARIANT_KEY]: r for r in records}
        if drop:
            log.info("resume: deleted %d unfinished or duplicate child runs", len(drop))
        return set(self._records)

    def _find_parent(self):
        runs = self._search(
            f"tags.`{ROLE}` = 'parent' and tags.`{CONFIG_HASH}` = '{self.sweep.config_hash}'",
            order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0] if runs else None

    def _fill_parent(self, run_id: str) -> None:
        """Shared settings as params and the sweep file as given (idempotent)."""
        from mlflow.entities import Param
        params = [Param(k, v) for k, v in shared_settings(self.sweep.variants).items()]
        for chunk in _chunks(params, MAX_PARAMS_TAGS):
            self.client.log_batch(run_id, params=chunk)
        name = Path(str(self.sweep.path)).name or "sweep.yaml"
        path = Path(self._tmpdir()) / name
        path.write_text(self.sweep.text, encoding="utf-8")
        self.client.log_artifact(run_id, str(path))

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sweeps-track-")
        return self._tmp.name

    def log_artifacts(self, directory: str | Path) -> None:
        """Every file under `directory` onto the parent run (results tables, plots)."""
        self._require_started()
        self._retry("log_artifacts",
                    lambda: self.client.log_artifacts(self.parent_run_id, str(directory)))

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        """Metrics on the parent run (the best group's), so the runs table shows the winner."""
        from mlflow.entities import Metric
        self._require_started()
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()
                 if v is not None and not (isinstance(v, float) and math.isnan(v))]
        for chunk in _chunks(batch, MAX_METRICS):
            self._retry("log_parent_metrics",
                        lambda chunk=chunk: self.client.log_batch(self.parent_run_id, metrics=chunk))

    def finish(self, status: str = "FINISHED") -> None:
        """Delete stray unfinished children, then end the parent run with `status`."""
        if status not in ("FINISHED", "KILLED", "FAILED"):
            raise ValueError(f"status must be FINISHED, KILLED or FAILED, not {status!r}")
        self._require_started()

        def _finish():
            stray = self._search(f"tags.`{PARENT_ID}` = '{self.parent_run_id}' "
                                 f"and attributes.status != 'FINISHED'")
            for run in stray:
                self.client.delete_run(run.info.run_id)
            self.client.set_terminated(self.parent_run_id, status)

        self._retry("finish", _finish)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _require_started(self) -> None:
        if self.parent_run_id is None:
            raise RuntimeError("SweepTracker.start() must be called first")

    # -- children --------------------------------------------------------------------------

    def log_variant(self, variant: Any, result: Any) -> str:
        """Write one variant's child run (FINISHED last); return its run id.

        A variant already FINISHED under this parent is not written again.
        """
        self._require_started()
        if variant.key in self._records:
            return self._records[variant.key]["run_id"]

        def _existing() -> str | None:
            """Before re-trying: a FINISHED child counts, anything else is deleted."""
            runs = self._search(f"tags.`{PARENT_ID}` = '{self.parent_run_id}' "
                                f"and tags.`{VARIANT_KEY}` = '{variant.key}'",
                                order_by=["attributes.start_time DESC"])
            keep, drop = split_children(runs)
            for run in drop:
                self.client.delete_run(run.info.run_id)
            if keep:
                record = run_record(keep[0], self.kinds)
                attach_histories(self.client, [record])
                self._records[variant.key] = record
                return record["run_id"]
            return None

        record = self._retry("log_variant", lambda: self._write_child(variant, result),
                             on_retry=_existing)
        if isinstance(record, str):
            return record
        self._records[variant.key] = record
        return record["run_id"]

    def _write_child(self, variant: Any, result: Any) -> dict:
        from mlflow.entities import Metric, Param
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        settings = variant.settings
        epochs = int(settings.get("train.epochs", 0) or 0)
        steps = np.asarray(result.log_epochs, dtype=np.int64)
        final_step = max(epochs, int(steps[-1]) + 1 if len(steps) else 0)
        curves = [k for k in result.curves if self.histories is None or k in self.histories]
        tags = {PARENT_ID: self.parent_run_id, ROLE: "variant", VARIANT_KEY: variant.key,
                GROUP_KEY: variant.group, STATUS: result.status,
                VARIANT_INDEX: str(variant.index), CURVES: ",".join(curves)}
        name = variant.name or f"variant-{variant.index}"

        # Histories: finite points at their epochs, then the final value at step final_step.
        history: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        final = {k: float(v) for k, v in result.metrics.items() if v is not None}
        for key in curves:
            values = np.asarray(result.curves[key], dtype=np.float64)
            keep = np.isfinite(values)
            s, v = steps[keep], values[keep]
            if key in final:
                s = np.append(s, final_step)
                v = np.append(v, final[key])
            history[key] = (s, v)
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step))
                   for key, (s, v) in history.items() for step, value in zip(s.tolist(), v.tolist())]
        metrics += [Metric(key, value, now, final_step) for key, value in final.items()
                    if key not in history]
        params = [Param(k, encode_param(v)) for k, v in settings.items()]

        client = self.client
        run = client.create_run(self.experiment_id, tags=tags, run_name=name)
        run_id = run.info.run_id
        for m_chunk, p_chunk in _batches(metrics, params):
            client.log_batch(run_id, metrics=m_chunk, params=p_chunk)

        predictions = None
        dataset = _dataset_for(self.sweep, variant)
        if dataset is not None and getattr(result, "predictions", None) is not None \
                and np.size(result.predictions):
            columns, table = predictions_table(
                dataset, settings.get("model.output_activation", "identity"), result.predictions)
            path = Path(self._tmpdir()) / PREDICTIONS_FILE
            write_csv(path, columns, table)
            get_artifact_repository(run.info.artifact_uri, self.tracking_uri).log_artifact(str(path))
            predictions = {"columns": columns, "values": table}
        client.set_terminated(run_id, "FINISHED")

        latest = {key: float(v[-1]) for key, (s, v) in history.items() if len(v)}
        latest.update(final)
        return {
            "run_id": run_id, "name": name, "start_time": run.info.start_time,
            "tags": {k: v for k, v in tags.items() if k.startswith("sweep.")},
            "params": {p.key: p.value for p in params},
            "metrics": {k: decode_metric(v) for k, v in latest.items()},
            "history": history, "swept": self.kinds, "predictions": predictions,
        }

    def records(self) -> list[dict]:
        """What the FINISHED child runs hold (this session's and resumed ones), by variant index."""
        return sorted(self._records.values(),
                      key=lambda r: int(r["tags"].get(VARIANT_INDEX, 0)))


# --------------------------------------------------------------------------------------------
# Helpers shared with `sweeps.results` (reading), all taking plain values.

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


def ensure_experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, created if needed (SQLite: artifacts beside the database file)."""
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
    if path is not None:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        location = (path.resolve().parent / "mlruns" / slug).as_uri()
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


def split_children(runs: Sequence[Any]) -> tuple[list, list]:
    """(newest FINISHED child per variant key, every other child): the others are deleted."""
    keep: dict[str, Any] = {}
    drop = []
    for run in sorted(runs, key=lambda r: (r.info.start_time or 0), reverse=True):
        key = run.data.tags.get(VARIANT_KEY)
        if run.info.status == "FINISHED" and key and key not in keep:
            keep[key] = run
        else:
            drop.append(run)
    return list(keep.values()), drop


def run_record(run: Any, kinds: Mapping[str, str]) -> dict:
    """A child run as a record (histories not yet attached)."""
    data = run.data
    return {
        "run_id": run.info.run_id, "name": run.info.run_name, "start_time": run.info.start_time,
        "tags": {k: v for k, v in data.tags.items() if k.startswith("sweep.")},
        "params": dict(data.params),
        "metrics": {k: decode_metric(v) for k, v in data.metrics.items()},
        "history": None, "swept": kinds, "predictions": None,
    }


def attach_histories(client, records: Sequence[dict]) -> None:
    """Fill record["history"] for every curve key, fetched in bulk."""
    by_key: dict[str, list[str]] = {}
    for record in records:
        record["history"] = {}
        for key in _curve_keys(record["tags"]):
            by_key.setdefault(key, []).append(record["run_id"])
    index = {r["run_id"]: r for r in records}
    for key, run_ids in by_key.items():
        for run_id, (steps, values) in metric_histories(client, run_ids, key).items():
            index[run_id]["history"][key] = (steps, values)


def metric_histories(client, run_ids: Sequence[str], key: str) -> dict[str, tuple]:
    """{run_id: (steps, values)} of one metric key for many runs, in as few requests as can be.

    SQL stores: one query per 500 runs. Tracking servers: the bulk endpoint the UI uses
    (100 runs per request), falling back to one request per run when it is unavailable.
    """
    store = client._tracking_client.store
    points: dict[str, list] = {r: [] for r in run_ids}
    if hasattr(store, "get_metric_history_bulk"):
        for chunk in _chunks(list(run_ids), 500):
            for m in store.get_metric_history_bulk(chunk, key, max_results=2**62):
                points[m.run_id].append((m.step, m.timestamp, m.value))
    else:
        rest = _rest_bulk(store, list(run_ids), key, points)
        if rest:
            _per_run(client, rest, key, points)
    out = {}
    for run_id, rows in points.items():
        rows.sort()
        steps = np.array([r[0] for r in rows], dtype=np.int64)
        values = np.array([decode_metric(r[2]) for r in rows], dtype=np.float64)
        out[run_id] = (steps, values)
    return out


def _rest_bulk(store, run_ids: list[str], key: str, points: dict) -> list[str]:
    """Fill points through ajax-api .../metrics/get-history-bulk; return runs it could not."""
    try:
        from mlflow.utils.rest_utils import http_request
        get_creds = store.get_host_creds
    except (ImportError, AttributeError):
        return run_ids
    limit = 25000
    left: list[str] = []
    for chunk in _chunks(run_ids, 100):
        try:
            response = http_request(get_creds(), "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
                                    "GET", params={"run_id": chunk, "metric_key": key,
                                                   "max_results": limit})
            if response.status_code != 200:
                left.extend(chunk)
                continue
            rows = json.loads(response.text).get("metrics", [])
        except Exception:  # noqa: BLE001 - older servers: fall back
            left.extend(chunk)
            continue
        if len(rows) >= limit:       # truncated: fetch these one by one
            left.extend(chunk)
            continue
        for m in rows:
            value = m.get("value", math.nan)
            points[m["run_id"]].append((int(m.get("step", 0)), int(m.get("timestamp", 0)),
                                        float(value) if value is not None else math.nan))
    return left


def _per_run(client, run_ids: list[str], key: str, points: dict) -> None:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=8) as pool:
        for run_id, history in zip(run_ids, pool.map(
                lambda r: client.get_metric_history(r, key), run_ids)):
            points[run_id].extend((m.step, m.timestamp, m.value) for m in history)


def find_parent(client, experiment: str, config_hash: str | None = None,
                parent_run_id: str | None = None):
    """(experiment id, parent run): the given one, else the newest (with that config hash)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment named {experiment!r}")
    if parent_run_id is not None:
        return exp.experiment_id, client.get_run(parent_run_id)
    filter_string = f"tags.`{ROLE}` = 'parent'"
    if config_hash is not None:
        filter_string += f" and tags.`{CONFIG_HASH}` = '{config_hash}'"
    runs = search_all(client, [exp.experiment_id], filter_string,
                      ["attributes.start_time DESC"], max_results=1)
    if not runs:
        what = f" with config hash {config_hash}" if config_hash else ""
        raise LookupError(f"no sweep run{what} in MLflow experiment {experiment!r}")
    return exp.experiment_id, runs[0]


def fetch_runs(experiment: str, tracking_uri: str | None = None, sweep: Any = None, *,
               parent_run_id: str | None = None, histories: bool = False) -> list[dict]:
    """Records of the FINISHED child runs of one sweep run, read from MLflow alone.

    The sweep run is `parent_run_id` if given, else the newest parent run in the experiment
    (with `sweep`'s config hash when a sweep is given).
    """
    client = make_client(tracking_uri or default_tracking_uri(), create=False)
    config_hash = getattr(sweep, "config_hash", None)
    experiment_id, parent = find_parent(client, experiment, config_hash, parent_run_id)
    kinds = json.loads(parent.data.tags.get(SWEPT, "{}") or "{}")
    if not kinds and sweep is not None:
        kinds = sweep_kinds(sweep)
    runs = search_all(client, [experiment_id],
                      f"tags.`{PARENT_ID}` = '{parent.info.run_id}' "
                      f"and attributes.status = 'FINISHED'")
    keep, _ = split_children(runs)
    records = [run_record(run, kinds) for run in keep]
    if histories:
        attach_histories(client, records)
    return sorted(records, key=lambda r: int(r["tags"].get(VARIANT_INDEX, 0)))


def fetch_predictions(tracking_uri: str | None, run_ids: Sequence[str]) -> dict[str, str]:
    """{run_id: text of predictions.csv} for the given child runs (missing ones left out)."""
    client = make_client(tracking_uri or default_tracking_uri(), create=False)
    out = {}
    with tempfile.TemporaryDirectory(prefix="sweeps-pred-") as tmp:
        for run_id in run_ids:
            try:
                path = client.download_artifacts(run_id, PREDICTIONS_FILE, tmp)
            except Exception:  # noqa: BLE001 - a run without predictions
                continue
            out[run_id] = Path(path).read_text(encoding="utf-8")
            os.remove(path)
    return out


def _dataset_for(sweep: Any, variant: Any):
    datasets = getattr(sweep, "datasets", None) or {}
    return datasets.get(getattr(variant, "data_key", None))


def _chunks(items: Sequence, size: int) -> list:
    return [items[i:i + size] for i in range(0, len(items), size)] or []


def _batches(metrics: list, params: list) -> list[tuple[list, list]]:
    """(metrics, params) per log_batch call within MLflow's limits; usually exactly one."""
    out = []
    for p_chunk in _chunks(params, MAX_PARAMS_TAGS) or [[]]:
        room = min(MAX_METRICS, MAX_ENTITIES - len(p_chunk))
        out.append((metrics[:room], p_chunk))
        metrics = metrics[room:]
    out += [(m_chunk, []) for m_chunk in _chunks(metrics, MAX_METRICS)]
    return [(m, p) for m, p in out if m or p]
