"""sweeps.report.outputs: the end of a sweep writes every table and plot, with or without its
helper."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from sweeps.report.outputs import PlotWorker, write_outputs
from sweeps.tracking.track import SweepTracker
from tests.synthetic import log_sweep, small_sweep

pytestmark = pytest.mark.integration

FILES = ["results.parquet", "summary.csv", "curves.parquet", "loss_curves.png",
         "loss_vs_lr.png", "predictions.png"]


def logged(tmp_path, tracking_uri):
    sweep = small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep)
    return tracker


def check(tracker, made, out):
    assert [p.name for p in made.files] == FILES
    assert all((out / name).stat().st_size > 0 for name in FILES)
    client = MlflowClient(tracker.tracking_uri)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(tracker.parent_run_id)} >= set(FILES)
    assert "test_loss" in parent.data.metrics


@pytest.mark.parametrize("helper", ["alive", "dead"])
def test_the_plots_and_the_parent_run_get_everything_whether_the_helper_lives(
        tmp_path, tracking_uri, helper):
    """The helper process draws the plots; a dead one leaves them to the driver."""
    tracker = logged(tmp_path, tracking_uri)
    plotter = PlotWorker()
    if helper == "dead":
        plotter._proc.kill()
        plotter._proc.wait()
    try:
        made = write_outputs(tracker, tmp_path / "out", plotter)
    finally:
        plotter.close()
    check(tracker, made, tmp_path / "out")


def test_a_resumed_sweeps_plots_use_the_predictions_mlflow_holds(tmp_path, tracking_uri):
    first = logged(tmp_path, tracking_uri)
    resumed = SweepTracker(first.sweep, tracking_uri)
    resumed.start()                         # every variant done: records without predictions
    made = write_outputs(resumed, tmp_path / "out")
    check(resumed, made, tmp_path / "out")
