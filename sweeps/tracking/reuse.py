"""A store is a cache of variants: a planned variant already FINISHED in the sweep's experiment,
computed under the same numerics, is copied under the new parent instead of trained again.

The rule: a copy is only made where training would give the same bits. A variant's key hashes
every resolved setting (``train.dtype`` included) and its data set's fingerprint; what the
bits depend on beyond that is the ``sweep.numerics`` tag of the child that trained it
(`sweeps.execution.machine.numerics_fingerprint`: core's ``NUMERICS_VERSION``, NumPy, the BLAS
build and kernel, the SIMD paths). A source must carry the fingerprint of this process, so
children logged before the tag existed are never reused (nothing says what computed them).

Sources are the FINISHED, active variant children (``sweep.role=variant``, not the
configuration runs other code adds) of grid and random search: a child of successive halving
(tag ``sweep.rung``) ended at its rung, or where it diverged, with the rung tags a grid child
has not, so it is never a source here (what halving could reuse: docs/DESIGN.md).

Scope: the sweep's own experiment, newest first: the experiment is the unit
people name, delete and are granted access to on a server, and the lookup costs what the
experiment holds, not what the store holds (docs/DESIGN.md).

A copy is a complete child run, indistinguishable from a trained one through every read path
but for its tag ``sweep.reused_from=<source run id>``: the source's metric rows (every point of
every history, at the same time from the run's start), its ``sweep.*`` result tags and its
predictions.csv; the params, name, index, group and parent of the new variant, written as
the writers write them. On a database store with the bulk writer, one transaction per batch
copies the rows inside the database (INSERT ... SELECT) while a thread links the files, and
the copies' records are made from their sources' (read meanwhile), not read back; elsewhere
(a tracking server) each source is read through the client and written as a `ChildRun`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from sweeps.tracking.child import ChildRun
from sweeps.tracking.contract import (CURVES, FINISHED_VARIANTS, GROUP_KEY, NUMERICS, PARENT_ID,
                                      PREDICTIONS_FILE, REUSED_FROM, ROLE, RUNG, STATUS,
                                      VARIANT_INDEX, VARIANT_KEY, RunRole, curve_keys,
                                      decode_metric, encode_param)
from sweeps.tracking.run_records import Predictions
from sweeps.tracking.store import artifact_repository, chunks, local_artifact_dir, search_all
from sweeps.vocabulary import RunState

if TYPE_CHECKING:
    from sweeps.tracking.tracker import Tracker

# Result tags a copy takes from its source; every other tag says where the copy sits (written
# for the new variant) or belongs to the source alone (`sweeps best`'s model, notes).
COPIED_TAGS = (ROLE, VARIANT_KEY, STATUS, CURVES, NUMERICS)
BATCH = 1000         # children per transaction (stop signals wait for one: ~0.5 s on SQLite)
_LOOKUP_CHUNK = 500  # keys per IN list


@dataclass(frozen=True)
class Source:
    """A stored FINISHED child run that a planned variant can be copied from.

    run : the MLflow Run entity (client lookups only; None on a database store).
    """

    variant_key: str
    run_id: str
    artifact_uri: str
    start_time: int
    run: Any = None


def find_sources(tracker: Tracker, keys: Sequence[str], numerics: str) -> dict[str, Source]:
    """{variant key: newest FINISHED variant child of the tracker's experiment with that key
    and ``sweep.numerics`` equal to `numerics`}, for the keys found. Started tracker."""
    if not keys:
        return {}
    if tracker.bulk:
        store = tracker.store
        found = _sql_sources(store, tracker.experiment_id, keys, numerics)
    else:
        found = _client_sources(tracker.client, tracker.experiment_id, keys, numerics)
    newest: dict[str, Source] = {}
    for source in sorted(found, key=lambda s: s.start_time, reverse=True):
        newest.setdefault(source.variant_key, source)
    return newest


def count_unfound(tracker: Tracker, experiment: str, keys: Sequence[str], numerics: str) -> int:
    """How many of `keys` no FINISHED child of the experiment holds under `numerics`, asked
    before the tracker starts (creating and filling the parent takes seconds): the answer
    decides whether Ray starts, beside the rest of the start-up. Children of the parent a
    resume continues count as found (they are done either way)."""
    from sweeps.tracking.sqlread import is_sql_store
    from sweeps.tracking.store import check_tracking_server

    check_tracking_server(tracker.tracking_uri)  # as `start` does: MLflow would retry for minutes
    client = tracker.client
    found = client.get_experiment_by_name(experiment)
    if found is None or not keys:
        return len(set(keys))
    store = tracker.store
    if is_sql_store(store):
        sources = _sql_sources(store, found.experiment_id, keys, numerics)
    else:
        sources = _client_sources(client, found.experiment_id, keys, numerics)
    return len(set(keys) - {source.variant_key for source in sources})


def copy_sources(tracker: Tracker, pairs: Sequence[tuple[Any, Source]],
                 on_batch: Callable[[int], None] = lambda n: None) -> None:
    """Write each (variant, source) as a complete child run of the tracker's parent, in
    batches of `BATCH`; on_batch(count) after each. The tracker then counts them as done.

    On a database store the copies' records are made from their sources' (`_copy_record`),
    which another thread reads while the database copies the batch's metric rows (SQLite
    works without the GIL then), unless a batch had to be retried: then what the parent
    holds is read back. (Reading the copies back after copying took 2.5-4 s of 4,800
    copies' ~10 s; a reading thread started with the batch instead held the GIL against the
    threads that link the predictions files: 8 s of copying became 13-20 s.)
    """
    if not tracker.bulk:
        for batch in chunks(list(pairs), BATCH):
            _copy_through_client(tracker, batch)
            on_batch(len(batch))
        return
    for batch in chunks(list(pairs), BATCH):
        todo = {variant.key: (variant, source) for variant, source in batch}
        sources = _SourceReader(tracker, batch)
        retried: list[bool] = []

        def before_retry(todo=todo, retried=retried) -> bool | None:
            retried.append(True)
            return tracker.adopt_written(todo)

        written = tracker.with_retries(
            "reuse", lambda: _copy_in_database(tracker, list(todo.values()), sources.start),
            on_retry=before_retry)
        if retried:
            records = tracker.keep_finished_children({variant.key for variant, _ in batch})
        else:
            start, copies = written
            read = sources.result()
            records = [_copy_record(variant, read[source.run_id], run_id, start, params)
                       for run_id, variant, source, params in copies]
        tracker.adopt(records)
        on_batch(len(batch))


class _SourceReader:
    """The records of a batch's sources (`_read_sources`), read on a daemon thread from
    `start()` on (a stopped sweep does not wait for it)."""

    def __init__(self, tracker: Tracker, batch: Sequence[tuple[Any, Source]]) -> None:
        self._tracker, self._batch = tracker, batch
        self._future: Future = Future()
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True

        def work() -> None:
            try:
                self._future.set_result(_read_sources(self._tracker, self._batch))
            except BaseException as error:  # noqa: BLE001 - raised where it is awaited
                self._future.set_exception(error)

        threading.Thread(target=work, name="sweeps-reuse-sources", daemon=True).start()

    def result(self) -> dict[str, Any]:
        self.start()
        return self._future.result()


def _read_sources(tracker: Tracker, batch: Sequence[tuple[Any, Source]]) -> dict[str, Any]:
    """{source run id: its `RunRecord`, histories attached}, as `sqlread` reads a sweep."""
    from sweeps.tracking.sqlread import read_curves, read_runs, runs_with_ids

    store = tracker.store
    ids = runs_with_ids({source.run_id for _, source in batch})
    records = read_curves(store, ids, read_runs(store, ids, tracker.kinds))
    return {record.run_id: record for record in records}


def _copy_record(variant: Any, source: Any, run_id: str, start: int,
                 params: dict[str, str]) -> Any:
    """The `RunRecord` a read-back of the copy of `source` (a `RunRecord`, history
    attached) as `variant`'s child `run_id` gives: the source's tags in `COPIED_TAGS`,
    metrics and histories; the copy's own run, name, start, group, index and `params` (as
    stored: a long value truncated)."""
    from sweeps.tracking.run_records import decode_settings

    return replace(source, run_id=run_id, name=_name(variant), start_time=int(start),
                   group_key=variant.group, index=int(variant.index),
                   settings=decode_settings(params, source.swept),
                   predictions=None, rung=None, stopped_epoch=None)


def _new_tags(tracker: Tracker, variant: Any, source_run_id: str) -> dict[str, str]:
    """The tags that place a copy in this sweep (the rest are its source's `COPIED_TAGS`)."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    return {PARENT_ID: tracker.parent_run_id, GROUP_KEY: variant.group,
            VARIANT_INDEX: str(variant.index), MLFLOW_RUN_NAME: _name(variant),
            REUSED_FROM: source_run_id}


