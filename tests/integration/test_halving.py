"""Successive halving end to end: real Ray, a real SQLite store, the sweep's own files."""

from __future__ import annotations

import csv
import io
import json
import signal
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from sweeps import run_sweep
from sweeps.cli import app
from sweeps.execution.retrain import retrain
from sweeps.tracking import readback
from tests.integration.helpers import (START_TIMEOUT, assert_logged_once, child_runs,
                                       sweeps_command, wait_for)
from tests.sweep_files import write_halving_sweep


def _parent_file(tracking_uri: str, experiment: str, path: str) -> str:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    [parent] = client.search_runs([found.experiment_id], "tags.`sweep.role` = 'parent'")
    return Path(client.download_artifacts(parent.info.run_id, path)).read_text()


def test_every_variant_is_one_complete_finished_run_pruned_at_its_rung(
        ray_session, tracking_uri, tmp_path):
    path = write_halving_sweep(tmp_path)           # rungs 5 10 20 40; brackets enter at 5, 10
    outcome = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    children = child_runs(tracking_uri, "halving")
    assert sorted(r.data.tags["sweep.variant_key"] for r in children) == \
        sorted(v.key for v in outcome.sweep.variants)
    assert {r.info.status for r in children} == {"FINISHED"}

    client = MlflowClient(tracking_uri)
    reached = {}
    for run in children:
        tags, status = run.data.tags, run.data.tags["sweep.status"]
        stopped, rung = int(tags["sweep.stopped_epoch"]), int(tags["sweep.rung"])
        assert status in ("ok", "pruned")
        assert (status == "ok") == (stopped == 40) == (rung == 3)
        assert stopped in (10, 20, 40)             # every group trains to bracket 1's entry
        for key in ("train_loss", "val_loss", "val_accuracy"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert steps == sorted(set(steps)) and steps[-1] == stopped, (key, steps)
            assert steps[:-1] == list(range(0, stopped, 5))      # continuous across rounds
        assert set(run.data.metrics) >= {"val_loss", "test_loss", "test_accuracy"}
        assert client.list_artifacts(run.info.run_id)[0].path == "predictions.csv"
        reached[tags["sweep.variant_key"]] = stopped

    table = list(csv.DictReader(io.StringIO(_parent_file(tracking_uri, "halving",
                                                          "halving/rungs.csv"))))
    assert [(r["bracket"], r["epoch"], r["groups_in"], r["groups_kept"]) for r in table
            if r["bracket"] == "0"] == [("0", "5", "8", "4"), ("0", "10", "4", "2"),
                                        ("0", "20", "2", "1"), ("0", "40", "1", "1")]
    for epoch in (10, 20, 40):     # variants trained to an epoch = the union of the brackets
        kept = [r for r in table if int(r["epoch"]) == epoch]
        assert max(int(r["variants_in"]) for r in kept) <= \
            sum(e >= epoch for e in reached.values()) <= sum(int(r["variants_in"]) for r in kept)

    frame, summary = outcome.frame, outcome.summary
    assert list(frame["stopped_epoch"]) == [reached[k] for k in frame["variant_key"]]
    assert summary["rung"].iloc[0] == 3 and summary.attrs["metric"] == "val_loss"
    assert (summary["rank"].diff().dropna() >= 0).all()
    assert (summary["rung"].astype(int).diff().dropna() <= 0).all()      # survivors first
    search = json.loads(_parent_file(tracking_uri, "halving", "halving/search.json"))
    assert search["pick"] == summary["group_key"].iloc[0]
    member = {v.group: v for v in outcome.sweep.variants}    # each bracket's pick, named
    for bracket, group in search["picks"].items():            # as its runs are, seed left out
        variant = member[group]
        assert search["pick_names"][bracket].split() == [
            part for part in variant.name.split() if part != f"seed={variant.settings['seed']}"]
    assert (outcome.out_dir / "rungs.png").stat().st_size > 0


def test_every_logged_run_equals_a_straight_run_to_its_stopped_epoch(
        ray_session, tracking_uri, tmp_path):
    """Survivors continued from their state across rounds and packs; pruned ones stopped: each
    run's numbers are those of one uninterrupted training to its epoch, to 1e-12."""
    path = write_halving_sweep(tmp_path, name="exact", epochs=60, min_epochs=7, log_every=4,
                               lrs=(0.1, 1.0, 3.0))
    outcome = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    records = readback.read_sweep("exact", tracking_uri).records
    assert {r.status for r in records} == {"ok", "pruned"}
    settings = readback.fetch_settings(tracking_uri, [r.run_id for r in records])
    logged = readback.fetch_predictions(tracking_uri, [r.run_id for r in records])
    for record in records:
        again = retrain(settings[record.run_id], epochs=record.stopped_epoch)
        table = logged[record.run_id]
        column = table.columns.index("pred_y")
        np.testing.assert_allclose(table.values[:, column], again.result.predictions[:, 0],
                                   rtol=1e-12, atol=1e-12)
        for key in ("val_loss", "train_loss", "test_loss"):
            np.testing.assert_allclose(record.metrics[key], again.result.metrics[key],
                                       rtol=1e-12, atol=0)
    assert len(outcome.frame) == len(outcome.sweep.variants)


def test_serial_and_ray_halving_make_the_same_choices(ray_session, tmp_path, monkeypatch):
    """On val_accuracy (not the default val_loss): both executors choose alike, and the
    outputs and `sweeps summary` rank on the metric the search chose on (its pick first)."""
    monkeypatch.chdir(tmp_path)
    path = write_halving_sweep(tmp_path, name="executors", metric="val_accuracy")
    uri = f"sqlite:///{tmp_path / 'ray.db'}"
    ray = run_sweep(path, tracking_uri=uri, progress=False)
    serial = run_sweep(path, tracking_uri=f"sqlite:///{tmp_path / 'serial.db'}",
                       executor="serial", progress=False, out=tmp_path / "serial")
    columns = ["variant_key", "status", "stopped_epoch", "val_accuracy", "val_loss", "test_loss"]
    a = ray.frame[columns].sort_values("variant_key").reset_index(drop=True)
    b = serial.frame[columns].sort_values("variant_key").reset_index(drop=True)
    assert a.equals(b)

    summary = ray.summary
    assert summary.attrs["metric"] == "val_accuracy"
    search = json.loads(_parent_file(uri, "executors", "halving/search.json"))
    assert search["pick"] == summary["group_key"].iloc[0]
    table = tmp_path / "summary.csv"
    result = CliRunner().invoke(app, ["summary", str(path), "--tracking-uri", uri,
                                      "--csv", str(table)])
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.output.splitlines()[0]
    with table.open() as file:
        assert next(csv.DictReader(file))["group_key"] == search["pick"]


def test_a_diverging_variant_is_dropped_not_ranked(ray_session, tracking_uri, tmp_path):
    path = write_halving_sweep(tmp_path, name="diverging", source="sine", lrs=(0.01, 0.1, 40.0),
                               output_activation="identity", loss="mse", metric="val_loss")
    outcome = run_sweep(path, tracking_uri=tracking_uri, progress=False)
    frame = outcome.frame
    wild = frame[frame["train.lr"] == 40.0]
    assert set(wild["status"]) == {"diverged"}
    assert (wild["diverged_epoch"] < wild["stopped_epoch"]).all()
    # dropped at the first decision after it diverged, never promoted past a sound group
    assert (wild["stopped_epoch"] <= 10).all()
    assert outcome.summary["train.lr"].iloc[0] != 40.0
    assert (frame.loc[frame["status"] == "ok", "train.lr"] != 40.0).all()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_search_resumes_after_its_last_finished_round(tracking_uri, tmp_path, signum):
    """Killed (or Ctrl-C) after a round's checkpoint: running the file again trains no
    finished round again, logs no variant twice, and makes the uninterrupted run's choices."""
    name = f"resume-{signal.Signals(signum).name.lower()}"
    path = write_halving_sweep(tmp_path, name=name, epochs=32000, min_epochs=2000,
                               log_every=1000, seeds=(0, 1, 2))
    checkpoints = lambda: list(tmp_path.glob("mlruns/*/*/artifacts/halving/checkpoint.npz"))  # noqa: E731
    driver = sweeps_command("run", str(path), "--tracking-uri", tracking_uri, cwd=tmp_path)
    try:
        wait_for("the first round's checkpoint", checkpoints, timeout=START_TIMEOUT,
                 interval=0.05, watch=[driver])
        if signum == signal.SIGKILL:
            driver.kill()
        else:
            driver.popen.send_signal(signum)
            code, stderr = driver.finish(timeout=180)
            assert code == 130, stderr
    finally:
        driver.kill()
    done, total = _rounds_done(checkpoints()[0])
    logged_before = {r.data.tags["sweep.variant_key"]: r.info.run_id
                     for r in child_runs(tracking_uri, name, "FINISHED")}

    again = sweeps_command("run", str(path), "--tracking-uri", tracking_uri, cwd=tmp_path,
                           name="again")
    code, stderr = again.finish(timeout=START_TIMEOUT)
    assert code == 0, stderr
    assert 1 <= done < total
    for number in range(1, total + 1):
        assert (f"round {number}/{total}" in stderr) == (number > done), (number, done, stderr)

    assert_logged_once(tracking_uri, name, logged_before, 24)

    fresh = run_sweep(path, tracking_uri=f"sqlite:///{tmp_path / 'fresh.db'}", progress=False,
                      executor="serial", out=tmp_path / "fresh")
    resumed = readback.read_sweep(name, tracking_uri).records
    assert {r.variant_key: (r.status, r.stopped_epoch) for r in resumed} == {
        k: (s, e) for k, s, e in zip(fresh.frame["variant_key"], fresh.frame["status"],
                                     fresh.frame["stopped_epoch"])}


def _rounds_done(checkpoint: Path) -> tuple[int, int]:
    """(rounds finished, rounds in all) from a checkpoint: round 1 trains rungs 0 .. the last
    bracket's entry, each later round one rung."""
    with np.load(checkpoint, allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode())
    done, starts = meta["search"]["done"], meta["schedule"]["starts"]
    rungs = meta["schedule"]["rungs"]
    return 1 + len(done) - (starts[-1] + 1), 1 + len(rungs) - 1 - starts[-1]
