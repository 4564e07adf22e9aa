"""sweeps.report.plots: every plot is written as a non-empty PNG, for the shapes sweeps take."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweeps.report import plots, results
from sweeps.tracking.track import SweepTracker
from tests.synthetic import log_sweep, load_small_sweep

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"


def tables(tmp_path, tracking_uri, parameters, diverge=None):
    sweep = load_small_sweep(tmp_path, parameters=parameters)
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep, diverge=diverge)
    records = tracker.records()
    frame = results.frame_from_records(records)
    return (sweep, frame, results.summarize(frame), results.curves_from_records(records),
            results.predictions_from_records(records))


def assert_pngs(paths, names):
    assert [p.name for p in paths] == names
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, path


def test_all_plots_written_for_a_learning_rate_by_hidden_size_grid(tmp_path, tracking_uri):
    grid = {"train.lr": [0.1, 0.5, 2.0], "model.hidden": [2, 4], "seed": [0, 1, 2]}
    sweep, frame, summary, curves, predictions = tables(tmp_path, tracking_uri, grid,
                                                        diverge={16: 200, 17: 300})
    assert plots.choose_axes(frame, summary) == ("train.lr", "model.hidden")
    paths = plots.write_all(tmp_path / "out", frame, summary, curves,
                            predictions=predictions)
    assert_pngs(paths, ["loss_curves.png", "loss_vs_lr.png", "predictions.png",
                        "importance.png"])


def test_predictions_plot_needs_predictions_and_uses_loaded_ones(tmp_path, tracking_uri):
    sweep, frame, summary, curves, _ = tables(tmp_path, tracking_uri, {"train.lr": [0.1, 0.5],
                                                                      "seed": [0, 1]})
    paths = plots.write_all(tmp_path / "a", frame, summary, curves)
    assert_pngs(paths, ["loss_curves.png", "loss_vs_lr.png"])
    loaded = results.load_predictions(frame["run_id"], tracking_uri)
    assert set(loaded) == set(frame["run_id"])
    paths = plots.write_all(tmp_path / "b", frame, summary, curves, predictions=loaded)
    assert_pngs(paths, ["loss_curves.png", "loss_vs_lr.png", "predictions.png"])


def test_categorical_settings_and_seed_only_sweeps_still_plot(tmp_path, tracking_uri):
    grid = {"model.init": ["uniform01", "xavier_normal"], "model.hidden": [2, [4, 4]],
            "seed": [0, 1]}
    sweep, frame, summary, curves, predictions = tables(tmp_path, tracking_uri, grid)
    assert plots.choose_axes(frame, summary) == ("model.init", "model.hidden")
    assert_pngs(plots.write_all(tmp_path / "c", frame, summary, curves),
                ["loss_curves.png", "loss_vs_lr.png", "importance.png"])

    (tmp_path / "seeds").mkdir()
    sweep, frame, summary, curves, predictions = tables(tmp_path / "seeds", tracking_uri,
                                                        {"seed": [0, 1, 2]})
    assert plots.choose_axes(frame, summary) == (None, None)
    assert_pngs(plots.write_all(tmp_path / "d", frame, summary, curves,
                                predictions=predictions),
                ["loss_curves.png", "predictions.png"])


def test_a_resumed_sweeps_best_predictions_load_as_the_logged_tables(tmp_path, tracking_uri):
    sweep, frame, summary, curves, logged = tables(tmp_path, tracking_uri, {"seed": [0, 1]})
    resumed = SweepTracker(sweep, tracking_uri)
    resumed.start()
    assert results.predictions_from_records(resumed.records()) == {}   # held by MLflow only
    wanted = plots.predictions_wanted(frame, summary)
    assert sorted(wanted) == sorted(frame["run_id"])          # one group: every seed
    loaded = results.load_predictions(wanted, tracking_uri)
    for run_id in wanted:
        pd.testing.assert_frame_equal(loaded[run_id], logged[run_id], check_exact=True)
    paths = plots.write_all(tmp_path / "e", frame, summary, curves, predictions=loaded)
    assert_pngs(paths, ["loss_curves.png", "predictions.png"])


def test_error_bars_stay_above_zero_on_a_log_axis():
    """std > mean (first row) would put ± std bars below zero, where a log axis drops them."""
    rows = pd.DataFrame({"train_loss_mean": [1e-3, 2.0], "train_loss_std": [5e-3, 0.5],
                         "train_loss_min": [1e-5, 1.5], "train_loss_max": [1.2e-2, 2.6]})
    err, what = plots.error_bars(rows, "train_loss", log_y=True)
    np.testing.assert_allclose(err, [[1e-3 - 1e-5, 0.5], [1.2e-2 - 1e-3, 0.6]])
    assert (rows["train_loss_mean"].to_numpy() - err[0] > 0).all()
    assert "min-max" in what

    err, what = plots.error_bars(rows, "train_loss", log_y=False)
    np.testing.assert_allclose(err, [[5e-3, 0.5], [5e-3, 0.5]])
    assert "std" in what


@pytest.mark.parametrize("metric, best", [("val_loss", [0.1, 0.5]),
                                          ("val_accuracy", [0.9, 0.6])])
def test_the_best_group_for_each_x_is_best_in_the_metrics_own_direction(metric, best):
    # Two groups per learning rate (hidden 2 and 4); the better one by the ranking metric is
    # drawn: the lower loss, the higher accuracy.
    groups = pd.DataFrame({"train.lr": [0.1, 0.1, 1.0, 1.0], "model.hidden": [2, 4, 2, 4],
                           f"{metric}_mean": [0.1, 0.9, 0.5, 0.6]})
    drawn = plots.best_for_each_x(groups, "train.lr", metric)
    assert drawn["train.lr"].tolist() == [0.1, 1.0]
    assert drawn[f"{metric}_mean"].tolist() == best


def test_the_best_group_for_each_x_needs_a_metric_of_known_direction():
    groups = pd.DataFrame({"train.lr": [0.1], "train_custom_mean": [0.1]})
    with pytest.raises(ValueError, match="no direction known for metric 'train_custom'"):
        plots.best_for_each_x(groups, "train.lr", "train_custom")
