"""tpe and gp end to end: real Ray, a real SQLite store, the study's history on the parent run,
a tpe sweep on two objectives (its Pareto front), and a tpe sweep killed with SIGKILL that
continues where it stopped."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from sweeps import run_sweep
from sweeps.cli import app
from sweeps.methods.model_based import HISTORY_TABLE
from sweeps.report.pareto import pareto_optimal
from tests.integration.helpers import (START_TIMEOUT, assert_logged_once, child_runs,
                                       sweeps_command, wait_for)
from tests.sweep_files import write_model_based_sweep


def _history(tracking_uri: str, experiment: str) -> list[dict]:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    parent = client.search_runs([found.experiment_id], "tags.`sweep.role` = 'parent'",
                                order_by=["attributes.start_time DESC"])[0]      # the newest
    text = Path(client.download_artifacts(parent.info.run_id, HISTORY_TABLE)).read_text()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_each_configuration_trains_every_seed_and_its_mean_is_told(
        ray_session, tracking_uri, tmp_path, method):
    if method == "gp":
        pytest.importorskip("torch", reason="method: gp needs PyTorch (the gp extra)")
    path = write_model_based_sweep(tmp_path, name=method, method=method)
    outcome = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    children = child_runs(tracking_uri, method)
    assert {r.info.status for r in children} == {"FINISHED"}
    frame = outcome.frame
    groups = frame.groupby("group_key")
    assert len(frame) == len(children) and (groups.size() == 2).all()   # every seed trained

    history = _history(tracking_uri, method)
    assert [int(row["trial"]) for row in history] == list(range(8))
    assert [int(row["round"]) for row in history] == [1] * 4 + [2] * 4
    means = {name: group["val_loss"].mean() for name, group in groups}
    told = {float(row["value"]) for row in history if row["state"] == "COMPLETE"}
    assert told and all(any(math.isclose(v, m, rel_tol=1e-12) for m in means.values())
                        for v in told)

    serial = run_sweep(path, tracking_uri=f"sqlite:///{tmp_path / 'serial.db'}",
                       executor="serial", progress=False, out=tmp_path / "serial")
    assert sorted(serial.frame["variant_key"]) == sorted(frame["variant_key"])


def test_a_two_objective_tpe_sweep_on_ray_tells_both_means_and_prints_its_front(
        ray_session, tracking_uri, tmp_path):
    path = write_model_based_sweep(tmp_path, name="front", trials=6, batch=3)
    config = yaml.safe_load(path.read_text())
    config["search"]["metric"] = ["val_loss", "n_params"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    outcome = run_sweep(path, tracking_uri=tracking_uri, progress=False, out=tmp_path / "out")
    children = child_runs(tracking_uri, "front")
    assert len(children) == 12 and {r.info.status for r in children} == {"FINISHED"}
    frame = outcome.frame
    assert (frame["n_params"] == 4 * frame["model.hidden"] + 1).all()    # (2 + 1) h + h + 1

    history = _history(tracking_uri, "front")
    assert [int(row["round"]) for row in history] == [1] * 3 + [2] * 3
    means = frame.groupby("group_key")[["val_loss", "n_params"]].mean().to_numpy()
    for row in history:
        if row["state"] == "COMPLETE":                   # "mean val_loss;n_params"
            told = [float(v) for v in row["value"].split(";")]
            assert any(math.isclose(told[0], loss, rel_tol=1e-12) and told[1] == size
                       for loss, size in means), row
    objectives = [("val_loss", "min"), ("n_params", "min")]
    assert pareto_optimal(outcome.summary, objectives).any()
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 0
    result = CliRunner().invoke(app, ["summary", str(path), "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    assert "Pareto-optimal configurations on val_loss (min), n_params (min):" in result.output

    serial = run_sweep(path, tracking_uri=f"sqlite:///{tmp_path / 'serial.db'}",
                       executor="serial", progress=False, out=tmp_path / "serial")
    assert sorted(serial.frame["variant_key"]) == sorted(frame["variant_key"])


def test_a_killed_tpe_sweep_continues_and_trains_nothing_twice(tracking_uri, tmp_path):
    name = "tpe-killed"
    path = write_model_based_sweep(tmp_path, name=name, trials=12, batch=4, epochs=6000)
    logged = lambda: child_runs(tracking_uri, name, "FINISHED")  # noqa: E731
    driver = sweeps_command("run", str(path), "--tracking-uri", tracking_uri, cwd=tmp_path)
    try:
        wait_for("the first round's variants", lambda: len(logged()) >= 8,
                 timeout=START_TIMEOUT, interval=0.1, watch=[driver])
        driver.kill()
    finally:
        driver.kill()
    before = {r.data.tags["sweep.variant_key"]: r.info.run_id for r in logged()}
    assert 8 <= len(before) < 24

    again = sweeps_command("run", str(path), "--tracking-uri", tracking_uri, cwd=tmp_path,
                           name="again")
    code, stderr = again.finish(timeout=START_TIMEOUT)
    assert code == 0, stderr
    out = (tmp_path / "again.out").read_text()
    assert (f"24 variants: 0 reused, {24 - len(before)} trained, {len(before)} already done"
            in out), out

    keys = assert_logged_once(tracking_uri, name, before, 24)

    fresh = run_sweep(path, tracking_uri=f"sqlite:///{tmp_path / 'fresh.db'}", progress=False,
                      executor="serial", out=tmp_path / "fresh")
    assert sorted(fresh.frame["variant_key"]) == sorted(keys)
    assert _history(tracking_uri, name) == _history(f"sqlite:///{tmp_path / 'fresh.db'}", name)


def test_a_tpe_sweep_warm_starts_from_a_grid_of_the_same_experiment(tracking_uri, tmp_path):
    import yaml
    path = write_model_based_sweep(tmp_path, name="warm", trials=4, batch=4)
    config = yaml.safe_load(path.read_text())
    config["search"] = {"method": "grid", "parameters": {
        "train.lr": [0.03, 0.3, 5.0], "model.hidden": [2, 8], "seed": [0, 1]}}
    grid = tmp_path / "warm-grid.yaml"
    grid.write_text(yaml.safe_dump(config, sort_keys=False))
    run_sweep(grid, tracking_uri=tracking_uri, executor="serial", progress=False,
              out=tmp_path / "grid")
    outcome = run_sweep(path, tracking_uri=tracking_uri, executor="serial", progress=False)
    history = _history(tracking_uri, "warm")
    warm = [row for row in history if row["state"] == "WARM"]
    assert sorted(row["configuration"] for row in warm) == sorted(      # lr 5.0 lies outside
        f"train.lr={lr} model.hidden={h}" for lr in (0.03, 0.3) for h in (2, 8))
    assert [int(row["round"]) for row in history if row["state"] != "WARM"] == [1] * 4
    assert len(outcome.frame) == 8          # its own variants only