def _name(variant: Any) -> str:
    return variant.name or f"variant-{variant.index}"


def _params(variant: Any) -> dict[str, str]:
    return {key: encode_param(value) for key, value in variant.settings.items()}


# --------------------------------------------------------------------------------------------
# Database stores: the rows copied inside the database

def _tables():
    from mlflow.store.tracking.dbmodels import models

    return models.SqlRun.__table__, models.SqlTag.__table__


def _sql_sources(store: Any, experiment_id: str, keys: Sequence[str],
                 numerics: str) -> list[Source]:
    from sqlalchemy import and_, select

    from sweeps.tracking.sqlread import _fetch

    run, tag = _tables()
    key_tag, numerics_tag, role_tag = tag.alias("k"), tag.alias("n"), tag.alias("r")
    halving = select(tag.c.run_uuid).where(tag.c.key == RUNG)
    found = []
    with store.ManagedSessionMaker() as session:
        db = session.connection()
        for chunk in chunks(list(keys), _LOOKUP_CHUNK):
            query = (select(key_tag.c.value, run.c.run_uuid, run.c.artifact_uri,
                            run.c.start_time)
                     .join_from(run, key_tag, and_(key_tag.c.run_uuid == run.c.run_uuid,
                                                   key_tag.c.key == VARIANT_KEY))
                     .join(numerics_tag, and_(numerics_tag.c.run_uuid == run.c.run_uuid,
                                              numerics_tag.c.key == NUMERICS))
                     .join(role_tag, and_(role_tag.c.run_uuid == run.c.run_uuid,
                                          role_tag.c.key == ROLE))
                     .where(run.c.experiment_id == int(experiment_id),
                            run.c.status == RunState.FINISHED, run.c.lifecycle_stage == "active",
                            role_tag.c.value == RunRole.VARIANT, numerics_tag.c.value == numerics,
                            key_tag.c.value.in_(chunk), run.c.run_uuid.not_in(halving)))
            found += [Source(key, run_id, uri, int(start or 0))
                      for key, run_id, uri, start in _fetch(db, query)]
    return found


