"""sweeps.report.outputs: the end of a sweep writes every table and plot, with or without its
helper."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from sweeps.report import outputs, results
from sweeps.report.outputs import PlotWorker, write_outputs
from sweeps.tracking.track import SweepTracker
from tests.synthetic import log_sweep, load_small_sweep

pytestmark = pytest.mark.integration

FILES = ["results.parquet", "summary.csv", "curves.parquet", "loss_curves.png",
         "loss_vs_lr.png", "predictions.png"]


def logged(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1]})
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


def job(tmp_path, tracking_uri):
    """A drawing job as the helper gets it: (out_dir, frame, summary, curves, predictions,
    rungs)."""
    tracker = logged(tmp_path, tracking_uri)
    records = tracker.records()
    frame = results.frame_from_records(records)
    return (tmp_path / "out", frame, results.summarize(frame),
            results.curves_from_records(records), results.predictions_from_records(records),
            None)


CHILD_FAILS = """
import os, pickle, sys
from sweeps.report import outputs
parent, draw = os.getpid(), outputs._draw
def failing_in_the_child(*job, only=None):
    if os.getpid() != parent:
        raise RuntimeError("the child's drawing failed")
    return draw(*job, only=only)
outputs._draw = failing_in_the_child
with open(sys.argv[1], "rb") as f:
    print([p.name for p in outputs._draw_in_two(pickle.load(f))])
"""


@pytest.mark.parametrize("child", ["draws", "fails"])
def test_the_helper_shares_the_figures_with_a_forked_child_and_covers_for_it(
        tmp_path, tracking_uri, child):
    """Forked in a fresh process (the helper's situation: one thread), the child draws its
    share; when it fails, the helper draws that share itself. Same files, same order."""
    path = tmp_path / "job.pickle"
    path.write_bytes(pickle.dumps(job(tmp_path, tracking_uri)))
    script = CHILD_FAILS if child == "fails" else CHILD_FAILS.replace(
        "outputs._draw = failing_in_the_child", "")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == str(FILES[3:])
    assert all((tmp_path / "out" / name).stat().st_size > 0 for name in FILES[3:])


def test_without_a_fork_the_helper_draws_everything_itself(tmp_path, tracking_uri,
                                                           monkeypatch):
    def no_fork():
        raise OSError("no processes left")

    monkeypatch.setattr(outputs.os, "fork", no_fork)
    drawn = outputs._draw_in_two(job(tmp_path, tracking_uri))
    assert [p.name for p in drawn] == FILES[3:]


WARM_UP = """
import sys
from sweeps.report import outputs
heavy = ("matplotlib.pyplot", "optuna.importance")
before = [name in sys.modules for name in heavy]
outputs._warm_up()
print(before, [name in sys.modules for name in heavy])
"""


def test_the_helpers_warm_up_imports_what_the_plots_import():
    """In a fresh process (the helper's situation): matplotlib and Optuna's importance
    evaluators (~2.5 s of imports) come in during the warm-up, not while the driver waits."""
    done = subprocess.run([sys.executable, "-c", WARM_UP], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[False, False] [True, True]"
