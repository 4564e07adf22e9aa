"""A sweep ranks on the metric its file searched on (`search.metric`): the summary, the
configuration runs (their rank and tie marks, the UI's sort), the parent's best metrics and
`sweeps summary` on the file, whatever the default ranking (val_loss) would say; a reader given
no file ranks on the parent's tag, and on a parent without it as before."""

from __future__ import annotations

import csv
import dataclasses
import json

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from sweeps.best import choose
from sweeps.cli import app
from sweeps.report.outputs import write_outputs
from sweeps.report.results import format_summary, ranking_metric, summarize
from sweeps.run import run_sweep
from sweeps.spec.sweep import load_sweep
from sweeps.tracking import readback, ui
from sweeps.tracking.bulk import BulkTracker
from sweeps.tracking.contract import RANKING_METRIC
from sweeps.tracking.groups import group_filter
from sweeps.tracking.track import SweepTracker
from tests.sweep_files import write_halving_sweep
from tests.synthetic import synthetic_result

pytestmark = pytest.mark.integration

LRS, HIDDEN, SEEDS = (0.03, 0.3, 1.0, 3.0), (2, 8), (0, 1, 2)
# Group g (lr index * 2 + hidden index) by seed: val_loss ranks g = 0 best, val_accuracy
# g = 7 best, g = 6 within the seeds' noise of it (tied), the rest a constant step below it
# (paired differences without spread: worse).
NOISE = {"best": (0.0, 0.02, -0.01), "twin": (0.015, -0.01, 0.0)}


def _group(settings) -> int:
    return 2 * LRS.index(settings["train.lr"]) + HIDDEN.index(settings["model.hidden"][0])


def _accuracy(group: int, seed: int) -> float:
    noise = NOISE["twin" if group == 6 else "best"][seed]
    return (0.88 if group >= 6 else 0.60 + 0.04 * group) + noise


def _logged(sweep, tracker_class, tracking_uri):
    tracker = tracker_class(sweep, tracking_uri)
    tracker.start()
    for variant in sweep.variants:
        group, seed = _group(variant.settings), variant.settings["seed"]
        result = synthetic_result(sweep, variant)
        result = dataclasses.replace(result, metrics={
            **result.metrics, "val_loss": 0.10 + 0.01 * group + 0.001 * seed,
            "val_accuracy": _accuracy(group, seed)})
        tracker.log_variant(variant, result)
    return tracker


def _sweep_file(tmp_path, method="halving", search=None):
    """Halving on val_accuracy over LRS x HIDDEN x SEEDS on moons; under another method, its
    parameters with the `search` keys (default: metric val_accuracy)."""
    path = write_halving_sweep(tmp_path, name="ranked", lrs=LRS, seeds=SEEDS,
                               metric="val_accuracy")
    if method != "halving":      # the same points as a grid (the variants are logged as one's)
        config = yaml.safe_load(path.read_text())
        search = {"metric": "val_accuracy"} if search is None else search
        config["search"] = {"method": method, **search,
                            "parameters": config["search"]["parameters"]}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("kind, tracker_class", [("halving", SweepTracker),
                                                 ("grid", BulkTracker)])
def test_a_sweep_on_val_accuracy_ranks_every_output_by_accuracy(
        tmp_path, tracking_uri, kind, tracker_class):
    sweep = load_sweep(_sweep_file(tmp_path, kind))
    assert sweep.ranking_metric == "val_accuracy"
    tracker = _logged(sweep, tracker_class, tracking_uri)
    summary = write_outputs(tracker, tmp_path / "out").summary
    groups = {_group(v.settings): v.group for v in sweep.variants}
    by_accuracy = sorted(groups, key=lambda g: -sum(_accuracy(g, s) for s in SEEDS))
    assert by_accuracy[0] == 7 and by_accuracy[0] != min(groups)   # val_loss's best is g = 0

    assert summary.attrs["metric"] == "val_accuracy"
    saved = pd.read_parquet(tmp_path / "out" / "results.parquet")    # keeps the frame's attrs
    assert summarize(saved).attrs["metric"] == "val_accuracy"
    assert list(summary["group_key"]) == [groups[g] for g in by_accuracy]
    assert list(summary["tied"]) == [True, True] + [False] * 6

    client = MlflowClient(tracking_uri)
    runs = {r.data.tags["sweep.group_key"]: r for r in
            client.search_runs([tracker.experiment_id], group_filter(tracker.parent_run_id))}
    assert [runs[groups[g]].data.tags["sweep.rank"] for g in by_accuracy] == \
        [str(rank) for rank in range(1, 9)]
    assert [runs[groups[g]].data.tags["sweep.tied"] for g in by_accuracy] == \
        ["best", "true"] + ["false"] * 6
    experiment = client.get_experiment(tracker.experiment_id)
    view = json.loads(experiment.tags[ui.SHARED_VIEW_TAG + ui.view_key(tracker.parent_run_id)])
    assert (view["orderByKey"], view["orderByAsc"]) == ("metrics.`val_accuracy`", False)

    parent = client.get_run(tracker.parent_run_id)
    best_mean = sum(_accuracy(7, s) for s in SEEDS) / len(SEEDS)
    assert parent.data.metrics["val_accuracy"] == pytest.approx(best_mean, rel=1e-12)
    assert "val_accuracy_std" in parent.data.metrics and "val_loss_std" not in parent.data.metrics
    assert parent.data.tags[RANKING_METRIC] == "val_accuracy"

    table = tmp_path / "summary.csv"
    result = CliRunner().invoke(app, ["summary", str(sweep.path), "--tracking-uri", tracking_uri,
                                      "--csv", str(table)])
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.output.splitlines()[0]
    with table.open() as file:
        rows = list(csv.DictReader(file))
    assert [row["group_key"] for row in rows] == [groups[g] for g in by_accuracy]
    assert {row["ranked_on"] for row in rows} == {"val_accuracy"}
    from_csv = pd.read_csv(table)       # no attrs: the column says what the ranks mean
    assert ranking_metric(from_csv) == "val_accuracy"
    assert "val_accuracy" in format_summary(from_csv).splitlines()[0]
    read = readback.read_sweep("ranked", tracking_uri)       # no file: the parent's tag
    assert read.ranking_metric == "val_accuracy"
    winner, metric, _ = choose(read.records, read.ranking_metric)
    assert (metric, winner.group_key, winner.metrics["val_accuracy"]) == \
        ("val_accuracy", groups[7], _accuracy(7, 1))


