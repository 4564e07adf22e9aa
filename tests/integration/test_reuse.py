"""A store is a cache of variants: `sweeps run` on real Ray and a real SQLite store trains only
the variants the store does not hold (same key, same numerics), and every read path sees the
copies as it sees trained children."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from sweeps.best import best_model
from sweeps.cli import app
from sweeps.report.results import load_curves, load_runs, summarize
from sweeps.run import run_sweep
from sweeps.spec.sweep import load_sweep
from sweeps.tracking.contract import REUSED_FROM
from sweeps.verification import BIT_IDENTICAL, verify
from tests.integration.helpers import START_TIMEOUT, child_runs, sweeps_command, write_sweep

pytestmark = pytest.mark.integration

NAME = "grow"
METRICS = ["train_loss", "train_mse", "test_loss", "test_mse"]


def children_of(tracking_uri: str, parent_run_id: str) -> dict[str, object]:
    """{variant key: run} of the parent's FINISHED children."""
    return {run.data.tags["sweep.variant_key"]: run
            for run in child_runs(tracking_uri, NAME, "FINISHED")
            if run.data.tags["mlflow.parentRunId"] == parent_run_id}


def test_adding_a_seed_and_a_learning_rate_trains_only_the_new_variants(
        ray_session, tracking_uri, tmp_path):
    path = write_sweep(tmp_path, NAME, epochs=300, lrs=(0.1, 0.5), seeds=(0, 1))
    first = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    assert (first.trained, first.reused) == (8, 0)
    old = children_of(tracking_uri, first.parent_run_id)
    before = load_runs(NAME, tracking_uri, load_sweep(path)).set_index("variant_key")
    curves_before = load_curves(NAME, tracking_uri, load_sweep(path))

    write_sweep(tmp_path, NAME, epochs=300, lrs=(0.1, 0.5, 1.0), seeds=(0, 1, 2))
    grown = load_sweep(path)
    second = run_sweep(grown, tracking_uri=tracking_uri, progress=False)
    assert (second.trained, second.reused, second.skipped) == (10, 8, 0)
    assert second.report().startswith(f"{NAME}: 18 variants: 8 reused, 10 trained")
    new = children_of(tracking_uri, second.parent_run_id)
    assert set(new) == {v.key for v in grown.variants}
    # Exactly the old variants are copies, each of the old child of its own key.
    copies = {key: run.data.tags[REUSED_FROM] for key, run in new.items()
              if REUSED_FROM in run.data.tags}
    assert copies == {key: run.info.run_id for key, run in old.items()}

    # load_runs: all 18; the copies hold their sources' numbers, under the new names.
    frame = load_runs(NAME, tracking_uri, grown).set_index("variant_key")
    assert len(frame) == 18 and set(frame.index) == set(new)
    pd.testing.assert_frame_equal(frame.loc[before.index, METRICS], before[METRICS])
    assert (frame.loc[before.index, "name"] == [new[k].info.run_name for k in before.index]).all()
    # The run's own tables, made from the records it built for its copies (no read-back),
    # are the tables a read-back gives.
    held = second.frame.set_index("variant_key")            # (both in variant index order)
    pd.testing.assert_frame_equal(held, frame[held.columns])
    by_run = ["run_id", "epoch"]
    pd.testing.assert_frame_equal(
        second.curves.sort_values(by_run).reset_index(drop=True),
        load_curves(NAME, tracking_uri, grown).sort_values(by_run).reset_index(drop=True))
    # summarize: 3 learning rates x 2 hidden sizes, 3 seeds each.
    table = summarize(frame.reset_index())
    assert len(table) == 6 and set(table["n"]) == {3}
    # load_curves: every run's curve; the copies' equal their sources'.
    curves = load_curves(NAME, tracking_uri, grown)
    assert curves["run_id"].nunique() == 18
    for key, run in old.items():
        a = curves_before[curves_before.run_id == run.info.run_id].drop(columns="run_id")
        b = curves[curves.run_id == new[key].info.run_id].drop(columns="run_id")
        np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    # `sweeps summary`, `sweeps verify` (each copy re-trained here, bit for bit), `sweeps best`.
    result = CliRunner().invoke(app, ["summary", str(path), "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    assert "... " not in result.output and result.output.count(" 3 ") >= 6
    checked = verify(NAME, tracking_uri, grown, sample=None, base_dir=tmp_path)
    assert checked.checked == 18 and checked.verdict == BIT_IDENTICAL
    assert (checked.reused, checked.numerics) == (8, {})
    best = best_model(NAME, tracking_uri, grown, base_dir=tmp_path)
    assert best.run_id in {run.info.run_id for run in new.values()}

    # --no-reuse trains every variant again.
    again = run_sweep(grown, tracking_uri=tracking_uri, progress=False, fresh=True, reuse=False)
    assert (again.trained, again.reused) == (18, 0)
    assert not any(REUSED_FROM in run.data.tags
                   for run in children_of(tracking_uri, again.parent_run_id).values())


def test_a_sweep_with_nothing_to_train_does_not_start_ray(ray_session, tracking_uri, tmp_path):
    path = write_sweep(tmp_path, NAME, epochs=200, lrs=(0.1,), seeds=(0, 1))
    first = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    assert first.trained == 4
    driver = sweeps_command("run", str(path), "--fresh", "--no-progress", "--tracking-uri",
                            tracking_uri, cwd=tmp_path)
    code, err = driver.finish(timeout=START_TIMEOUT)
    out = driver.stdout.read_text()
    assert code == 0, err
    assert f"{NAME}: 4 variants: 4 reused, 0 trained" in out
    assert "Ray" not in err          # Ray says "Started a local Ray instance" when it starts
    parents = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name(NAME).experiment_id],
        "tags.`sweep.role` = 'parent'")
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}


def test_naming_a_ranking_metric_starts_a_new_parent_that_reuses_every_variant(
        ray_session, tracking_uri, tmp_path):
    # The file changes (its hash: a new parent), the variants do not (their keys: reused).
    path = write_sweep(tmp_path, NAME, epochs=100, lrs=(0.1, 0.5), seeds=(0, 1),
                       source="moons", loss="bce")
    config = yaml.safe_load(path.read_text())
    config["data"]["validation"] = 0.25
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    first = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    assert first.trained == 8 and first.summary.attrs["metric"] == "val_loss"
    config["search"]["metric"] = "val_accuracy"
    path.write_text(yaml.safe_dump(config, sort_keys=False))

    named = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    assert named.parent_run_id != first.parent_run_id
    assert (named.trained, named.reused, named.skipped) == (0, 8, 0)
    assert named.frame.attrs["ranking_metric"] == "val_accuracy"
    assert named.summary.attrs["metric"] == "val_accuracy"
    means = list(named.summary["val_accuracy_mean"])
    assert means == sorted(means, reverse=True)
    copies = children_of(tracking_uri, named.parent_run_id)
    assert {run.data.tags[REUSED_FROM] for run in copies.values()} == {
        run.info.run_id for run in children_of(tracking_uri, first.parent_run_id).values()}
