"""`sweeps run` against a real local Ray instance and a real SQLite MLflow store."""

from __future__ import annotations

import csv
import os
import signal
import threading

import numpy as np
import pytest
from mlflow import MlflowClient

from sweeps.run import run_sweep
from tests.conftest import CONFIGS
from tests.integration.helpers import (
    START_TIMEOUT,
    child_runs,
    pack_task_pids,
    sweeps_command,
    wait_for,
    write_sweep,
)

pytestmark = pytest.mark.integration


def article_transcription() -> tuple[dict[int, float], float]:
    """The seed article's code, transcribed: MSE at epochs 0, 1000, ... and the test prediction."""
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.random.seed(42)
    w_ih, w_ho = np.random.rand(3, 4), np.random.rand(4, 1)
    X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    Y = np.array([[0.2], [0.5], [0.8]])
    losses = {}
    for epoch in range(10000):
        hidden = sigmoid(np.dot(X, w_ih))
        out = sigmoid(np.dot(hidden, w_ho))
        if epoch % 1000 == 0:
            losses[epoch] = np.mean((Y - out) ** 2)
        d_out = (Y - out) * (out * (1 - out))
        d_hidden = d_out.dot(w_ho.T) * (hidden * (1 - hidden))
        w_ho += hidden.T.dot(d_out) * 0.1
        w_ih += X.T.dot(d_hidden) * 0.1
    test = sigmoid(np.dot(sigmoid(np.dot(np.array([[0.2, 0.4, 0.6]]), w_ih)), w_ho))
    return losses, float(test[0, 0])


def test_article_sweep_logs_the_article_numbers(ray_session, tracking_uri, tmp_path):
    run_sweep(CONFIGS / "article.yaml", tracking_uri=tracking_uri, progress=False)

    client = MlflowClient(tracking_uri)
    [child] = child_runs(tracking_uri, "article")
    history = client.get_metric_history(child.info.run_id, "train_loss")
    logged = {m.step: m.value for m in history}
    expected, prediction = article_transcription()
    for epoch, mse in expected.items():
        # train_loss is half_sse = 0.5 * sum of squared errors = 1.5 * MSE on 3 rows x 1 output
        assert logged[epoch] == pytest.approx(1.5 * mse, rel=1e-12), epoch
    final_mse = child.data.metrics["train_mse"]
    assert final_mse == pytest.approx(logged[10000] / 1.5, rel=1e-12)
    path = client.download_artifacts(child.info.run_id, "predictions.csv", str(tmp_path))
    [row] = list(csv.DictReader(open(path)))
    predicted = [float(value) for name, value in row.items() if "pred" in name]
    assert predicted == [pytest.approx(prediction, rel=1e-12)]


def test_card_sweep_logs_480_children_with_the_documented_layout(ray_session, tracking_uri):
    outcome = run_sweep(CONFIGS / "card.yaml", tracking_uri=tracking_uri, progress=False)

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(outcome.sweep.name)
    [parent] = client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep.config_hash"] == outcome.sweep.config_hash
    assert parent.data.tags["sweep.name"] == outcome.sweep.name

    children = child_runs(tracking_uri, outcome.sweep.name)
    assert len(children) == 480
    assert {run.info.status for run in children} == {"FINISHED"}
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    keys = [run.data.tags["sweep.variant_key"] for run in children]
    assert sorted(keys) == sorted(variant.key for variant in outcome.sweep.variants)
    assert len({run.data.tags["mlflow.runName"] for run in children}) == 480
    groups = {run.data.tags["sweep.group_key"] for run in children}
    assert len(groups) == 48  # seeds aggregate: 480 variants / 10 seeds

    some = children[0]
    assert some.data.tags["sweep.status"] in ("ok", "diverged")
    for setting in ("train.lr", "model.hidden", "model.init", "seed", "train.epochs"):
        assert setting in some.data.params
    for metric in ("train_loss", "train_mse", "test_loss", "test_mse", "train_seconds"):
        assert np.isfinite(some.data.metrics[metric])
    history = client.get_metric_history(some.info.run_id, "train_loss")
    # every 100 epochs before that epoch's update, then the final value at step = epochs
    assert [m.step for m in history] == list(range(0, 10000, 100)) + [10000]
    assert [a.path for a in client.list_artifacts(some.info.run_id)] == ["predictions.csv"]