def _order(tracking_uri, tmp_path, *target):
    table = tmp_path / "order.csv"
    result = CliRunner().invoke(app, ["summary", *target, "--tracking-uri", tracking_uri,
                                      "--csv", str(table)])
    assert result.exit_code == 0, result.output
    with table.open() as file:
        return [row["group_key"] for row in csv.DictReader(file)]


def test_a_parent_from_before_the_tag_ranks_by_the_file_or_else_by_default(
        tmp_path, tracking_uri):
    path = _sweep_file(tmp_path, "grid")
    sweep = load_sweep(path)
    tracker = _logged(sweep, BulkTracker, tracking_uri)
    write_outputs(tracker, tmp_path / "out")
    client = MlflowClient(tracking_uri)
    client.delete_tag(tracker.parent_run_id, RANKING_METRIC)       # as an older store holds it
    groups = {_group(v.settings): v.group for v in sweep.variants}

    by_name = _order(tracking_uri, tmp_path, "--experiment", "ranked")
    assert by_name == [groups[g] for g in range(8)]                  # val_loss, as before
    assert _order(tracking_uri, tmp_path, str(path)) == [groups[g] for g in range(7, -1, -1)]
    assert _order(tracking_uri, tmp_path, "--experiment", "ranked", "--metric",
                  "val_accuracy") == [groups[g] for g in range(7, -1, -1)]

    resumed = BulkTracker(sweep, tracking_uri)                        # the file run again
    resumed.start()
    assert resumed.parent_run_id == tracker.parent_run_id
    assert client.get_run(tracker.parent_run_id).data.tags[RANKING_METRIC] == "val_accuracy"


@pytest.mark.parametrize("search, ranking", [
    ({"metric": "val_accuracy"}, "val_accuracy"),
    ({}, None),                                              # no metric: the default, val_loss
    ({"mode": "min"}, "val_loss"),                           # search.metric's default
    ({"metric": ["n_params", "val_accuracy"]}, "val_accuracy"),     # a front: its first val_*
    ({"metric": ["val_loss", "val_accuracy"]}, "val_loss"),
])
def test_the_ranking_metric_is_the_one_the_file_names(tmp_path, search, ranking):
    assert load_sweep(_sweep_file(tmp_path, "grid", search)).ranking_metric == ranking


def test_sweeps_best_picks_by_the_metric_the_file_searched_on(tmp_path, tracking_uri):
    """A real (serial) grid on val_accuracy: `sweeps best` on the file and on the experiment
    name (the parent's tag) log the winner by accuracy, and say so."""
    path = _sweep_file(tmp_path, "grid")
    outcome = run_sweep(path, tracking_uri=tracking_uri, executor="serial", progress=False,
                        out=tmp_path / "out")
    header = outcome.report().splitlines()[2].split()          # the run's report's table
    assert header[header.index("diverged") + 1] == "val_accuracy"
    by_accuracy = summarize(outcome.frame, metric="val_accuracy")["group_key"].iloc[0]
    winners = outcome.frame[outcome.frame["group_key"] == by_accuracy]
    winner = winners.loc[winners["val_accuracy"].idxmax(), "run_id"]
    for target in (str(path), "ranked"):
        result = CliRunner().invoke(app, ["best", target, "--tracking-uri", tracking_uri])
        assert result.exit_code == 0, result.output
        report = result.output[result.output.index("best variant: "):].splitlines()
        assert f"(run {winner}," in report[0]
        assert report[1].split()[0] == "val_accuracy"
