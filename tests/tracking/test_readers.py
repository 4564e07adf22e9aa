"""The set-based SQL reader and the MlflowClient reader give the same records and tables.

The store holds what a real sweep leaves behind: diverged variants (NaN), a +-inf metric, an
older FINISHED duplicate of a variant (a resumed sweep), a newer unfinished and a newer deleted
child, another sweep run in the same experiment. Run on SQLite, and on PostgreSQL when it is
installed.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from sweeps.report import results
from sweeps.tracking.readback import read_sweep
from sweeps.tracking.track import SweepTracker
from tests.synthetic import log_sweep, load_small_sweep

pytestmark = pytest.mark.integration

GRID = {"train.lr": [0.1, 0.5], "model.hidden": [2, [4, 4]], "train.batch_size": [None, 2],
        "seed": [0, 1]}


def awkward_store(tmp_path, uri):
    """A sweep logged by the writer, then edited into every shape the readers must handle."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    sweep = load_small_sweep(tmp_path, parameters=GRID)
    other = SweepTracker(sweep, uri, fresh=True)      # an older sweep run: never mixed in
    other.start()
    log_sweep(other, sweep, only=slice(0, 2))
    other.finish()
    tracker = SweepTracker(sweep, uri, fresh=True)
    tracker.start()
    log_sweep(tracker, sweep, diverge={1: 300, 6: 0})
    client = MlflowClient(uri)
    first, second = tracker.records()[:2]
    now = int(time.time() * 1000)
    client.log_batch(first.run_id, metrics=[Metric("train_loss", math.inf, now, 5000),
                                            Metric("test_mse", -math.inf, now, 1000)])
    tags = {"mlflow.parentRunId": tracker.parent_run_id, "sweep.role": "variant",
            "sweep.variant_key": second.variant_key, "sweep.group_key": second.group_key,
            "sweep.status": "ok", "sweep.variant_index": str(second.index),
            "sweep.curves": "train_loss"}
    older = client.create_run(tracker.experiment_id, start_time=second.start_time - 10,
                              tags=tags, run_name="older")
    client.log_batch(older.info.run_id, metrics=[Metric("train_loss", 0.5, now, 0)])
    client.set_terminated(older.info.run_id)
    client.create_run(tracker.experiment_id, start_time=now + 10, tags=tags, run_name="half")
    deleted = client.create_run(tracker.experiment_id, start_time=now + 20, tags=tags,
                                run_name="deleted")
    client.set_terminated(deleted.info.run_id)
    client.delete_run(deleted.info.run_id)
    return sweep, tracker


def assert_same_records(mine, theirs):
    assert [r.run_id for r in mine] == [r.run_id for r in theirs]
    for a, b in zip(mine, theirs):
        for name in ("run_id", "name", "start_time", "variant_key", "group_key", "status",
                     "index", "curves", "swept", "settings", "predictions"):
            assert getattr(a, name) == getattr(b, name), name
        assert a.metrics.keys() == b.metrics.keys()
        np.testing.assert_array_equal(list(a.metrics.values()), list(b.metrics.values()))
        assert (a.history is None) == (b.history is None)
        if a.history is not None:
            assert a.history.keys() == b.history.keys()
            for key in a.history:
                for x, y in zip(a.history[key], b.history[key]):
                    assert x.dtype == y.dtype
                    np.testing.assert_array_equal(x, y)


def check_readers_agree(tmp_path, uri):
    sweep, tracker = awkward_store(tmp_path, uri)
    for histories in (False, True):
        fast = read_sweep("small", uri, histories=histories, reader="sql")
        slow = read_sweep("small", uri, histories=histories, reader="client")
        assert fast.parent_run_id == slow.parent_run_id == tracker.parent_run_id
        assert fast.swept == slow.swept
        assert_same_records(fast.records, slow.records)
    records = fast.records
    assert len(records) == len(sweep.variants)
    assert records[1].run_id == tracker.records()[1].run_id      # the newest FINISHED one
    assert records[0].metrics["train_loss"] == math.inf
    assert records[0].metrics["test_mse"] == -math.inf
    assert records[0].history["train_loss"][1][-1] == math.inf
    assert math.isnan(records[1].metrics["test_loss"])
    assert records[6].history["train_loss"][0].tolist() == [1000]   # diverged at once
    assert records[4].settings["model.hidden"] == (4, 4)
    assert records[4].settings["train.batch_size"] is None
    # The tables the writer's in-memory records give, exactly (but for the edited run).
    frame = results.frame_from_records(records)
    pd.testing.assert_frame_equal(frame.iloc[1:].reset_index(drop=True),
                                  results.frame_from_records(tracker.records()[1:]),
                                  check_exact=True)
    pd.testing.assert_frame_equal(
        results.curves_from_records(records[1:]),
        results.curves_from_records(tracker.records()[1:]), check_exact=True)
    # load_runs uses the fast reader on database stores.
    pd.testing.assert_frame_equal(results.load_runs("small", uri), frame, check_exact=True)


