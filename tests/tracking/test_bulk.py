"""BulkTracker beyond the contract: whole batches or nothing, lost commits, the version pin,
SQLite statistics, and which writer `open_tracker` picks (real SQLite stores)."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from mlflow import MlflowClient

from sweeps.tracking import bulk, open_tracker
from sweeps.tracking.bulk import BulkTracker
from sweeps.tracking.track import SweepTracker
from tests.synthetic import synthetic_result, load_small_sweep

pytestmark = pytest.mark.integration


def batch_of(sweep, n: int = 4) -> list:
    return [(v, synthetic_result(sweep, v)) for v in sweep.variants[:n]]


def children(uri: str, parent_id: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("small")
    return client.search_runs([experiment.experiment_id],
                              f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def test_open_tracker_picks_bulk_for_databases_and_threads_for_servers(tmp_path):
    sweep = load_small_sweep(tmp_path)
    for uri in ("sqlite:///x.db", "postgresql+psycopg2://u@h/db", "mysql://u@h/db"):
        assert type(open_tracker(uri, sweep)) is BulkTracker
    server = open_tracker("http://127.0.0.1:5000", sweep)
    assert type(server) is SweepTracker and server.writers > 1
    assert type(open_tracker("file:///tmp/mlruns", sweep)) is SweepTracker


def run_dirs(tmp_path) -> set[str]:
    """The run directories under the experiment's artifact location (beside the store)."""
    return {path.name for path in (tmp_path / "mlruns" / "small").iterdir()}


def test_a_failing_batch_leaves_no_child_at_all(tracking_uri, tmp_path, monkeypatch):
    sweep = load_small_sweep(tmp_path)
    tracker = BulkTracker(sweep, tracking_uri)
    tracker.start()
    assert tracker.bulk
    rows_of = bulk.batch_rows

    def duplicate_last_metric(*args, **kwargs):      # the last insert of the batch fails
        rows = rows_of(*args, **kwargs)
        rows["latest_metrics"].append(dict(rows["latest_metrics"][-1]))
        return rows

    monkeypatch.setattr(bulk, "batch_rows", duplicate_last_metric)
    with pytest.raises(Exception, match="(?i)unique|integrity"):
        tracker.log_variants(batch_of(sweep))
    assert children(tracking_uri, tracker.parent_run_id) == []
    assert tracker.records() == []
    # Its predictions files, written before the commit, are gone with it.
    assert run_dirs(tmp_path) == {tracker.parent_run_id}

    monkeypatch.setattr(bulk, "batch_rows", rows_of)
    tracker.log_variants(batch_of(sweep))           # the same batch, whole this time
    tracker.finish()
    runs = children(tracking_uri, tracker.parent_run_id)
    assert sorted(r.data.tags["sweep.variant_key"] for r in runs) == \
        sorted(v.key for v in sweep.variants[:4])
    assert all(r.info.status == "FINISHED" for r in runs)
    assert run_dirs(tmp_path) == {tracker.parent_run_id} | {r.info.run_id for r in runs}


def test_a_batch_whose_artifacts_fail_midway_leaves_no_file(tracking_uri, tmp_path,
                                                             monkeypatch):
    from sweeps.tracking import child

    sweep = load_small_sweep(tmp_path)
    tracker = BulkTracker(sweep, tracking_uri)
    tracker.start()
    write_csv = child.write_csv
    written = []

    def fail_the_third(path, columns, values):
        written.append(path)
        write_csv(path, columns, values)                # (written in full, then it fails)
        if len(written) == 3:
            raise OSError("No space left on device")

    monkeypatch.setattr(child, "write_csv", fail_the_third)
    with pytest.raises(OSError, match="No space left"):
        tracker.log_variants(batch_of(sweep))
    assert len(written) == 3
    assert children(tracking_uri, tracker.parent_run_id) == []
    assert run_dirs(tmp_path) == {tracker.parent_run_id}


def test_a_commit_whose_answer_is_lost_is_not_written_twice(tracking_uri, tmp_path, monkeypatch):
    sweep = load_small_sweep(tmp_path)
    tracker = BulkTracker(sweep, tracking_uri)
    tracker._sleep = lambda seconds: None
    tracker.start()
    insert = bulk._insert
    calls = []

    def commit_then_lose_the_answer(store, rows):
        calls.append(len(rows["runs"]))
        insert(store, rows)
        if len(calls) == 1:
            raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(bulk, "_insert", commit_then_lose_the_answer)
    run_ids = tracker.log_variants(batch_of(sweep))
    assert calls == [4]                              # the retry found all four written
    runs = children(tracking_uri, tracker.parent_run_id)
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids)
    client = MlflowClient(tracking_uri)              # ... and their predictions are kept
    for run_id in run_ids:
        assert [f.path for f in client.list_artifacts(run_id)] == ["predictions.csv"]
    assert tracker.log_variants(batch_of(sweep)) == run_ids      # logged already: no write
    assert calls == [4]


