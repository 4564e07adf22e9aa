"""Several metrics at once: the Pareto front (`sweeps.report.pareto`), multi-objective tpe,
a grid's front, and `n_params` recorded when a front asks for it."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from sweeps.cli import app
from sweeps.report.pareto import format_front, pareto_optimal
from sweeps.run import run_sweep
from sweeps.spec.search import scheduler_of
from sweeps.spec.sweep import load_sweep
from tests.sweeps.conftest import problems_of

FRONT = """\
name: front
data: {source: moons, validation: 0.25}
model: {activation: tanh, output_activation: sigmoid, bias: true}
train: {loss: bce, epochs: 30, log_every: 10}
search:
  method: METHOD
EXTRA  metric: [val_loss, n_params]
  parameters:
    train.lr: [0.03, 0.3, 1.0]
    model.hidden: [2, 8]
    seed: [0, 1]
"""


def _file(write, method="tpe", extra="  trials: 4\n  batch: 2\n"):
    return write(FRONT.replace("METHOD", method).replace("EXTRA", extra), f"{method}.yaml")


def test_a_configuration_is_optimal_unless_another_is_as_good_everywhere_and_better_once():
    summary = pd.DataFrame({"val_loss_mean": [0.1, 0.2, 0.3, 0.1, float("nan")],
                            "n_params_mean": [50, 20, 10, 60, 1],
                            "val_accuracy_mean": [0.9, 0.8, 0.95, 0.9, 1.0]})
    both = pareto_optimal(summary, [("val_loss", "min"), ("n_params", "min")])
    assert list(both) == [True, True, True, False, False]     # 3 is 0's twin, only bigger
    maxed = pareto_optimal(summary, [("n_params", "min"), ("val_accuracy", "max")])
    assert list(maxed) == [False, False, False, False, True]  # smallest and most accurate
    summary.attrs["by"] = []
    assert format_front(summary, [("val_loss", "min"), ("n_params", "min")]).startswith(
        "Pareto-optimal configurations on val_loss (min), n_params (min): 3 of 5")
    with pytest.raises(ValueError, match="no test_loss"):
        pareto_optimal(summary, [("test_loss", "min"), ("n_params", "min")])


def test_multi_objective_tpe_tells_each_configuration_its_means_and_records_n_params(write):
    sweep = load_sweep(_file(write))
    scheduler = scheduler_of(sweep, {})
    assert [d.name for d in scheduler.study.directions] == ["MINIMIZE", "MINIMIZE"]
    work = scheduler.ask()
    assert work.record == ("n_params",)
    scheduler.tell({r.variant.key: SimpleNamespace(
        metrics={"val_loss": 0.5 + r.variant.settings["seed"], "n_params": 17.0},
        status="ok", epoch=30) for r in work.work})
    assert [row["value"] for row in scheduler.history] == [[1.0, 17.0], [1.0, 17.0]]
    assert scheduler.tables()["search/history.csv"].decode().splitlines()[1].endswith(
        ",1.0;17.0,COMPLETE")


@pytest.mark.parametrize("method, extra, change, key", [
    ("tpe", "  trials: 4\n", ("[val_loss, n_params]", "[n_params, n_params]"), "search.metric"),
    ("tpe", "  trials: 4\n", ("[val_loss, n_params]", "[n_params, test_loss]"), "search.metric[1]"),
    ("tpe", "  trials: 4\n  mode: min\n", ("", ""), "search.mode"),
    ("halving", "  min_epochs: 10\n", ("", ""), "search.metric"),
    ("grid", "", ("[val_loss, n_params]", "n_params"), "search.metric"),  # ranks on val_* only
])
def test_a_wrong_list_of_metrics_is_one_line(write, method, extra, change, key):
    path = write(FRONT.replace("METHOD", method).replace("EXTRA", extra).replace(*change))
    lines = problems_of(path)
    assert len(lines) == 1 and f": {key}: " in lines[0], lines


@pytest.mark.parametrize("method, extra", [("tpe", "  trials: 4\n  batch: 2\n"), ("grid", "")])
def test_a_sweep_on_two_metrics_draws_and_prints_its_front(write, tmp_path, method, extra):
    path = _file(write, method, extra)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_sweep(path, tracking_uri=uri, executor="serial", progress=False,
                        out=tmp_path / "out")
    assert set(outcome.frame["n_params"]) == {2 * 2 + 2 + 2 + 1, 2 * 8 + 8 + 8 + 1}
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 0
    result = CliRunner().invoke(app, ["summary", str(path), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "Pareto-optimal configurations on val_loss (min), n_params (min):" in result.output