def test_sql_and_client_readers_agree_on_sqlite(tmp_path, tracking_uri):  # noqa: F811
    check_readers_agree(tmp_path, tracking_uri)


def test_the_sql_reader_is_refused_for_a_tracking_server_and_unknown_readers_named():
    with pytest.raises(ValueError, match="needs a database store, not http://127.0.0.1:9"):
        read_sweep("small", "http://127.0.0.1:9", reader="sql")      # fails before connecting
    with pytest.raises(ValueError, match="reader must be one of auto, sql, client"):
        read_sweep("small", "sqlite:///x.db", reader="fast")


def test_sql_and_client_readers_agree_on_postgresql(tmp_path, postgresql_uri):
    check_readers_agree(tmp_path, postgresql_uri)


@pytest.mark.parametrize("path", ["sql", "client"])
def test_resume_keeps_the_newest_finished_child_of_each_variant_and_deletes_the_rest(
        tmp_path, store_uri, path, monkeypatch):
    """A database store is resumed through the SQL reader (a tracking server through the
    client): the same records either way, and the same children deleted."""
    from mlflow import MlflowClient

    from sweeps.tracking import sqlread

    sweep, tracker = awkward_store(tmp_path, store_uri)
    expected = read_sweep("small", store_uri, histories=True, reader="client").records
    if path == "client":
        monkeypatch.setattr(sqlread, "is_sql_store", lambda store: False)
    filters = []
    search_runs = MlflowClient.search_runs

    def spy(self, experiment_ids, filter_string="", *args, **kwargs):
        filters.append(filter_string)
        return search_runs(self, experiment_ids, filter_string, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", spy)
    resumed = SweepTracker(sweep, store_uri)
    assert resumed.start() == {v.key for v in sweep.variants}
    monkeypatch.undo()
    assert resumed.parent_run_id == tracker.parent_run_id
    assert_same_records(resumed.records(), expected)
    searched_children = [f for f in filters if "mlflow.parentRunId" in f]
    assert bool(searched_children) == (path == "client"), filters

    client = MlflowClient(store_uri)
    runs = client.search_runs([tracker.experiment_id], "tags.`sweep.role` = 'variant'",
                              max_results=1000)
    ours = sorted(r.info.run_id for r in runs
                  if r.data.tags["mlflow.parentRunId"] == tracker.parent_run_id)
    assert ours == sorted(r.run_id for r in expected)  # the older and the unfinished: deleted
    assert len(runs) - len(ours) == 2                  # the other sweep run's: untouched


@pytest.mark.parametrize("path", ["sql", "client"])
def test_a_retry_looks_only_at_the_children_of_its_own_variants(tmp_path, tracking_uri, path,
                                                                 monkeypatch):
    from mlflow import MlflowClient

    from sweeps.tracking import sqlread
    from sweeps.tracking.readback import finished_children

    sweep, tracker = awkward_store(tmp_path, tracking_uri)
    if path == "client":
        monkeypatch.setattr(sqlread, "is_sql_store", lambda store: False)
    first, second = tracker.records()[:2]
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([tracker.experiment_id],
                              f"tags.`sweep.variant_key` = '{second.variant_key}'")
    others = sorted(r.info.run_id for r in runs if r.info.run_name in ("older", "half"))
    assert len(others) == 2
    records, drop = finished_children(client, tracker.experiment_id, tracker.parent_run_id,
                                      tracker.kinds, {second.variant_key})
    assert [r.run_id for r in records] == [second.run_id]
    assert sorted(drop) == others
    np.testing.assert_array_equal(records[0].history["train_loss"][1],    # NaN: diverged
                                  second.history["train_loss"][1])
    records, drop = finished_children(client, tracker.experiment_id, tracker.parent_run_id,
                                      tracker.kinds, {first.variant_key, "no-such-key"})
    assert [r.run_id for r in records] == [first.run_id] and drop == []
