"""sweeps.report.results: tables from records and from MLflow are identical; seed summaries."""

from __future__ import annotations

import math
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from sweeps.report import results
from sweeps.tracking.contract import encode_param
from sweeps.tracking.track import SweepTracker
from tests.synthetic import log_sweep, load_small_sweep

integration = pytest.mark.integration


def logged(tmp_path, tracking_uri, diverge=None, **kwargs):
    sweep = load_small_sweep(tmp_path, **kwargs)
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep, diverge=diverge)
    tracker.finish()
    return sweep, tracker


@integration
def test_tables_from_mlflow_equal_the_in_memory_tables(tmp_path, tracking_uri):
    sweep, tracker = logged(tmp_path, tracking_uri, diverge={3: 200, 7: 500})
    frame = results.frame_from_records(tracker.records())
    loaded = results.load_runs("small", tracking_uri)
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded.attrs["swept"] == ["train.lr", "model.hidden", "seed"]
    pd.testing.assert_frame_equal(results.load_runs(None, tracking_uri, sweep=sweep), frame)
    curves = results.curves_from_records(tracker.records())
    pd.testing.assert_frame_equal(results.load_curves("small", tracking_uri), curves)
    pd.testing.assert_frame_equal(results.summarize(loaded), results.summarize(frame))

    assert len(frame) == len(sweep.variants)
    assert frame["variant_key"].tolist() == [v.key for v in sweep.variants]   # sweep order
    assert frame["name"].tolist() == [v.name for v in sweep.variants]
    assert frame["status"].tolist().count("diverged") == 2
    assert list(curves.columns) == ["run_id", "epoch", "train_loss", "train_mse"]
    assert len(curves) == sum(11 if i not in (3, 7) else {3: 3, 7: 6}[i]
                              for i in range(len(sweep.variants)))
    # run_id: a code per row, each id once (a string per row was 185 MB at 48,000 variants)
    assert isinstance(curves["run_id"].dtype, pd.CategoricalDtype)
    assert list(curves["run_id"].cat.categories) == frame["run_id"].tolist()
    assert curves.groupby("run_id").size().tolist() == [
        11 if i not in (3, 7) else {3: 3, 7: 6}[i] for i in range(len(sweep.variants))]


@integration
def test_tables_of_a_really_trained_sweep_equal_after_the_round_trip(tmp_path, tracking_uri):
    from sweeps.execution.plan import make_packs
    from sweeps.execution.training import train_pack

    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1]},
                        epochs=300, log_every=50)
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    by_key = {v.key: v for v in sweep.variants}
    for pack in make_packs(sweep, workers=1):
        for result in train_pack(pack, sweep.datasets[pack.data_key]):
            tracker.log_variant(by_key[result.key], result)
    tracker.finish()
    frame = results.frame_from_records(tracker.records())
    pd.testing.assert_frame_equal(results.load_runs("small", tracking_uri), frame,
                                  check_exact=True)
    assert frame["diverged_epoch"].isna().all()        # the column exists even when none did
    pd.testing.assert_frame_equal(results.load_curves("small", tracking_uri),
                                  results.curves_from_records(tracker.records()),
                                  check_exact=True)


@integration
def test_columns_have_the_dtypes_of_their_values(tmp_path, tracking_uri):
    grid = {"train.lr": [0.1, 1], "model.hidden": [2, [8, 8]], "model.bias": [True, False],
            "train.batch_size": [None, 2], "model.init": ["uniform01", "xavier_normal"],
            "seed": [0]}
    logged(tmp_path, tracking_uri, parameters=grid, diverge={0: 100})
    frame = results.load_runs("small", tracking_uri)
    dtypes = frame.dtypes.astype(str).to_dict()
    assert dtypes["train.lr"] == "float64"
    assert dtypes["model.bias"] == "bool"
    assert dtypes["train.batch_size"] == "Int64"
    assert dtypes["seed"] == "int64"
    assert dtypes["model.init"] == "str"
    assert dtypes["model.hidden"] == "str"  # mixed depths: "2", "8x8", as in run names
    assert set(frame["model.hidden"]) == {"2", "8x8"}
    for metric in ("train_loss", "train_mse", "test_loss", "test_mse", "train_seconds"):
        assert dtypes[metric] == "float64"
    assert dtypes["diverged_epoch"] == "Int64"
    assert frame["diverged_epoch"].tolist()[:2] == [100, pd.NA]
    assert frame["train.batch_size"].isna().sum() == len(frame) // 2
    # Tables round-trip through parquet and still group by every setting.
    frame.to_parquet(tmp_path / "results.parquet")
    again = pd.read_parquet(tmp_path / "results.parquet")
    assert again.groupby("model.hidden").size().to_dict() == {"2": 16, "8x8": 16}
    # Numeric settings compare and aggregate as numbers.
    assert frame.groupby("train.lr")["train_loss"].mean().index.tolist() == [0.1, 1.0]


