"""Faults on the cluster in the middle of a sweep, injected on conditions, not after sleeps:
the tracking server restarted, a Ray worker node killed, the driver interrupted."""

from __future__ import annotations

import signal

import pytest

from tests.cluster.cluster_sweeps import (
    FAULT_EPOCHS, VARIANTS, assert_each_variant_logged_once, finish, finished_children,
    mlflow_client, new_pack_tasks, pack_task_ids, start_sweeps, variant_keys,
    wait_for_finished_children, write_sweep,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster


def _start_sweep(cluster, workdir, name, epochs=FAULT_EPOCHS, tracking_uri=None):
    sweep = write_sweep(workdir, name, epochs=epochs)
    driver = start_sweeps(cluster, ["run", str(sweep), "--address", cluster.ray.address,
                                    "--tracking-uri", tracking_uri or cluster.tracking_uri,
                                    "--no-progress"],
                          workdir, "sweeps-run")
    return sweep, driver


def test_tracking_server_restarted_mid_sweep_every_variant_logged_once(cluster, workdir):
    name = "cluster-fault-mlflow"
    before = pack_task_ids(cluster)
    sweep, driver = _start_sweep(cluster, workdir, name)
    keys = variant_keys(sweep)

    logged = wait_for_finished_children(cluster, name, driver)
    assert logged < VARIANTS
    finished_before = sum(t["state"] == "FINISHED" for t in new_pack_tasks(cluster, before))
    cluster.mlflow.stop()
    # Keep the server down until the driver has results it must write meanwhile: another pack
    # finished after the server went down (or none were left to train, and the driver, which
    # had not logged them all, is writing now).
    total_packs = len(new_pack_tasks(cluster, before))
    wait_for("a pack finished while the tracking server is down",
             lambda: (n := sum(t["state"] == "FINISHED" for t in new_pack_tasks(cluster, before)))
             > finished_before or n == total_packs, timeout=300, watch=(driver,))
    assert driver.alive(), "the driver must survive the outage"
    cluster.mlflow.start()
    cluster.mlflow.wait_ready()

    assert finish(driver) == 0, driver.tail(60)
    assert_each_variant_logged_once(cluster, name, keys)
    assert cluster.mlflow.starts >= 2


@pytest.mark.parametrize("writes", ["server", "database"])
def test_worker_node_killed_mid_sweep_its_packs_are_retried_on_the_other_node(cluster, workdir,
                                                                              writes):
    """Through the tracking server (the driver writes), or straight into PostgreSQL (each
    worker writes the packs it trains: a node killed in or after a transaction)."""
    name = f"cluster-fault-node-{writes}"
    nodes = cluster.ray.live_nodes()
    head = next(node for node, is_head in nodes.items() if is_head)
    worker = next(node for node, is_head in nodes.items() if not is_head)
    before = pack_task_ids(cluster)
    # Packs of ~12 s: one seen running is still running when the kill lands, even when the
    # machine is busy and killing a node takes seconds.
    sweep, driver = _start_sweep(cluster, workdir, name, epochs=4 * FAULT_EPOCHS,
                                 tracking_uri=cluster.store_uri if writes == "database" else None)
    keys = variant_keys(sweep)

    # Kill the node while it is training a pack, once the sweep has logged its first variants:
    # a pack that starts on it after that (a pack already running then may be near its end on
    # a busy machine, and done before the kill lands).
    wait_for_finished_children(cluster, name, driver)
    seen = {t["task_id"] for t in new_pack_tasks(cluster, before) if t["node_id"] == worker}
    wait_for("a new pack running on the worker node",
             lambda: any(t["state"] == "RUNNING" and t["node_id"] == worker
                         and t["task_id"] not in seen for t in new_pack_tasks(cluster, before)),
             timeout=300, watch=(driver,), interval=0.1)
    assert finished_children(cluster, name) < VARIANTS
    assert cluster.ray.kill_worker() == worker

    assert finish(driver) == 0, driver.tail(60)
    assert_each_variant_logged_once(cluster, name, keys)
    attempts = new_pack_tasks(cluster, before)
    lost = {t["task_id"] for t in attempts if t["node_id"] == worker and t["state"] != "FINISHED"}
    assert lost, f"a pack was running on the killed node: {attempts}"
    for task_id in lost:
        retried = [t for t in attempts if t["task_id"] == task_id and t["attempt_number"] > 0]
        assert any(t["state"] == "FINISHED" and t["node_id"] == head for t in retried), \
            f"pack task {task_id} was not retried on the head node: {retried}"


def test_an_interrupted_driver_leaves_no_pack_training_on_the_cluster(cluster, workdir):
    """Ctrl-C on `sweeps run --address`: exit 130, the parent KILLED, and the packs still
    training are ended by Ray as the driver leaves (the driver does not cancel them itself)."""
    name = "cluster-interrupted"
    before = pack_task_ids(cluster)
    sweep, driver = _start_sweep(cluster, workdir, name)

    wait_for_finished_children(cluster, name, driver)
    assert any(t["state"] != "FINISHED" for t in new_pack_tasks(cluster, before)), \
        "every pack had finished before the interruption"
    driver.popen.send_signal(signal.SIGINT)
    assert finish(driver) == 130, driver.tail(60)

    # A pack takes ~3 s; had the tasks outlived their driver, they would report FINISHED.
    tasks = wait_for("every pack task of the interrupted sweep ended",
                     lambda: (t := new_pack_tasks(cluster, before))
                     and all(task["state"] in ("FINISHED", "FAILED") for task in t) and t,
                     timeout=300, interval=0.5)
    assert any(task["state"] == "FAILED" for task in tasks), tasks
    client = mlflow_client(cluster)
    experiment = client.get_experiment_by_name(name)
    [parent] = client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")
    assert parent.info.status == "KILLED"
    assert 1 <= finished_children(cluster, name) < VARIANTS
