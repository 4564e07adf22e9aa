"""Workers writing the packs they trained (`sweeps.tracking.pack_writer`), on real Ray and a
real PostgreSQL server: exactly once when a worker dies between its commit and its return,
the rows' rules equal the installed MLflow's, and who writes where."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path

import pytest

from sweeps.execution import execute
from sweeps.execution.plan import make_packs
from sweeps.tracking import rows
from sweeps.tracking.bulk import CHILD_WRITERS_ENV, BulkTracker
from sweeps.tracking.pack_writer import PackWriter, Unwritten, Written, settle
from tests.synthetic import load_small_sweep

pytestmark = pytest.mark.integration


@dataclasses.dataclass(frozen=True)
class DiesAfterCommit(PackWriter):
    """The first attempt of each pack commits, then its worker process exits at once."""

    markers: str = ""

    def _committed(self, records) -> None:
        marker = Path(self.markers) / records[0].variant_key
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return                                    # the retry: return normally
        os._exit(1)


def child_rows(uri: str, parent_run_id: str) -> list[tuple]:
    """(variant key, status, lifecycle stage) of every run row under the parent."""
    from sqlalchemy import create_engine, text

    engine = create_engine(uri)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(
                "SELECT k.value, r.status, r.lifecycle_stage FROM runs r "
                "JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'mlflow.parentRunId' "
                "JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'sweep.variant_key' "
                "WHERE p.value = :parent"), {"parent": parent_run_id})]
    finally:
        engine.dispose()


def test_a_worker_killed_between_commit_and_return_leaves_each_child_once(
        postgresql_uri, ray_session, tmp_path):
    sweep = load_small_sweep(tmp_path, epochs=200, log_every=20)
    tracker = BulkTracker(sweep, postgresql_uri)
    tracker.start()
    base = tracker.pack_writer()
    markers = tmp_path / "died"
    markers.mkdir()
    writer = DiesAfterCommit(**{f.name: getattr(base, f.name)
                                for f in dataclasses.fields(PackWriter)}, markers=str(markers))
    packs = make_packs(sweep, workers=2)
    by_key = {variant.key: variant for variant in sweep.variants}
    outcomes, failed = [], []

    def on_done(pack, outcome):
        outcomes.append(outcome)
        settle(tracker, by_key, outcome)

    execute.run_ray(packs, sweep.datasets, on_done, lambda pack, error: failed.append(error),
                    writer=writer)
    tracker.finish()

    assert not failed
    assert len(list(markers.iterdir())) == len(packs)      # every pack's worker died once
    assert all(isinstance(outcome, Written) for outcome in outcomes), outcomes
    found = child_rows(postgresql_uri, tracker.parent_run_id)
    assert Counter(key for key, _, _ in found) == Counter(set(by_key))   # each exactly once
    assert {(status, stage) for _, status, stage in found} == {("FINISHED", "active")}
    assert {r.variant_key for r in tracker.records()} == set(by_key)


def test_a_second_write_of_a_pack_finds_the_first_and_writes_nothing(postgresql_uri, tmp_path):
    """Two attempts of the same pack (a retry, or a worker wrongly believed dead): the same
    run ids and records, one row each."""
    from sweeps.execution.training import train_pack

    sweep = load_small_sweep(tmp_path, epochs=200, log_every=20)
    tracker = BulkTracker(sweep, postgresql_uri)
    tracker.start()
    writer = tracker.pack_writer()
    [pack] = [p for p in make_packs(sweep, workers=1)][:1]
    results = train_pack(pack, sweep.datasets[pack.data_key])
    first = writer.write(pack, sweep.datasets[pack.data_key], results)
    second = writer.write(pack, sweep.datasets[pack.data_key], results)
    assert isinstance(first, Written) and isinstance(second, Written)
    assert [(r.run_id, r.start_time) for r in first.records] == \
        [(r.run_id, r.start_time) for r in second.records]
    found = child_rows(postgresql_uri, tracker.parent_run_id)
    assert sorted(key for key, _, _ in found) == sorted(v.key for v in pack.variants)


def test_a_worker_that_cannot_reach_the_database_hands_its_results_back(postgresql_uri,
                                                                        tmp_path):
    from sweeps.execution.training import train_pack

    sweep = load_small_sweep(tmp_path, epochs=200, log_every=20)
    tracker = BulkTracker(sweep, postgresql_uri)
    tracker.start()
    writer = dataclasses.replace(tracker.pack_writer(),
                                 connect=(("dbname", "none"), ("host", "127.0.0.1"),
                                          ("port", 1), ("connect_timeout", 2)))
    pack = make_packs(sweep, workers=1)[0]
    results = train_pack(pack, sweep.datasets[pack.data_key])
    outcome = writer.write(pack, sweep.datasets[pack.data_key], results)
    assert isinstance(outcome, Unwritten) and "127.0.0.1" in outcome.error
    settle(tracker, {v.key: v for v in sweep.variants}, outcome)     # the driver writes it
    assert sorted(key for key, _, _ in child_rows(postgresql_uri, tracker.parent_run_id)) == \
        sorted(v.key for v in pack.variants)


def test_workers_write_only_to_postgresql_and_not_when_told_so(tracking_uri, postgresql_uri,
                                                                 tmp_path, monkeypatch):
    sweep = load_small_sweep(tmp_path)
    sqlite = BulkTracker(sweep, tracking_uri)
    sqlite.start()
    assert sqlite.pack_writer() is None                     # SQLite keeps one writer
    postgres = BulkTracker(sweep, postgresql_uri)
    postgres.start()
    assert isinstance(postgres.pack_writer(), PackWriter)
    monkeypatch.setenv(CHILD_WRITERS_ENV, "driver")
    assert postgres.pack_writer() is None
    monkeypatch.setenv(CHILD_WRITERS_ENV, "everyone")
    with pytest.raises(ValueError, match=CHILD_WRITERS_ENV):
        postgres.pack_writer()


def test_the_rows_follow_the_installed_mlflow():
    """The values `sweeps.tracking.rows` mirrors, against MLflow itself."""
    from mlflow.entities import LifecycleStage, RunStatus, SourceType
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils import validation
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    assert rows.MLFLOW_RULES == dict(
        MAX_PARAM_VAL_LENGTH=validation.MAX_PARAM_VAL_LENGTH,
        MAX_TAG_VAL_LENGTH=validation.MAX_TAG_VAL_LENGTH, RUN_NAME_TAG=MLFLOW_RUN_NAME,
        SOURCE_UNKNOWN=SourceType.to_string(SourceType.UNKNOWN),
        FINISHED=RunStatus.to_string(RunStatus.FINISHED), ACTIVE=LifecycleStage.ACTIVE)
    for value in (float("nan"), float("inf"), float("-inf"), 0.25, -3.0):
        assert rows.sanitize_metric_value(value) == \
            SqlAlchemyStore.sanitize_metric_value(None, value)


def test_halving_children_are_written_by_workers_once_each_as_the_driver_writes_them(
        postgresql_uri, ray_session, tmp_path, monkeypatch):
    """Successive halving on PostgreSQL: the variants a round stops (their curves joined
    across rounds in the driver) are written by Ray write tasks, each of which dies once
    between its commit and its return and is retried; every variant is one child, whose raw
    rows and the search's picks equal those of the same sweep written by the driver."""
    import socket

    from mlflow import MlflowClient

    from sweeps import run_sweep
    from tests.sweep_files import write_halving_sweep
    from tests.tracking.test_contract import Side, raw_rows

    markers = tmp_path / "died"
    markers.mkdir()
    pack_writer = BulkTracker.pack_writer

    def dies_after_commit(tracker):
        base = pack_writer(tracker)
        if base is None:
            return None
        return DiesAfterCommit(**{f.name: getattr(base, f.name)
                                  for f in dataclasses.fields(PackWriter)},
                               markers=str(markers))

    monkeypatch.setattr(BulkTracker, "pack_writer", dies_after_commit)
    by_workers = run_sweep(write_halving_sweep(tmp_path, name="workers"),
                           tracking_uri=postgresql_uri, progress=False)
    monkeypatch.setenv(CHILD_WRITERS_ENV, "driver")
    by_driver = run_sweep(write_halving_sweep(tmp_path, name="driver"),
                          tracking_uri=postgresql_uri, progress=False)

    driver = f"{socket.gethostname()}:{os.getpid()}"
    assert not by_driver.writers               # (counted where workers may write)
    assert by_workers.writers and driver not in by_workers.writers
    batches = sum(by_workers.writers.values())
    died = {marker.name for marker in markers.iterdir()}
    assert len(died) == batches > 1                          # each write task died once
    status = dict(zip(by_workers.frame["variant_key"], by_workers.frame["status"]))
    assert {status[key] for key in died} == {"ok", "pruned"}    # the last round's and others'
    keys = {v.key for v in by_workers.sweep.variants}
    found = child_rows(postgresql_uri, by_workers.parent_run_id)
    assert Counter(key for key, _, _ in found) == Counter(keys)           # each exactly once
    assert {(status, stage) for _, status, stage in found} == {("FINISHED", "active")}

    columns = ["variant_key", "status", "rung", "stopped_epoch"]
    assert by_workers.frame[columns].equals(by_driver.frame[columns])
    assert list(by_workers.summary["group_key"]) == list(by_driver.summary["group_key"])
    client = MlflowClient(postgresql_uri)

    def side(outcome) -> Side:
        records = [dataclasses.make_dataclass("R", ["variant_key", "run_id"])(key, run_id)
                   for key, run_id in zip(outcome.frame["variant_key"], outcome.frame["run_id"])]
        tracker = type("T", (), {"experiment_id": outcome.experiment_id,
                                 "parent_run_id": outcome.parent_run_id,
                                 "records": lambda self: records})()
        made = Side(client, tracker)
        made.aliases[f"/{outcome.experiment_id}/"] = "/<experiment>/"   # in artifact URIs
        return made

    def rows(s: Side) -> dict:
        got = raw_rows(client, s)
        for row in got["runs"]:
            assert row.pop("experiment_id") == int(s.experiment_id)
        for row in got["metrics"] + got["latest_metrics"]:
            if row["key"] == "train_seconds":              # measured: differs run to run
                assert float(row.pop("value")) > 0
        return got

    workers_side, driver_side = side(by_workers), side(by_driver)
    assert workers_side.normalize(rows(workers_side)) == driver_side.normalize(rows(driver_side))


