"""A pack's child runs written where the pack trained: by the Ray worker, into PostgreSQL,
in one transaction, exactly once. Imports no MLflow and no SQLAlchemy (psycopg2 only, when it
writes), so a worker stays light; the rows are `sweeps.tracking.rows`'s, the rule every bulk
writer shares.

Exactly once: a child's run id is not random but derived from (parent run, variant key)
(`child_run_ids`), and the transaction looks those ids up before it writes. A worker that
died after its commit, before Ray heard of it, leaves rows that the retried task finds: it
writes nothing and returns the same records. Two attempts racing (a worker Ray wrongly
believes dead) collide on the primary key of ``runs``: the second one's COPY waits for the
first's commit, fails, and the retry then finds the rows. No lock is held beyond the
transaction's own row locks. A run id whose row exists but is not a FINISHED active child
(a run someone deleted) is skipped for the next of `GENERATIONS` ids.

Artifacts (predictions.csv) are written before the commit, to the run's own directory (a
``file:`` location this machine sees, e.g. the same machine or a shared disk) or through the
tracking server's artifact proxy (``mlflow-artifacts:``, an HTTP PUT as MLflow's client does);
a retry rewrites the same files. A worker that cannot reach the database or the artifact
location writes nothing and hands its results back (`Unwritten`): the driver writes them.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

from sweeps.tracking.child import ChildRun, child_run
from sweeps.tracking.run_records import RunRecord
from sweeps.tracking.rows import ACTIVE, COLUMNS, FINISHED, batch_rows

log = logging.getLogger(__name__)

GENERATIONS = 8              # run ids tried per variant past rows that are not its child
_NAMESPACE = uuid.UUID("5f0c8a52-4d3e-4a57-9a43-0b5c2e1f7d10")    # of child run ids
# How rows reach PostgreSQL: "copy" (COPY ... FROM STDIN) or "values" (multi-row INSERTs of
# 1,000 rows). benchmarks/bench_scale.py --inserts measured COPY faster (2026-12-07, 2-core
# machine, the card's children: see docs/DESIGN.md "Where the time goes").
PG_INSERT = "copy"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass(frozen=True)
class Written:
    """What a worker hands back for a pack it wrote: the records and which process wrote."""

    records: list[RunRecord]
    writer: str                  # "host:pid"


@dataclass(frozen=True)
class Unwritten:
    """A pack a worker trained but could not write: its results, for the driver to write."""

    results: list
    error: str


def settle(tracker: Any, by_key: Mapping[str, Any], outcome: Any) -> tuple[list, str]:
    """The driver's side of a finished pack: records a worker wrote are adopted, results
    (trained without a writer, or `Unwritten`) are written here. Returns (the pack's
    records or results: each has ``metrics`` and ``status``, which process wrote it)."""
    if isinstance(outcome, Written):
        tracker.adopt(outcome.records)
        return outcome.records, outcome.writer
    if isinstance(outcome, Unwritten):
        if outcome.error not in _reported:
            _reported.add(outcome.error)
            log.warning("a worker could not write its pack, the driver writes it: %s",
                        outcome.error)
        outcome = outcome.results
    tracker.log_variants([(by_key[result.key], result) for result in outcome])
    return outcome, f"{socket.gethostname()}:{os.getpid()}"


_reported: set[str] = set()


def child_run_ids(parent_run_id: str, variant_key: str) -> list[str]:
    """The run ids a variant's child may take under this parent, in order of preference."""
    return [uuid.uuid5(_NAMESPACE, f"{parent_run_id}/{variant_key}/{generation}").hex
            for generation in range(GENERATIONS)]


def artifact_uri_of(location: str, run_id: str) -> str:
    """A run's artifact URI under its experiment's `location` (as MLflow's store makes it)."""
    return f"{location.rstrip('/')}/{run_id}/artifacts"


def write_children(connection, children: Sequence[ChildRun], experiment_id: str,
                   parent_run_id: str, artifact_location: str,
                   put_predictions: Callable[[ChildRun, str], None]) -> list[RunRecord]:
    """The children in one transaction of a psycopg2 `connection`, those not written yet;
    the records of all of them (ones found keep their run id and start time)."""
    from psycopg2 import errors

    for attempt in range(2):
        try:
            return _write_once(connection, children, experiment_id, parent_run_id,
                               artifact_location, put_predictions)
        except errors.UniqueViolation:
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _write_once(connection, children, experiment_id, parent_run_id, artifact_location,
                put_predictions) -> list[RunRecord]:
    candidates = {child.variant_key: child_run_ids(parent_run_id, child.variant_key)
                  for child in children}
    now = int(time.time() * 1000)
    with connection:                                   # commits on exit, rolls back on error
        with connection.cursor() as cursor:
            cursor.execute("SELECT run_uuid, status, lifecycle_stage, start_time FROM runs "
                           "WHERE run_uuid = ANY(%s)",
                           ([rid for ids in candidates.values() for rid in ids],))
            found = {row[0]: row[1:] for row in cursor.fetchall()}
            placed: list[tuple[ChildRun, str, int]] = []     # (child, run id, start time)
            todo: list[tuple[ChildRun, str]] = []
            for child in children:
                for run_id in candidates[child.variant_key]:
                    state = found.get(run_id)
                    if state is None:
                        todo.append((child, run_id))
                        placed.append((child, run_id, now))
                        break
                    if state[0] == FINISHED and state[1] == ACTIVE:
                        placed.append((child, run_id, int(state[2])))
                        break
                else:
                    raise RuntimeError(f"variant {child.variant_key}: all {GENERATIONS} child "
                                       f"run ids are taken by deleted runs")
            if todo:
                uris = [artifact_uri_of(artifact_location, run_id) for _, run_id in todo]
                for (child, _), uri in zip(todo, uris):
                    if child.predictions is not None:
                        put_predictions(child, uri)
                rows = batch_rows(experiment_id, [c for c, _ in todo], [r for _, r in todo],
                                  uris, now, metric_time=now, end_time=int(time.time() * 1000))
                insert_rows(cursor, rows)
    return [child.record(run_id, start) for child, run_id, start in placed]