def test_serial_and_ray_executors_give_the_same_numbers(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = write_sweep(tmp_path, epochs=1500)
    on_ray = run_sweep(sweep, tracking_uri=f"sqlite:///{tmp_path}/ray.db", progress=False)
    serial = run_sweep(sweep, tracking_uri=f"sqlite:///{tmp_path}/serial.db",
                       executor="serial", progress=False)

    columns = ["train_loss", "train_mse", "test_loss", "test_mse"]
    a = on_ray.frame.set_index("variant_key").sort_index()[columns]
    b = serial.frame.set_index("variant_key").sort_index()[columns]
    assert len(a) == 12
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-10)


def test_a_killed_worker_is_retried_and_every_variant_logged_once(ray_session, tracking_uri, tmp_path):
    sweep = write_sweep(tmp_path, name="killed-worker", epochs=30000)
    killed = []

    def kill_first_pack_worker():
        pids = wait_for("a Ray worker running a pack", pack_task_pids, timeout=START_TIMEOUT)
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    killer = threading.Thread(target=kill_first_pack_worker, daemon=True)
    killer.start()
    outcome = run_sweep(sweep, tracking_uri=tracking_uri, progress=False)
    killer.join(timeout=5)

    assert killed, "no pack worker was killed"
    assert not outcome.failed
    children = child_runs(tracking_uri, "killed-worker")
    keys = sorted(run.data.tags["sweep.variant_key"] for run in children)
    assert keys == sorted(variant.key for variant in outcome.sweep.variants)
    assert {run.info.status for run in children} == {"FINISHED"}


def test_a_driver_killed_with_sigkill_resumes_to_exactly_one_finished_child_each(
    ray_session, tracking_uri, tmp_path
):
    sweep = write_sweep(tmp_path, name="resumed", epochs=20000, seeds=range(6))
    driver = sweeps_command("run", str(sweep), "--tracking-uri", tracking_uri,
                            "--no-progress", cwd=tmp_path)
    try:
        wait_for("three finished child runs",
                 lambda: len(child_runs(tracking_uri, "resumed", "FINISHED")) >= 3,
                 timeout=START_TIMEOUT, interval=0.1, watch=[driver])
    finally:
        driver.kill()
    finished_before = {
        run.data.tags["sweep.variant_key"]
        for run in child_runs(tracking_uri, "resumed", "FINISHED")
    }

    outcome = run_sweep(sweep, tracking_uri=tracking_uri, progress=False)

    assert outcome.skipped == len(finished_before)
    assert outcome.trained == 24 - len(finished_before)  # nothing finished is trained again
    children = child_runs(tracking_uri, "resumed")
    keys = [run.data.tags["sweep.variant_key"] for run in children]
    assert sorted(keys) == sorted(variant.key for variant in outcome.sweep.variants)
    assert {run.info.status for run in children} == {"FINISHED"}
    assert len(outcome.frame) == 24


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_sweep_cleanly_and_keeps_what_finished(
    tracking_uri, tmp_path, signum, exit_code
):
    sweep = write_sweep(tmp_path, name="stopped", epochs=20000, seeds=range(6))
    driver = sweeps_command("run", str(sweep), "--tracking-uri", tracking_uri,
                            "--no-progress", cwd=tmp_path)
    try:
        wait_for("a finished child run", lambda: child_runs(tracking_uri, "stopped", "FINISHED"),
                 timeout=START_TIMEOUT, interval=0.1, watch=[driver])
        os.kill(driver.pid, signum)
        code, stderr = driver.finish(timeout=180)
    finally:
        driver.kill()
    assert code == exit_code, stderr
    assert "Run the same command again" in stderr
    assert "Traceback" not in stderr

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("stopped")
    [parent] = client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")
    assert parent.info.status == "KILLED"
    finished = child_runs(tracking_uri, "stopped", "FINISHED")
    assert 1 <= len(finished) < 24


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_started_with_sigint_ignored_ctrl_c_is_ignored_and_sigterm_still_stops_it(
    tracking_uri, tmp_path, signum, exit_code
):
    """`nohup sweeps run ...` or a background job of a script: SIGINT arrives ignored, and
    Python keeps it so (no KeyboardInterrupt), so Ctrl-C lets the sweep finish normally; the
    SIGTERM handler of `sweeps run` is installed regardless."""
    name = f"nohup-{signal.Signals(signum).name.lower()}"
    sweep = write_sweep(tmp_path, name=name, epochs=20000, seeds=range(6))
    driver = sweeps_command("run", str(sweep), "--tracking-uri", tracking_uri,
                            "--no-progress", cwd=tmp_path,
                            signals={signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_DFL})
    try:
        wait_for("a finished child run", lambda: child_runs(tracking_uri, name, "FINISHED"),
                 timeout=START_TIMEOUT, interval=0.1, watch=[driver])
        finished_when_signalled = len(child_runs(tracking_uri, name, "FINISHED"))
        assert driver.returncode is None and finished_when_signalled < 24, "the sweep was over"
        os.kill(driver.pid, signum)
        code, stderr = driver.finish(timeout=START_TIMEOUT)
    finally:
        driver.kill()
    assert code == exit_code, stderr
    assert "Traceback" not in stderr

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    [parent] = client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")
    finished = child_runs(tracking_uri, name, "FINISHED")
    if signum == signal.SIGINT:
        assert parent.info.status == "FINISHED"
        assert len(finished) == 24
    else:
        assert parent.info.status == "KILLED"
        assert "Run the same command again" in stderr
        assert 1 <= len(finished) < 24