def _bulk_children(tracker, sweep, now):
    """Write FINISHED children straight into MLflow's SQL tables, in one transaction.

    (Through the client each child costs ~40 ms; 1005 of them would dominate the test.)
    """
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag

    runs, tags, params, metrics = [], [], [], []
    for variant in sweep.variants:
        run_id = uuid.uuid4().hex
        runs.append(dict(
            run_uuid=run_id, name=variant.name, experiment_id=int(tracker.experiment_id),
            status="FINISHED", lifecycle_stage="active", start_time=now + variant.index,
            end_time=now + variant.index, artifact_uri="", source_type="LOCAL",
            source_name="", entry_point_name="", user_id="test", source_version=""))
        tags += [dict(run_uuid=run_id, key=k, value=v) for k, v in {
            "mlflow.parentRunId": tracker.parent_run_id, "mlflow.runName": variant.name,
            "sweep.role": "variant", "sweep.variant_key": variant.key,
            "sweep.group_key": variant.group, "sweep.status": "ok",
            "sweep.variant_index": str(variant.index)}.items()]
        params += [dict(run_uuid=run_id, key=k, value=encode_param(v))
                   for k, v in variant.settings.items()]
        metrics.append(dict(run_uuid=run_id, key="train_loss", step=0, timestamp=now,
                            value=1.0 / (1 + variant.index), is_nan=False))
    store = tracker.client._tracking_client.store
    with store.ManagedSessionMaker(read_only=False) as session:
        for model, rows in ((SqlRun, runs), (SqlTag, tags), (SqlParam, params),
                            (SqlLatestMetric, metrics)):
            session.execute(model.__table__.insert(), rows)


@integration
def test_a_store_with_more_than_1000_runs_loads_completely(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"seed": list(range(1005))})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    _bulk_children(tracker, sweep, int(time.time() * 1000))
    frame = results.load_runs("small", tracking_uri)
    assert len(frame) == 1005
    assert frame["seed"].tolist() == list(range(1005))
    assert frame["variant_key"].is_unique
    np.testing.assert_allclose(frame["train_loss"], 1.0 / (1 + np.arange(1005)))
    # Resuming reads them all too.
    assert len(SweepTracker(sweep, tracking_uri).start()) == 1005


@integration
def test_load_runs_picks_the_newest_sweep_run_or_the_one_asked_for(tmp_path, tracking_uri):
    sweep, first = logged(tmp_path, tracking_uri, parameters={"seed": [0, 1]})
    second = SweepTracker(sweep, tracking_uri, fresh=True)
    second.start()
    log_sweep(second, sweep, only=slice(0, 1))
    second.finish()
    assert results.load_runs("small", tracking_uri).run_id.tolist() == \
        [second.records()[0].run_id]
    older = results.load_runs("small", tracking_uri, parent_run_id=first.parent_run_id)
    assert older.run_id.tolist() == [r.run_id for r in first.records()]
    # Another config (another hash) in the same experiment is not mixed in.
    (tmp_path / "other").mkdir()
    other = load_small_sweep(tmp_path / "other", parameters={"seed": [5]})
    assert other.config_hash != sweep.config_hash
    with pytest.raises(LookupError, match="config hash"):
        results.load_runs("small", tracking_uri, sweep=other)
    with pytest.raises(LookupError, match="no MLflow experiment named 'nope'"):
        results.load_runs("nope", tracking_uri)
    missing = tmp_path / "elsewhere" / "mlflow.db"
    with pytest.raises(LookupError, match="no MLflow store at"):
        results.load_runs("small", f"sqlite:///{missing}")
    assert not missing.parent.exists()                    # reading never creates a store