def test_halving_children_a_write_task_cannot_store_are_written_by_the_driver(
        postgresql_uri, ray_session, tmp_path, monkeypatch):
    import socket

    from sweeps import run_sweep
    from tests.sweep_files import write_halving_sweep

    pack_writer = BulkTracker.pack_writer
    monkeypatch.setattr(BulkTracker, "pack_writer", lambda tracker: dataclasses.replace(
        pack_writer(tracker), connect=(("dbname", "none"), ("host", "127.0.0.1"), ("port", 1),
                                       ("connect_timeout", 2))))
    outcome = run_sweep(write_halving_sweep(tmp_path, name="unreachable"),
                        tracking_uri=postgresql_uri, progress=False)
    assert set(outcome.writers) == {f"{socket.gethostname()}:{os.getpid()}"}
    found = child_rows(postgresql_uri, outcome.parent_run_id)
    assert Counter(key for key, _, _ in found) == Counter(v.key for v in outcome.sweep.variants)


def test_halving_resumed_after_a_crash_before_its_checkpoint_writes_no_variant_twice(
        postgresql_uri, ray_session, tmp_path, monkeypatch):
    """The driver dies as it writes a round's checkpoint: the variants that round stopped are
    already stored by the write tasks; the resumed search writes them again to no effect."""
    from sweeps import run_sweep
    from sweeps.tracking.track import SweepTracker
    from tests.sweep_files import write_halving_sweep

    path = write_halving_sweep(tmp_path, name="crash")
    stored_at_crash: list[tuple] = []
    crashed: list[str] = []
    write_parent_file = SweepTracker.write_parent_file

    def dies_at_the_first_checkpoint(tracker, name, data):
        if name.endswith("checkpoint.npz") and not stored_at_crash:
            stored_at_crash.extend(child_rows(postgresql_uri, tracker.parent_run_id))
            crashed.append(tracker.parent_run_id)
            raise SystemExit("the driver dies before its checkpoint")
        return write_parent_file(tracker, name, data)

    monkeypatch.setattr(SweepTracker, "write_parent_file", dies_at_the_first_checkpoint)
    with pytest.raises(SystemExit):
        run_sweep(path, tracking_uri=postgresql_uri, progress=False)
    assert stored_at_crash                 # a round's stopped variants, before its checkpoint
    outcome = run_sweep(path, tracking_uri=postgresql_uri, progress=False)
    assert outcome.writers and crashed == [outcome.parent_run_id]      # the same search, resumed
    found = child_rows(postgresql_uri, outcome.parent_run_id)
    assert Counter(key for key, _, _ in found) == Counter(v.key for v in outcome.sweep.variants)
    assert {key for key, _, _ in stored_at_crash} <= {key for key, _, _ in found}