def test_sigterm_inside_the_transaction_waits_for_its_commit(tracking_uri, tmp_path):
    """CI once saw SIGTERM land inside the batch's INSERTs: the cut transaction kept SQLite's
    write lock, and marking the parent KILLED failed with "database is locked" for 95 s."""
    import os
    import signal

    from sqlalchemy import event

    from sweeps import stopping

    sweep = load_small_sweep(tmp_path)
    tracker = BulkTracker(sweep, tracking_uri)
    tracker.start()
    engine = tracker.client._tracking_client.store.engine
    sent = []

    def signal_on_the_metrics_insert(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO metrics") and not sent:
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGTERM)       # the handler runs here, mid-transaction

    event.listen(engine, "before_cursor_execute", signal_on_the_metrics_insert)
    try:
        with stopping.signals_as_exceptions(), pytest.raises(stopping.Signalled):
            tracker.log_variants(batch_of(sweep))
    finally:
        event.remove(engine, "before_cursor_execute", signal_on_the_metrics_insert)
    assert sent
    assert len(tracker.records()) == 4                 # the batch went in whole ...
    tracker.finish("KILLED")                           # ... and the store is not locked
    runs = children(tracking_uri, tracker.parent_run_id)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert MlflowClient(tracking_uri).get_run(tracker.parent_run_id).info.status == "KILLED"


def test_another_mlflow_or_schema_falls_back_to_the_client_and_says_so_once(
        tracking_uri, tmp_path, monkeypatch, caplog):
    import mlflow

    sweep = load_small_sweep(tmp_path)
    monkeypatch.setattr(bulk, "_warned", set())
    monkeypatch.setattr(mlflow, "__version__", "99.0.0")
    with caplog.at_level(logging.WARNING, logger=bulk.__name__):
        for fresh in (False, True):
            tracker = BulkTracker(sweep, tracking_uri, fresh=fresh)
            tracker.start()
            assert not tracker.bulk
            tracker.log_variants(batch_of(sweep, 2))
            tracker.finish()
    warnings = [r.getMessage() for r in caplog.records if r.name == bulk.__name__]
    assert len(warnings) == 1 and "MLflow 3.17.2" in warnings[0] and "99.0.0" in warnings[0]
    assert len(children(tracking_uri, tracker.parent_run_id)) == 2     # the client wrote them

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bulk, "_warned", set())
    path = tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'abc123'")
    store = MlflowClient(tracking_uri)._tracking_client.store
    assert "abc123" in bulk.unsupported_reason(store)


def test_bulk_writes_to_sqlite_leave_statistics_for_the_query_planner(tracking_uri, tmp_path):
    sweep = load_small_sweep(tmp_path)
    tracker = BulkTracker(sweep, tracking_uri)
    tracker.start()
    tracker.log_variants(batch_of(sweep))
    path = tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        before = connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0]
    tracker.finish()
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT tbl FROM sqlite_stat1")}
    assert before == 0
    assert {"metrics", "runs", "tags", "params"} <= tables


def test_predictions_behind_a_server_are_read_through_it_for_runs_in_its_database(
        postgresql_uri, tmp_path, serve, monkeypatch):
    """docker-compose.yml's set-up: the driver writes runs into the server's database and
    artifacts through the server's proxy; reading predictions back (the plots of a resumed
    sweep, `sweeps verify`) goes the same way, not through the database URI."""
    import pandas as pd

    from sweeps.report import results

    monkeypatch.setenv("SWEEPS_ARTIFACTS_SERVER", serve(postgresql_uri))
    sweep = load_small_sweep(tmp_path)
    tracker = BulkTracker(sweep, postgresql_uri)
    tracker.start()
    run_ids = tracker.log_variants(batch_of(sweep, 2))
    tracker.finish()
    location = MlflowClient(postgresql_uri).get_experiment_by_name("small").artifact_location
    assert location.startswith("mlflow-artifacts:")
    loaded = results.load_predictions(run_ids, postgresql_uri)
    assert sorted(loaded) == sorted(run_ids)
    for record in tracker.records():
        pd.testing.assert_frame_equal(loaded[record.run_id],
                                      results.predictions_frame(record.predictions))
    monkeypatch.delenv("SWEEPS_ARTIFACTS_SERVER")
    with pytest.raises(RuntimeError, match="set SWEEPS_ARTIFACTS_SERVER"):
        results.load_predictions(run_ids, postgresql_uri)