@integration
def test_a_sweep_run_without_finished_children_loads_as_an_empty_typed_frame(tmp_path,
                                                                            tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5]})
    SweepTracker(sweep, tracking_uri).start()
    frame = results.load_runs("small", tracking_uri)
    assert frame.empty
    assert list(frame.columns) == ["run_id", "variant_key", "group_key", "status", "name",
                                   "train.lr"]
    assert frame["train.lr"].dtype == np.float64
    assert results.load_curves("small", tracking_uri).empty


@pytest.mark.parametrize("load", [results.load_runs, results.load_curves])
def test_loading_needs_the_sweeps_name_and_says_so(load, tmp_path):
    with pytest.raises(ValueError, match="experiment name or a sweep"):
        load()
    with pytest.raises(TypeError, match="sweep's name .a str., not DataFrame"):
        load(pd.DataFrame(), f"sqlite:///{tmp_path}/none.db")
    assert not (tmp_path / "none.db").exists()


# ------------------------------------------------------------------------------------------
# summarize: against hand-computed numbers

def hand_frame(attrs: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame({
        "run_id": [f"r{i}" for i in range(7)],
        "variant_key": [f"k{i}" for i in range(7)],
        "group_key": ["a", "a", "a", "b", "b", "b", "c"],
        "status": ["ok", "ok", "ok", "ok", "diverged", "ok", "diverged"],
        "name": [f"v{i}" for i in range(7)],
        "train.lr": [0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 9.0],
        "seed": [0, 1, 2, 0, 1, 2, 0],
        # The diverged rows hold finite numbers here on purpose: they must not be averaged.
        "train_loss": [1.0, 2.0, 3.0, 10.0, 1e6, 20.0, 1e9],
        "test_loss": [4.0, 4.0, 4.0, 1.0, 1e6, 2.0, 1e9],
        "diverged_epoch": pd.array([pd.NA, pd.NA, pd.NA, pd.NA, 300, pd.NA, 0], dtype="Int64"),
    })
    if attrs:
        frame.attrs["swept"] = ["train.lr", "seed"]
    return frame


@pytest.mark.parametrize("attrs", [True, False], ids=["attrs", "columns-inferred"])
def test_summarize_matches_hand_computed_statistics(attrs):
    summary = results.summarize(hand_frame(attrs))
    expected = pd.DataFrame({
        "train.lr": [0.5, 0.1, 9.0],
        "group_key": ["b", "a", "c"],
        "n": [3, 3, 1],
        "diverged": [1, 0, 1],
        "train_loss_mean": [15.0, 2.0, np.nan],
        "train_loss_std": [math.sqrt(50.0), 1.0, np.nan],
        "train_loss_sem": [5.0, 1 / math.sqrt(3), np.nan],
        "train_loss_min": [10.0, 1.0, np.nan],
        "train_loss_max": [20.0, 3.0, np.nan],
        "test_loss_mean": [1.5, 4.0, np.nan],
        "test_loss_std": [math.sqrt(0.5), 0.0, np.nan],
        "test_loss_sem": [0.5, 0.0, np.nan],
        "test_loss_min": [1.0, 4.0, np.nan],
        "test_loss_max": [2.0, 4.0, np.nan],
        "rank": [1, 2, 3],
    })
    pd.testing.assert_frame_equal(summary, expected, check_dtype=False, atol=1e-12)
    assert summary["n"].dtype == np.int64 and summary["rank"].dtype == np.int64
    assert summary.attrs == {"by": ["train.lr"], "over": ["seed"], "metric": "test_loss"}


def test_summarize_ranks_by_the_metric_asked_for():
    by_train = results.summarize(hand_frame(), metric="train_loss")
    assert by_train["train.lr"].tolist() == [0.1, 0.5, 9.0]
    frame = hand_frame().assign(test_accuracy=[0.9, 0.8, 0.7, 0.5, 0.0, 0.6, 0.0])
    by_accuracy = results.summarize(frame, metric="test_accuracy")   # higher is better
    assert by_accuracy["train.lr"].tolist() == [0.1, 0.5, 9.0]
    assert by_accuracy["test_accuracy_mean"].iloc[0] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no metric 'val_loss'"):
        results.summarize(hand_frame(), metric="val_loss")
    # A column read back that `sweeps.vocabulary.METRICS` does not know: which way is better
    # is not guessed (it ranked as a loss before).
    custom = hand_frame().assign(train_custom=[0.9, 0.8, 0.7, 0.5, 0.0, 0.6, 0.0])
    with pytest.raises(ValueError, match="no direction known for metric 'train_custom'"):
        results.summarize(custom, metric="train_custom")


def test_summarize_over_another_setting_or_nothing():
    over_lr = results.summarize(hand_frame(), over="train.lr")
    assert sorted(over_lr["seed"]) == [0, 1, 2]
    assert "group_key" not in over_lr                       # group keys aggregate seeds only
    seed0 = over_lr[over_lr["seed"] == 0].iloc[0]
    assert (seed0["n"], seed0["diverged"], seed0["train_loss_mean"]) == (3, 1, 5.5)
    each = results.summarize(hand_frame(), over=None)
    assert len(each) == 7 and each["n"].eq(1).all()


def test_summarize_groups_by_tuple_valued_settings():
    frame = hand_frame().assign(**{"model.hidden": [(2,), (2,), (8, 8), (2,), (2,), (8, 8), (2,)]})
    frame.attrs["swept"] = ["train.lr", "model.hidden", "seed"]
    summary = results.summarize(frame)
    assert len(summary) == 5
    assert set(summary["model.hidden"]) == {(2,), (8, 8)}


def test_best_metrics_are_the_best_groups_means_under_the_childrens_names():
    best = results.best_metrics(results.summarize(hand_frame()))
    assert best == {"train_loss": 15.0, "test_loss": 1.5, "test_loss_std": math.sqrt(0.5),
                    "n": 3.0, "diverged": 1.0}


def test_format_summary_is_a_table_best_first():
    text = results.format_summary(results.summarize(hand_frame()), top=2)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["rank", "train.lr", "n", "diverged"]
    assert lines[1].split()[:5] == ["1", "0.5", "3", "1", "1.5"]
    assert "± 0.7071" in lines[1]
    assert lines[-1] == "... 1 more groups"
    everything = results.format_summary(results.summarize(hand_frame()))
    assert "(all diverged)" in everything


@integration
def test_save_writes_the_three_tables(tmp_path, tracking_uri):
    sweep, tracker = logged(tmp_path, tracking_uri, diverge={0: 100})
    frame = results.frame_from_records(tracker.records())
    summary = results.summarize(frame)
    curves = results.curves_from_records(tracker.records())
    paths = results.save(tmp_path / "out", frame, summary, curves)
    assert [p.name for p in paths] == ["results.parquet", "summary.csv", "curves.parquet"]
    back = pd.read_parquet(paths[0])
    assert len(back) == len(frame) and back["train.lr"].dtype == np.float64
    assert back["model.hidden"].dtype == np.int64  # one hidden layer each: the layer size
    assert back["model.hidden"].tolist() == frame["model.hidden"].tolist() == [2, 2, 2, 4, 4, 4] * 2
    pd.testing.assert_frame_equal(pd.read_parquet(paths[2]), curves)
    from_csv = pd.read_csv(paths[1])
    assert len(from_csv) == len(summary) and from_csv["rank"].tolist() == [1, 2, 3, 4]
    columns = list(from_csv.columns)
    assert columns[columns.index("rank") + 1] == "ranked_on"
    assert set(from_csv["ranked_on"]) == {summary.attrs["metric"]}
    assert results.format_summary(from_csv).splitlines()[1].split()[0] == "1"


@integration
def test_an_empty_sweep_run_summarizes_to_an_empty_table(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1]})
    SweepTracker(sweep, tracking_uri).start()
    summary = results.summarize(results.load_runs("small", tracking_uri))
    assert summary.empty and list(summary.columns) == ["train.lr", "n", "diverged", "rank"]
    assert results.format_summary(summary) == "(no finished variants)"
