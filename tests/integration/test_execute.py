"""sweeps.execution.execute: the local Ray instance's worker environment and the order of
hand-overs."""

from __future__ import annotations

import os

import pytest

from sweeps.execution import execute
from sweeps.execution.plan import make_packs
from sweeps.execution.training import train_pack
from sweeps.spec.sweep import load_sweep
from tests.helpers import wait_for
from tests.integration.helpers import write_sweep


def test_local_ray_gives_workers_the_thread_limits_and_restores_this_process(monkeypatch):
    """Unit (ray.init replaced): WORKER_ENV is in the environment while Ray starts, then gone."""
    seen = {}
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(execute.ray, "init", lambda **options: seen.update(
        env={name: os.environ.get(name) for name in execute.WORKER_ENV}, options=options,
        params=execute.ray_parameter.RayParams(num_cpus=2)))
    ray_params = execute.ray_parameter.RayParams

    execute.start_local_ray(num_cpus=2)

    # the node's own parameters for this start only (ray.init takes none of them)
    assert (seen["params"].dashboard_agent_listen_port, seen["params"].include_log_monitor,
            seen["params"].no_monitor) == (0, False, True)
    assert execute.ray_parameter.RayParams is ray_params
    assert seen["env"] == execute.WORKER_ENV
    assert seen["options"]["address"] == "local" and seen["options"]["num_cpus"] == 2
    assert "runtime_env" not in seen["options"]
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "MKL_NUM_THREADS" not in os.environ


@pytest.mark.integration
def test_workers_of_the_local_instance_run_with_one_blas_thread(ray_session):
    @ray_session.remote
    def environment():
        return {name: os.environ.get(name) for name in execute.WORKER_ENV}

    assert ray_session.get(environment.remote()) == execute.WORKER_ENV


@pytest.mark.integration
def test_the_local_instance_runs_no_log_or_autoscaler_monitor(ray_session):
    """(Two Python processes that import Ray while the node starts, for nothing here.)"""
    from ray._private import ray_constants

    running = set(ray_session._private.worker._global_node.all_processes)
    assert ray_constants.PROCESS_TYPE_RAYLET in running
    assert not {ray_constants.PROCESS_TYPE_LOG_MONITOR, ray_constants.PROCESS_TYPE_MONITOR} \
        & running


@pytest.mark.integration
def test_the_local_instance_stays_on_the_loopback(ray_session):
    """The node, its GCS and its workers register 127.0.0.1, not the machine's outward address,
    though this test session imported Ray before starting it."""
    @ray_session.remote
    def worker_address():
        return ray_session.util.get_node_ip_address()

    assert [node["NodeManagerAddress"] for node in ray_session.nodes()] == [execute.LOOPBACK]
    assert ray_session.get_runtime_context().gcs_address.startswith(f"{execute.LOOPBACK}:")
    assert ray_session.get(worker_address.remote()) == execute.LOOPBACK


@pytest.mark.integration
def test_run_ray_reports_all_trained_once_before_the_logging_backlog_ends(ray_session, tmp_path,
                                                                        monkeypatch):
    """The first pack's logging outlasts every pack's training (it waits until each task has
    said so): Ray is released once, before the backlog is handed over."""
    sweep = load_sweep(write_sweep(tmp_path, epochs=100, seeds=range(4)))
    packs = make_packs(sweep, workers=2)
    assert len(packs) >= 3

    @ray_session.remote
    class Trained:
        def __init__(self):
            self.count = 0

        def add(self):
            self.count += 1

        def total(self):
            return self.count

    trained = Trained.remote()

    @ray_session.remote
    def counted_task(pack, dataset, writer=None):   # execute._train_pack_task, then counted
        out = train_pack(pack, dataset), ray_session.get_runtime_context().get_node_id()
        ray_session.get(trained.add.remote())
        return out

    monkeypatch.setattr(execute, "_train_pack_task", counted_task)
    events = []

    def slow_logging(pack, results):
        events.append(("done", len(results)))
        if len(events) == 1:
            wait_for("every pack trained",
                     lambda: ray_session.get(trained.total.remote()) == len(packs))

    execute.run_ray(packs, sweep.datasets, slow_logging,
                            on_failed=lambda pack, error: events.append(("failed", error)),
                            on_all_trained=lambda: events.append(("all trained", 0)))

    kinds = [kind for kind, _ in events]
    assert kinds.count("all trained") == 1 and kinds.index("all trained") > 0
    assert events[-1][0] == "done", "the backlog is handed over after Ray is released"
    assert sum(n for kind, n in events if kind == "done") == len(sweep.variants)