def _copy_in_database(tracker: Tracker, pairs: list[tuple[Any, Source]],
                      before_metrics: Callable[[], None] = lambda: None
                      ) -> tuple[int, list[tuple[str, Any, Source, dict[str, str]]]]:
    """One transaction: the runs, tags, params and metric rows of the copies; their
    predictions.csv linked meanwhile on a thread, every one before the commit (removed again
    if it fails); before_metrics() when the metric rows are about to be copied. Returns (the
    copies' start time in ms, [(run id, variant, source, {param: value as stored})])."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.uri import append_to_uri_path
    from mlflow.utils.validation import (MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH,
                                         _validate_param, _validate_tag)

    from sweeps.tracking.bulk import remove_orphaned_artifacts

    checked: set = set()

    def row(validate, limit: int, key: str, value: str, run_id: str) -> dict:
        # As log_batch: the key checked (once per key here: it is the same in every copy, and
        # checking 130,000 params took 3.4 s of a 4,800-copy run), a long value truncated.
        if (validate, key) not in checked or len(value) > limit:
            entity = validate(key, value)
            checked.add((validate, key))
            key, value = entity.key, entity.value
        return dict(key=key, value=value, run_uuid=run_id)

    store = tracker.store
    location = store.get_experiment(tracker.experiment_id).artifact_location
    now = int(time.time() * 1000)
    copies = [(run_id, variant, source)
              for run_id, (variant, source) in zip(_ordered_ids(now, len(pairs)), pairs)]
    uris = {run_id: append_to_uri_path(location, run_id, SqlAlchemyStore.ARTIFACTS_FOLDER_NAME)
            for run_id, _, _ in copies}
    mapping, tags, params = [], [], []
    for run_id, variant, source in copies:
        mapping.append(dict(old_id=source.run_id, new_id=run_id, name=_name(variant),
                            artifact_uri=uris[run_id], shift=now - source.start_time))
        tags += [row(_validate_tag, MAX_TAG_VAL_LENGTH, key, value, run_id)
                 for key, value in _new_tags(tracker, variant, source.run_id).items()]
        params += [row(_validate_param, MAX_PARAM_VAL_LENGTH, key, value, run_id)
                   for key, value in _params(variant).items()]
    touched = [(run_id, uris[run_id]) for run_id, _, _ in copies]
    try:
        # The files on a thread while the database copies the rows (SQLite runs without the
        # GIL), every one in place before the commit.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweeps-reuse-files") as files:
            linked = files.submit(lambda: [_copy_predictions(tracker, source.artifact_uri,
                                                             uris[run_id])
                                           for run_id, _, source in copies])
            with store.ManagedSessionMaker(read_only=False) as session:   # commits on exit
                db = session.connection()
                with _page_cache(db):
                    _copy_rows(db, mapping, tags, params, now, before_metrics)
                linked.result()
    except BaseException:
        remove_orphaned_artifacts(store, tracker.tracking_uri, touched)
        raise
    stored: dict[str, dict[str, str]] = {}
    for param in params:
        stored.setdefault(param["run_uuid"], {})[param["key"]] = param["value"]
    return now, [(run_id, variant, source, stored.get(run_id, {}))
                 for run_id, variant, source in copies]


@contextmanager
def _page_cache(db: Any) -> Iterator[None]:
    """On SQLite, a 128 MB page cache while the rows go in: a batch's metric rows land all
    over three indexes, and in SQLite's default 2 MB the pages are evicted and read again
    (1,000 copies, 105,000 metric rows: 5.7 s -> 4.0 s on the loaded 2-core machine,
    2026-12-07). Set back afterwards: the connection returns to the pool."""
    if db.dialect.name != "sqlite":
        yield
        return
    before = db.exec_driver_sql("PRAGMA cache_size").scalar()
    db.exec_driver_sql("PRAGMA cache_size = -131072")
    try:
        yield
    finally:
        db.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def _ordered_ids(now: int, count: int) -> list[str]:
    """`count` new run ids: 32 hex digits as MLflow's, but the first 12 the time in ms and the
    next 6 a counter (then random), so a batch's rows go in at the end of every index keyed
    by run id or by (key, run id) instead of all over them (uuid4): on SQLite a 1,000-copy
    batch then commits in ~1/3 of the time (the pages it dirties, 2026-12-07)."""
    return [f"{now:012x}{i:06x}{uuid.uuid4().hex[:14]}" for i in range(count)]


def _copy_rows(db: Any, mapping: list[dict], tags: list[dict], params: list[dict],
               now: int, before_metrics: Callable[[], None] = lambda: None) -> None:
    """The copies' rows, each joined to its source's through a temporary mapping table
    (old_id, new_id, name, artifact_uri, shift). A metric point's timestamp moves by its run's
    shift (the copy's start minus the source's): its time relative to the run's start stays
    (MLflow's relative-time charts), the source's rows stay unique with it (one timestamp for
    all would merge points differing only in time), and the new rows go in after the old ones
    in the (key, timestamp, ...) primary key. SQLAlchemy Core, so each dialect quotes `key`."""
    from mlflow.store.tracking.dbmodels import models
    from sqlalchemy import (BigInteger, Column, MetaData, String, Table, insert, literal, null,
                            select)

    run, tag, param = models.SqlRun.__table__, models.SqlTag.__table__, models.SqlParam.__table__
    m = Table(f"sweeps_reuse_{uuid.uuid4().hex[:12]}", MetaData(),  # (a failed batch's stays
              Column("old_id", String(32), primary_key=True),      # on its connection)
              Column("new_id", String(32)), Column("name", String(250)),
              Column("artifact_uri", String(1000)), Column("shift", BigInteger),
              prefixes=["TEMPORARY"])
    m.create(db)
    db.execute(m.insert(), mapping)

    def joined(table, *columns):
        # The IN makes SQLite walk the mapping and probe the source's run_uuid index (a
        # plain join scanned every metric row of the store: 12x slower at 200,000 rows).
        return (select(*columns).join_from(table, m, table.c.run_uuid == m.c.old_id)
                .where(table.c.run_uuid.in_(select(m.c.old_id))))

    names = [c.name for c in run.c]
    replaced = {"run_uuid": m.c.new_id, "name": m.c.name, "artifact_uri": m.c.artifact_uri,
                "start_time": literal(now), "end_time": literal(now), "deleted_time": null()}
    db.execute(insert(run).from_select(names, joined(
        run, *[replaced.get(name, run.c[name]) for name in names])))
    db.execute(insert(tag).from_select(["key", "value", "run_uuid"], joined(
        tag, tag.c.key, tag.c.value, m.c.new_id).where(tag.c.key.in_(COPIED_TAGS))))
    db.execute(tag.insert(), tags)
    db.execute(param.insert(), params)
    before_metrics()                         # (the rest runs in the database alone)
    for model in (models.SqlMetric, models.SqlLatestMetric):
        table = model.__table__
        columns = ["key", "value", "timestamp", "step", "is_nan", "run_uuid"]
        moved = {"run_uuid": m.c.new_id, "timestamp": table.c.timestamp + m.c.shift}
        db.execute(insert(table).from_select(columns, joined(
            table, *[moved.get(c, table.c[c]) for c in columns])))
    m.drop(db)


def _copy_predictions(tracker: Tracker, source_uri: str, target_uri: str) -> None:
    """The source's predictions.csv into the copy's artifacts (none: nothing): a hard link on
    one local disk (artifacts never change; the copy keeps the bytes if the source's are
    collected), else through the artifact repositories."""
    source_dir, target_dir = local_artifact_dir(source_uri), local_artifact_dir(target_uri)
    if source_dir is not None and target_dir is not None:
        source = source_dir / PREDICTIONS_FILE
        if not source.exists():
            return
        target_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target_dir / PREDICTIONS_FILE)
        except OSError:                                   # another file system
            shutil.copyfile(source, target_dir / PREDICTIONS_FILE)
        return
    with tempfile.TemporaryDirectory(prefix="sweeps-reuse-") as staging:
        try:
            path = artifact_repository(source_uri, tracker.tracking_uri).download_artifacts(
                PREDICTIONS_FILE, staging)
        except Exception:  # noqa: BLE001 - a source without predictions
            return
        artifact_repository(target_uri, tracker.tracking_uri).log_artifact(path)


# --------------------------------------------------------------------------------------------
# Tracking servers: sources read and written through the client

def _client_sources(client: Any, experiment_id: str, keys: Sequence[str],
                    numerics: str) -> list[Source]:
    """A paged search of the experiment's FINISHED variant children under these numerics
    (MLflow's filters take no IN on tags), kept when their key is planned."""
    wanted = set(keys)
    runs = search_all(client, [experiment_id],
                      f"{FINISHED_VARIANTS} and tags.`{NUMERICS}` = '{numerics}'")
    return [Source(run.data.tags[VARIANT_KEY], run.info.run_id, run.info.artifact_uri,
                   int(run.info.start_time or 0), run)
            for run in runs if run.data.tags.get(VARIANT_KEY) in wanted
            and RUNG not in run.data.tags]


def _copy_through_client(tracker: Tracker, pairs: Sequence[tuple[Any, Source]]) -> None:
    """Each source's every metric point and predictions.csv read through the client, written
    as a `ChildRun` by the tracker's writer threads."""
    from sweeps.tracking.readback import fetch_predictions, metric_histories

    run_ids = [source.run_id for _, source in pairs]
    by_key: dict[str, list[str]] = {}
    for _, source in pairs:
        for key in source.run.data.metrics:
            by_key.setdefault(key, []).append(source.run_id)
    points: dict[str, dict[str, tuple]] = {run_id: {} for run_id in run_ids}
    for key, ids in by_key.items():
        for run_id, curve in metric_histories(tracker.client, ids, key).items():
            points[run_id][key] = curve
    predictions = fetch_predictions(tracker.tracking_uri, run_ids)
    tracker.log_children([(variant.key, lambda variant=variant, source=source: _child(
        tracker, variant, source, points[source.run_id], predictions.get(source.run_id)))
        for variant, source in pairs])


def _child(tracker: Tracker, variant: Any, source: Source, points: dict[str, tuple],
           predictions: Predictions | None) -> ChildRun:
    """The copy of `source` as the `ChildRun` of `variant`."""
    tags = {key: value for key, value in source.run.data.tags.items() if key in COPIED_TAGS}
    new = _new_tags(tracker, variant, source.run_id)
    new.pop("mlflow.runName")                    # the client writer names the run itself
    tags.update(new)
    curves = curve_keys(tags)
    return ChildRun(
        variant_key=variant.key, name=_name(variant), tags=tags, params=_params(variant),
        history={key: points[key] for key in curves if key in points},
        final={key: decode_metric(value) for key, value in source.run.data.metrics.items()},
        points=[(key, float(value), int(step)) for key, (steps, values) in points.items()
                for step, value in zip(steps.tolist(), values.tolist())],
        predictions=predictions, kinds=tracker.kinds, variant=variant)