def test_a_diverging_learning_rate_is_recorded_and_the_rest_completes(
    ray_session, tracking_uri, tmp_path
):
    path = write_sweep(tmp_path, name="diverging", lrs=[0.05, 10.0], seeds=[0, 1],
                       activation="tanh", output_activation="identity")
    outcome = run_sweep(path, tracking_uri=tracking_uri, progress=False)

    children = child_runs(tracking_uri, "diverging")
    assert len(children) == 8
    assert {run.info.status for run in children} == {"FINISHED"}
    by_lr = {}
    for run in children:
        by_lr.setdefault(float(run.data.params["train.lr"]), []).append(run)
    assert {run.data.tags["sweep.status"] for run in by_lr[10.0]} == {"diverged"}
    assert {run.data.tags["sweep.status"] for run in by_lr[0.05]} == {"ok"}
    assert all(run.data.metrics["diverged_epoch"] >= 0 for run in by_lr[10.0])
    assert all(np.isfinite(run.data.metrics["test_mse"]) for run in by_lr[0.05])
    assert (outcome.frame["status"] == "diverged").sum() == 4


def _unused_loopback_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("option, what", [
    ("--address", "no Ray cluster answers at 127.0.0.1:"),
    ("--tracking-uri", "no MLflow tracking server answers at http://127.0.0.1:"),
])
def test_an_unreachable_cluster_or_tracking_server_fails_fast_with_its_address(
    tmp_path, option, what
):
    port = _unused_loopback_port()
    value = f"127.0.0.1:{port}" if option == "--address" else f"http://127.0.0.1:{port}"
    extra = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"] if option == "--address" else []
    driver = sweeps_command("run", str(CONFIGS / "article.yaml"), option, value, *extra,
                            "--no-progress", cwd=tmp_path)
    try:
        code, stderr = driver.finish(timeout=120)  # Ray and MLflow alone would retry for minutes
    finally:
        driver.kill()
    assert code == 1
    assert what in stderr and str(port) in stderr
    assert "Traceback" not in stderr
