"""Real sweeps on the native stack: two Ray nodes, an MLflow server on PostgreSQL. Drivers write
runs over HTTP through the server, or (as docker-compose.yml's sweep service) straight into
its database in bulk; everything is read back over HTTP.

Each test uses its own experiment (the sweep's name), so tests do not see each other's runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sweeps.tracking.contract import ROLE

from tests.cluster.cluster_sweeps import (
    SWEEP_EPOCHS, VARIANTS, assert_each_variant_logged_once, child_runs, finish, finished_nodes,
    mlflow_client, new_pack_tasks, pack_task_ids, run_sweeps, start_run_sweep, variant_keys,
    write_sweep,
)

pytestmark = pytest.mark.cluster

# Packs of ~3 s: a job's first worker on the second node (its own runtime env) can take seconds
# to start on a busy machine, and packs of ~1 s could all finish on the head meanwhile.
EPOCHS = 3 * SWEEP_EPOCHS


def _loaded(cluster, experiment: str) -> pd.DataFrame:
    from sweeps.report.results import load_runs

    return load_runs(experiment, tracking_uri=cluster.tracking_uri)


@pytest.fixture(scope="module")
def swept(_stack_holder, tmp_path_factory):
    """One `run_sweep(path, tracking_uri=..., address=...)` on the cluster, shared by the tests
    below that check what it produced."""
    cluster = _stack_holder.get().ensure_ready()
    nodes = cluster.ray.live_nodes()
    workdir = tmp_path_factory.mktemp("run-sweep")
    name = "cluster-run-sweep"
    sweep = write_sweep(workdir, name, epochs=EPOCHS)
    driver = start_run_sweep(cluster, sweep, cluster.ray.address, workdir)
    assert finish(driver) == 0, driver.tail(60)
    return SimpleNamespace(
        cluster=cluster, name=name, keys=variant_keys(sweep), nodes=nodes, workdir=workdir,
        result=json.loads((workdir / "result.json").read_text()),
        frame=pd.read_pickle(workdir / "result.frame.pkl"))


def test_run_sweep_trains_on_both_nodes_and_logs_every_variant_to_the_server(swept):
    result, frame, keys = swept.result, swept.frame, swept.keys
    assert result["status"] == "FINISHED" and not result["failed"]
    assert (result["trained"], result["skipped"]) == (VARIANTS, 0)
    assert len(frame) == VARIANTS and set(frame["variant_key"]) == keys
    # packs ran on both nodes of the cluster, and only there
    assert set(result["nodes"]) == set(swept.nodes), (result["nodes"], swept.nodes)
    # ... and the workers that trained them wrote their children straight into PostgreSQL:
    # one writer process per node (each node has one CPU), none of them the driver
    assert len(result["writers"]) == 2 and sum(result["writers"].values()) == \
        sum(result["nodes"].values()), result["writers"]

    # Everything is back from the tracking server over HTTP, with the same numbers.
    loaded = _loaded(swept.cluster, swept.name)
    assert len(loaded) == VARIANTS and set(loaded["variant_key"]) == keys
    mine = frame.set_index("variant_key").loc[sorted(keys)]
    theirs = loaded.set_index("variant_key").loc[sorted(keys)]
    for metric in ("test_loss", "train_loss", "test_mse"):
        np.testing.assert_allclose(theirs[metric], mine[metric], rtol=1e-12)
    assert_each_variant_logged_once(swept.cluster, swept.name, keys)


def test_the_tracking_server_keeps_runs_in_postgres_and_artifacts_in_its_store(swept):
    cluster, name = swept.cluster, swept.name
    # the runs are rows of the PostgreSQL backend store: one parent, one child per variant and
    # one configuration run per group of seeds
    connection = cluster.postgres.connect(cluster.postgres.database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tags.value, count(*) FROM runs JOIN experiments USING (experiment_id) "
                "JOIN tags ON tags.run_uuid = runs.run_uuid AND tags.key = %s "
                "WHERE experiments.name = %s AND runs.lifecycle_stage = 'active' "
                "GROUP BY tags.value", (ROLE, name))
            roles = dict(cursor.fetchall())
    finally:
        connection.close()
    groups = swept.frame["group_key"].nunique()
    assert roles == {"parent": 1, "variant": VARIANTS, "group": groups}, roles

    # artifacts travel through the server (--serve-artifacts) into its artifacts destination
    client = mlflow_client(cluster)
    parent_id = swept.result["parent_run_id"]
    assert client.get_run(parent_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert f"{name}.yaml" in {item.path for item in client.list_artifacts(parent_id)}
    stored = {path.name for path in cluster.mlflow.artifacts.rglob("*") if path.is_file()}
    assert {f"{name}.yaml", "predictions.csv"} <= stored
    child = child_runs(cluster, name)[0]
    predictions = client.download_artifacts(child.info.run_id, "predictions.csv",
                                            str(swept.workdir))
    assert pd.read_csv(predictions).shape[0] >= 1


@pytest.mark.parametrize("via", ["gcs", "ray-client"])
def test_sweeps_run_command_joins_the_cluster(cluster, workdir, via, monkeypatch):
    """`sweeps run FILE --address ADDR --tracking-uri URI`: by the head's GCS address logging
    through the server, or through Ray Client (ray://head:10001) writing to its database as the
    compose file's `sweep` service does."""
    name = f"cluster-cli-{via}"
    sweep = write_sweep(workdir, name, epochs=EPOCHS)
    keys = variant_keys(sweep)
    address = cluster.ray.address if via == "gcs" else cluster.ray.client_address
    before = pack_task_ids(cluster)

    uri = cluster.tracking_uri if via == "gcs" else cluster.store_uri
    code, output = run_sweeps(cluster, ["run", str(sweep), "--address", address,
                                        "--tracking-uri", uri, "--no-progress"],
                              workdir, f"sweeps-run-{via}")
    assert code == 0, output
    assert f"{VARIANTS} variants: 0 reused, {VARIANTS} trained" in output

    # Ray's own record: this sweep's packs finished on both nodes
    ran_on = finished_nodes(new_pack_tasks(cluster, before))
    assert set(ran_on) == set(cluster.ray.live_nodes()), ran_on
    assert sum(ran_on.values()) >= 2
    loaded = _loaded(cluster, name)
    assert set(loaded["variant_key"]) == keys and len(loaded) == VARIANTS
    assert_each_variant_logged_once(cluster, name, keys)

    # `sweeps verify` on the same store: it re-trains from the database's params and writes
    # verify.json to artifacts that live behind the server
    code, output = run_sweeps(cluster, ["verify", str(sweep), "--tracking-uri", uri,
                                        "--sample", "2"], workdir, f"sweeps-verify-{via}")
    assert code == 0, output
    client = mlflow_client(cluster)
    [parent] = [run for run in client.search_runs(
        [client.get_experiment_by_name(name).experiment_id], "tags.`sweep.role` = 'parent'")]
    assert "verify.json" in {item.path for item in client.list_artifacts(parent.info.run_id)}
    # and `sweeps best`: the winner's model is logged through the server, and found there
    code, output = run_sweeps(cluster, ["best", str(sweep), "--tracking-uri", uri], workdir,
                              f"sweeps-best-{via}")
    assert code == 0, output
    model_uri = next(line.split()[-1] for line in output.splitlines()
                     if line.startswith("model: models:/"))
    from mlflow.artifacts import download_artifacts
    # (MLflow resolves models:/ through the default tracking URI, whatever it is given)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cluster.tracking_uri)
    model_dir = Path(download_artifacts(artifact_uri=model_uri, dst_path=str(workdir / via)))
    assert (model_dir / "MLmodel").is_file()
    assert cluster.tracking_uri in output          # the serve hint names the server


def test_successive_halving_through_the_server_checkpoints_and_logs_every_variant_once(
        cluster, workdir):
    """`sweeps run` on a halving file over HTTP: survivors' states travel with their packs
    between rounds, the search's checkpoint and tables go through the server's artifact
    proxy, and every variant ends as one complete child run."""
    from sweeps.spec.sweep import load_sweep
    from tests.sweep_files import write_halving_sweep

    name = "cluster-halving"
    sweep = write_halving_sweep(workdir, name, epochs=4000, min_epochs=250, log_every=250)
    keys = {variant.key for variant in load_sweep(sweep).variants}
    code, output = run_sweeps(cluster, ["run", str(sweep), "--address", cluster.ray.address,
                                        "--tracking-uri", cluster.tracking_uri, "--no-progress"],
                              workdir, "sweeps-run-halving")
    assert code == 0, output
    assert_each_variant_logged_once(cluster, name, keys)
    loaded = _loaded(cluster, name)
    assert set(loaded["status"]) == {"ok", "pruned"}
    assert set(loaded.loc[loaded["status"] == "ok", "stopped_epoch"]) == {4000}
    client = mlflow_client(cluster)
    experiment = client.get_experiment_by_name(name)
    [parent] = client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")
    files = {item.path for item in client.list_artifacts(parent.info.run_id, "halving")}
    assert files == {"halving/checkpoint.npz", "halving/rungs.csv", "halving/search.json"}
    search = json.loads(open(client.download_artifacts(
        parent.info.run_id, "halving/search.json", str(workdir))).read())
    assert search["pick"] in set(loaded["group_key"])