def insert_rows(cursor, rows: Mapping[str, list[dict]], method: str | None = None) -> None:
    """Every row of `rows` ({table: row dicts}) through a psycopg2 cursor, tables in
    `COLUMNS` order (runs first: the others refer to them)."""
    method = method or PG_INSERT
    for table, columns in COLUMNS.items():
        if not rows[table]:
            continue
        names = ", ".join(f'"{c}"' for c in columns)
        if method == "copy":
            cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN",
                               io.StringIO(copy_text(table, rows[table])))
        else:
            from psycopg2.extras import execute_values

            execute_values(cursor, f"INSERT INTO {table} ({names}) VALUES %s",
                           [tuple(row[c] for c in columns) for row in rows[table]],
                           page_size=1000)


def copy_text(table: str, rows: Sequence[dict]) -> str:
    """The rows of `table` in COPY's text format, one line each."""
    if table in ("metrics", "latest_metrics"):      # most rows: one format, numbers as such
        keys = {key: key.translate(_COPY_ESCAPES) for key in {row["key"] for row in rows}}
        return "".join(
            f"{row['run_uuid']}\t{keys[row['key']]}\t{row['value']!r}\t"
            f"{row['timestamp']}\t{row['step']}\t{'t' if row['is_nan'] else 'f'}\n"
            for row in rows)
    columns = COLUMNS[table]
    return "".join("\t".join(_copy_text(row[c]) for c in columns) + "\n" for row in rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """A value in COPY's text format (repr keeps every float's bits)."""
    if type(value) is str:                         # most values (tags, params)
        return value.translate(_COPY_ESCAPES)
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    return str(value)


# ---------------------------------------------------------------------------------------------
# The worker's side


_connections: dict[tuple, Any] = {}      # one psycopg2 connection per database, per process


@dataclass(frozen=True)
class PackWriter:
    """What a Ray worker needs to write a pack's children (sent with every pack task).

    connect : psycopg2.connect keyword arguments (the password included: the cluster's
        workers need not share the driver's environment).
    artifacts_server : the tracking server whose proxy stores ``mlflow-artifacts:`` files.
    """

    connect: tuple[tuple[str, Any], ...]
    experiment_id: str
    parent_run_id: str
    artifact_location: str
    artifacts_server: str | None
    kinds: Mapping[str, str]
    histories: frozenset | None

    def write(self, pack: Any, dataset: Any, results: list) -> Written | Unwritten:
        """Write the pack's children (results of `train_pack`, in pack order)."""
        return self.write_variants({pack.data_key: dataset}, pack.variants, results)

    def write_variants(self, datasets: Mapping[str, Any], variants: Sequence[Any],
                       results: list) -> Written | Unwritten:
        """Write the children of `variants` trained to `results` (in the same order), their
        predictions from `datasets` ({data key: dataset}), in one transaction: a pack, or
        the variants successive halving stopped in a round (their joined trails)."""
        sweep = SimpleNamespace(datasets=datasets)
        children = [child_run(sweep, variant, result, self.parent_run_id, self.kinds,
                              self.histories)
                    for variant, result in zip(variants, results)]
        try:
            self._check_artifacts()
            records = write_children(self._connection(), children, self.experiment_id,
                                     self.parent_run_id, self.artifact_location, self._put)
        except Exception as error:  # noqa: BLE001 - the driver writes the pack instead
            _connections.pop(self.connect, None)
            return Unwritten(results, f"{type(error).__name__}: {error}")
        self._committed(records)
        return Written(records, f"{socket.gethostname()}:{os.getpid()}")

    def _committed(self, records: list[RunRecord]) -> None:
        """Called between the commit and the return (a test kills the worker here)."""

    def _connection(self):
        import psycopg2

        connection = _connections.get(self.connect)
        if connection is None or connection.closed:
            connection = _connections[self.connect] = psycopg2.connect(**dict(self.connect))
        return connection

    def _check_artifacts(self) -> None:
        """A ``file:`` location must be on this machine (its experiment directory exists)."""
        local = _local_dir(self.artifact_location)
        if local is not None and not local.is_dir():
            raise FileNotFoundError(f"artifact location {self.artifact_location} is not on "
                                    f"this machine")

    def _put(self, child: ChildRun, artifact_uri: str) -> None:
        local = _local_dir(artifact_uri)
        if local is not None:
            local.mkdir(parents=True, exist_ok=True)
            child.write_predictions(local)
            return
        if not artifact_uri.startswith("mlflow-artifacts:") or not self.artifacts_server:
            raise ValueError(f"a worker cannot write artifacts to {artifact_uri}")
        with tempfile.TemporaryDirectory(prefix="sweeps-pack-") as directory:
            path = child.write_predictions(Path(directory))
            data = path.read_bytes()
        where = urllib.parse.urlparse(artifact_uri).path
        url = (self.artifacts_server.rstrip("/") + ARTIFACTS_API + "/"
               + urllib.parse.quote(f"{where.strip('/')}/{path.name}"))
        request = urllib.request.Request(url, data=data, method="PUT",
                                         headers={"Content-Type": "text/csv"})
        urllib.request.urlopen(request, timeout=60).close()


def _local_dir(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(urllib.parse.unquote(parsed.path))
