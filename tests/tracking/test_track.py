"""SweepTracker: the MLflow layout, resume, retries, batching (real SQLite stores)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from tests.synthetic import log_sweep, synthetic_result, load_small_sweep
from sweeps.tracking import store
from sweeps.tracking.track import SweepTracker

pytestmark = pytest.mark.integration


def children(client: MlflowClient, experiment_id: str, parent_id: str, view=ViewType.ACTIVE_ONLY):
    return client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'",
                              run_view_type=view, max_results=1000)


def test_layout_read_back_with_mlflow_client(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path)
    tracker = SweepTracker(sweep, tracking_uri)
    assert tracker.start() == set()
    log_sweep(tracker, sweep)
    tracker.finish()

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("small")
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "small"
    assert parent.data.tags["sweep.role"] == "parent"
    assert parent.data.tags["sweep.name"] == "small"
    assert parent.data.tags["sweep.config_hash"] == sweep.config_hash
    assert json.loads(parent.data.tags["sweep.swept"]) == {
        "train.lr": "float", "model.hidden": "tuple", "seed": "int"}
    # Parent params: exactly the settings all variants share (not the swept ones).
    assert "train.lr" not in parent.data.params and "seed" not in parent.data.params
    assert parent.data.params["train.epochs"] == "1000"
    assert parent.data.params["model.activation"] == "sigmoid"
    sweep_file = client.download_artifacts(parent.info.run_id, "small.yaml", str(tmp_path / "d"))
    assert Path(sweep_file).read_text() == sweep.text

    runs = children(client, experiment.experiment_id, parent.info.run_id)
    assert len(runs) == len(sweep.variants) == 12
    by_key = {run.data.tags["sweep.variant_key"]: run for run in runs}
    for variant in sweep.variants:
        run = by_key[variant.key]
        assert run.info.status == "FINISHED"
        assert run.info.run_name == variant.name
        assert run.data.tags["sweep.role"] == "variant"
        assert run.data.tags["sweep.group_key"] == variant.group
        assert run.data.tags["sweep.status"] == "ok"
        # Every resolved setting is a param under its dotted path.
        assert set(run.data.params) == set(variant.settings)
        assert run.data.params["train.lr"] == repr(variant.settings["train.lr"])
        assert json.loads(run.data.params["model.hidden"]) == list(variant.settings["model.hidden"])
        assert run.data.params["seed"] == str(variant.settings["seed"])
        result = synthetic_result(sweep, variant)
        for key, value in result.metrics.items():
            assert run.data.metrics[key] == pytest.approx(value, rel=1e-15)
        assert "diverged_epoch" not in run.data.metrics
    # The loss history: one point per logged epoch, then the final value at step = epochs.
    variant = sweep.variants[0]
    run = by_key[variant.key]
    result = synthetic_result(sweep, variant)
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == list(range(0, 1000, 100)) + [1000]
    np.testing.assert_array_equal([m.value for m in history[:-1]], result.curves["train_loss"])
    assert history[-1].value == result.metrics["train_loss"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_mse")] == \
        list(range(0, 1100, 100))
    # predictions.csv: one row per test example: inputs, targets, predictions.
    path = client.download_artifacts(run.info.run_id, "predictions.csv", str(tmp_path / "p"))
    lines = Path(path).read_text().splitlines()
    assert lines[0] == "x1,x2,x3,target_y,pred_y"
    row = [float(x) for x in lines[1].split(",")]
    assert row[:4] == [0.2, 0.4, 0.6, 0.4]
    assert row[4] == result.predictions[0, 0]
    assert len(lines) == 2


def test_child_costs_one_create_one_batch_one_terminate_and_no_get_run(
        tmp_path, tracking_uri, monkeypatch):
    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    calls: dict[str, int] = {}
    client = tracker.client
    for name in ("create_run", "log_batch", "set_terminated", "get_run", "log_artifact",
                 "update_run", "search_runs", "set_tag"):
        original = getattr(client, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(client, name, spy)
    log_sweep(tracker, sweep)
    n = len(sweep.variants)
    assert calls == {"create_run": n, "log_batch": n, "set_terminated": n}


def test_diverged_variant_is_tagged_and_its_metrics_read_back_as_nan(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 5.0], "seed": [0]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep, diverge={1: 300})
    tracker.finish()
    client = MlflowClient(tracking_uri)
    run = client.get_run(tracker.records()[1].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["sweep.status"] == "diverged"
    assert math.isnan(run.data.metrics["train_loss"])
    assert math.isnan(run.data.metrics["test_loss"])
    assert run.data.metrics["diverged_epoch"] == 300
    # The history keeps the finite points (epochs 0-200), then the final NaN.
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 100, 200, 1000]
    assert math.isnan(history[-1].value) and all(math.isfinite(m.value) for m in history[:-1])
    record = tracker.records()[1]
    assert math.isnan(record.metrics["train_loss"])
    assert record.status == "diverged"


def test_resume_skips_finished_variants_and_deletes_unfinished_ones(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path)
    first = SweepTracker(sweep, tracking_uri)
    first.start()
    log_sweep(first, sweep, only=slice(0, 5))
    # A child the driver was writing when it was killed: created, never terminated.
    client = MlflowClient(tracking_uri)
    experiment_id = first.experiment_id
    half = client.create_run(experiment_id, run_name="half", tags={
        "mlflow.parentRunId": first.parent_run_id, "sweep.role": "variant",
        "sweep.variant_key": sweep.variants[5].key})
    # (killed: neither finish() nor cleanup ran)

    second = SweepTracker(sweep, tracking_uri)
    done = second.start()
    assert done == {v.key for v in sweep.variants[:5]}
    assert second.parent_run_id == first.parent_run_id
    assert client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
    # The resumed records carry what MLflow holds, histories included.
    assert [r.run_id for r in second.records()] == [r.run_id for r in first.records()]
    for mine, theirs in zip(second.records(), first.records()):
        assert mine.metrics == theirs.metrics
        for key, (steps, values) in theirs.history.items():
            np.testing.assert_array_equal(mine.history[key][0], steps)
            np.testing.assert_array_equal(mine.history[key][1], values)
    for variant in sweep.variants:
        if variant.key not in done:
            second.log_variant(variant, synthetic_result(sweep, variant))
    second.finish()

    runs = children(client, experiment_id, second.parent_run_id)
    keys = [r.data.tags["sweep.variant_key"] for r in runs]
    assert sorted(keys) == sorted(v.key for v in sweep.variants)     # exactly one per variant
    assert all(r.info.status == "FINISHED" for r in runs)
    assert client.get_run(second.parent_run_id).info.status == "FINISHED"
    # A third start finds everything done and trains nothing.
    assert SweepTracker(sweep, tracking_uri).start() == {v.key for v in sweep.variants}


def test_resume_reopens_a_killed_parent_and_fresh_starts_a_new_one(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0]})
    first = SweepTracker(sweep, tracking_uri)
    first.start()
    log_sweep(first, sweep, only=slice(0, 1))
    first.finish("KILLED")
    client = MlflowClient(tracking_uri)
    assert client.get_run(first.parent_run_id).info.status == "KILLED"

    again = SweepTracker(sweep, tracking_uri)
    assert len(again.start()) == 1
    assert again.parent_run_id == first.parent_run_id
    assert client.get_run(first.parent_run_id).info.status == "RUNNING"

    fresh = SweepTracker(sweep, tracking_uri, fresh=True)
    assert fresh.start() == set()
    assert fresh.parent_run_id != first.parent_run_id
    assert fresh.records() == []


def test_a_variant_logged_twice_is_written_once(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"seed": [0, 1]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    variant = sweep.variants[0]
    first = tracker.log_variant(variant, synthetic_result(sweep, variant))
    assert tracker.log_variant(variant, synthetic_result(sweep, variant)) == first
    client = MlflowClient(tracking_uri)
    assert len(children(client, tracker.experiment_id, tracker.parent_run_id)) == 1


class Flaky:
    """Makes one client method fail with a connection error once (before or after it ran)."""

    def __init__(self, monkeypatch, client, name, after=False):
        self.failures = 0
        original = getattr(client, name)

        def flaky(*args, **kwargs):
            if self.failures:
                return original(*args, **kwargs)
            self.failures += 1
            if after:                 # the server did it, the response got lost
                original(*args, **kwargs)
            raise ConnectionError("Connection refused: tracking server restarting")

        monkeypatch.setattr(client, name, flaky)


def _no_sleep(tracker):
    tracker._sleep = lambda seconds: None
    return tracker


def test_connection_error_mid_child_is_retried_without_a_duplicate(
        tmp_path, tracking_uri, monkeypatch):
    sweep = load_small_sweep(tmp_path, parameters={"seed": [0, 1]})
    tracker = _no_sleep(SweepTracker(sweep, tracking_uri))
    tracker.start()
    flaky = Flaky(monkeypatch, tracker.client, "log_batch")   # after create_run succeeded
    log_sweep(tracker, sweep)
    assert flaky.failures == 1
    client = MlflowClient(tracking_uri)
    active = children(client, tracker.experiment_id, tracker.parent_run_id)
    assert sorted(r.data.tags["sweep.variant_key"] for r in active) == \
        sorted(v.key for v in sweep.variants)
    assert all(r.info.status == "FINISHED" for r in active)
    every = children(client, tracker.experiment_id, tracker.parent_run_id, ViewType.ALL)
    assert len(every) == 3          # the half-written first attempt is deleted, not counted


def test_lost_response_after_finishing_a_child_reuses_it(tmp_path, tracking_uri, monkeypatch):
    sweep = load_small_sweep(tmp_path, parameters={"seed": [0]})
    tracker = _no_sleep(SweepTracker(sweep, tracking_uri))
    tracker.start()
    Flaky(monkeypatch, tracker.client, "set_terminated", after=True)
    run_id = tracker.log_variant(sweep.variants[0], synthetic_result(sweep, sweep.variants[0]))
    client = MlflowClient(tracking_uri)
    every = children(client, tracker.experiment_id, tracker.parent_run_id, ViewType.ALL)
    assert [r.info.run_id for r in every] == [run_id]
    assert every[0].info.status == "FINISHED"
    assert tracker.records()[0].run_id == run_id


def test_errors_that_are_not_transient_are_raised_at_once(tmp_path, tracking_uri, monkeypatch):
    sweep = load_small_sweep(tmp_path, parameters={"seed": [0]})
    tracker = _no_sleep(SweepTracker(sweep, tracking_uri))
    tracker.start()
    attempts = []

    def broken(*args, **kwargs):
        attempts.append(1)
        raise ValueError("a bug, not the network")

    monkeypatch.setattr(tracker.client, "log_batch", broken)
    with pytest.raises(ValueError, match="a bug"):
        tracker.log_variant(sweep.variants[0], synthetic_result(sweep, sweep.variants[0]))
    assert len(attempts) == 1


def test_finish_deletes_stray_unfinished_children(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"seed": [0]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep)
    client = MlflowClient(tracking_uri)
    stray = client.create_run(tracker.experiment_id, tags={
        "mlflow.parentRunId": tracker.parent_run_id, "sweep.variant_key": "x"})
    tracker.finish()
    assert client.get_run(stray.info.run_id).info.lifecycle_stage == "deleted"
    assert len(children(client, tracker.experiment_id, tracker.parent_run_id)) == 1


def test_classification_run_logs_accuracy_and_labelled_predictions(tmp_path, tracking_uri):
    from sweeps.execution.plan import make_packs
    from sweeps.execution.training import train_pack

    sweep = load_small_sweep(tmp_path, name="iris", source="iris", parameters={"seed": [0, 1]},
                        epochs=20, log_every=10, activation="tanh",
                        output_activation="softmax", loss="cross_entropy")
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    for pack in make_packs(sweep, workers=1):
        for result in train_pack(pack, sweep.datasets[pack.data_key]):   # real training
            tracker.log_variant(next(v for v in pack.variants if v.key == result.key), result)
    tracker.finish()
    client = MlflowClient(tracking_uri)
    record = tracker.records()[0]
    run = client.get_run(record.run_id)
    assert {"train_accuracy", "test_accuracy", "test_loss"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_accuracy")] == \
        [0, 10, 20]
    path = client.download_artifacts(run.info.run_id, "predictions.csv", str(tmp_path / "p"))
    header = Path(path).read_text().splitlines()[0]
    assert header.endswith("target_setosa,target_versicolor,target_virginica,pred_setosa,"
                           "pred_versicolor,pred_virginica,label,pred_label")
    dataset = next(iter(sweep.datasets.values()))
    assert len(Path(path).read_text().splitlines()) == 1 + len(dataset.X_test)


def test_deleted_experiment_gives_a_clear_error(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"seed": [0]})
    client = store.make_client(tracking_uri)
    client.delete_experiment(client.create_experiment("small"))
    with pytest.raises(RuntimeError, match="deleted; restore it"):
        SweepTracker(sweep, tracking_uri).start()
