"""`sweeps submit / status / stop`: sweeps as Ray Jobs on the native cluster's job server."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.cluster.cluster_sweeps import (
    FAULT_EPOCHS, VARIANTS, assert_each_variant_logged_once, child_runs, finished_children,
    mlflow_client, run_sweeps, variant_keys, write_sweep,
)
from tests.helpers import free_port, wait_for
from sweeps.execution import submit as jobs
from sweeps.cli import app

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _job_status(cluster, job_id: str) -> str:
    return jobs.status(job_id, cluster.ray.dashboard_url)


@pytest.mark.cluster
def test_submit_follow_streams_the_job_and_the_sweep_lands_in_mlflow(cluster, workdir):
    name = "cluster-submit"
    sweep = write_sweep(workdir, name)
    keys = variant_keys(sweep)

    code, output = run_sweeps(cluster, ["submit", sweep.name, "--address",
                                        cluster.ray.dashboard_url, "--tracking-uri",
                                        cluster.tracking_uri, "--follow"], workdir, "submit")
    assert code == 0, output
    job_id = output.strip().splitlines()[-1]          # printed last, after the followed logs
    assert job_id.startswith(f"sweeps-{name}-")
    assert f"Running entrypoint for job {job_id}: sweeps run {sweep.name} --address auto" in output
    assert f"{VARIANTS} variants: 0 reused, {VARIANTS} trained" in output   # the driver's report, streamed

    code, output = run_sweeps(cluster, ["status", job_id, "--address",
                                        cluster.ray.dashboard_url], workdir, "status")
    assert (code, output.strip().splitlines()[-1]) == (0, "SUCCEEDED")
    assert_each_variant_logged_once(cluster, name, keys)
    # only the sweep's directory was uploaded: the job ran this very file
    parents = [run for run in mlflow_client(cluster).search_runs(
        [mlflow_client(cluster).get_experiment_by_name(name).experiment_id],
        filter_string="tags.`sweep.role` = 'parent'")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"


@pytest.mark.cluster
def test_stop_ends_a_running_job_and_the_sweep_is_marked_killed(cluster, workdir, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", cluster.ray.token)
    name = "cluster-stop"
    sweep = write_sweep(workdir, name, epochs=FAULT_EPOCHS)
    address = cluster.ray.dashboard_url

    job_id = jobs.submit(sweep, address, tracking_uri=cluster.tracking_uri)
    wait_for("the job's first variants logged",
             lambda: _job_status(cluster, job_id) not in TERMINAL
             and finished_children(cluster, name) >= 1, timeout=300, interval=0.3)
    assert jobs.stop(job_id, address) == f"{job_id}: stop requested"
    assert wait_for("job stopped", lambda: (s := _job_status(cluster, job_id)) in TERMINAL and s,
                    timeout=300) == "STOPPED"

    # The driver got SIGTERM: the parent run is KILLED, what finished stays logged, once.
    client = mlflow_client(cluster)
    experiment = client.get_experiment_by_name(name).experiment_id
    parent, = client.search_runs([experiment], filter_string="tags.`sweep.role` = 'parent'")
    assert parent.info.status == "KILLED"
    runs = child_runs(cluster, name)
    finished = [run.data.tags["sweep.variant_key"] for run in runs if run.info.status == "FINISHED"]
    assert 1 <= len(finished) < VARIANTS and len(set(finished)) == len(finished)
    assert jobs.stop(job_id, address) == f"{job_id}: not running (STOPPED)"


@pytest.mark.cluster
def test_status_and_stop_of_an_unknown_job_fail_with_one_line(cluster):
    runner = CliRunner()
    for command in ("status", "stop"):
        result = runner.invoke(app, [command, "sweeps-no-such-job", "--address",
                                     cluster.ray.dashboard_url], env=cluster.env())
        assert result.exit_code == 2, result.output
        assert result.output.strip() == \
            f"sweeps-no-such-job: no such job on {cluster.ray.dashboard_url}"


def test_submit_to_an_address_nobody_listens_on_fails_with_one_line(tmp_path):
    sweep = write_sweep(tmp_path, "nowhere")
    address = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["submit", str(sweep), "--address", address])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{address}: cannot reach the Ray job server")


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "file:///tmp/mlruns", "mlruns"])
def test_submit_refuses_a_tracking_store_local_to_this_machine(tmp_path, uri):
    sweep = write_sweep(tmp_path, "local-store")
    with pytest.raises(jobs.SubmitError, match="local store"):
        jobs.submit(sweep, "http://127.0.0.1:1", tracking_uri=uri)


def test_submit_uploads_the_current_directory_or_else_the_sweep_files_directory(tmp_path,
                                                                              monkeypatch):
    inside = tmp_path / "project" / "configs"
    inside.mkdir(parents=True)
    sweep = write_sweep(inside, "where")
    monkeypatch.chdir(tmp_path / "project")
    assert jobs._working_dir(sweep.resolve(), None) == (tmp_path / "project").resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert jobs._working_dir(sweep.resolve(), None) == inside.resolve()
    with pytest.raises(jobs.SubmitError, match="not inside"):
        jobs._working_dir(sweep.resolve(), elsewhere)
    assert ".env" in jobs.EXCLUDES and ".venv" in jobs.EXCLUDES   # secrets, local state stay home
