"""The bulk writer's contract, the guard for every MLflow upgrade: the same variants written
through `MlflowClient` (`SweepTracker`) and in one transaction (`BulkTracker`) read back
identically through every read path users, `sweeps` and the MLflow UI take, on SQLite and on
PostgreSQL. Only run ids and timestamps may differ; they are replaced by placeholders (run ids
by the variant key, so a mix-up still shows) before every field is compared.

The variants include a diverged one (NaN final metrics, NaN points in its histories), one with
+-inf metrics and one with a 7,000-character param (MLflow truncates it to 6,000).
"""

from __future__ import annotations

import dataclasses
import json
import math
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sweeps.records import Pack
from sweeps.spec.config import PACK_SHARED
from sweeps.tracking.bulk import BulkTracker
from sweeps.tracking.pack_writer import Written
from sweeps.tracking.track import SweepTracker
from tests.synthetic import synthetic_result, load_small_sweep

pytestmark = pytest.mark.integration

TIME_FIELDS = {"start_time", "end_time", "timestamp", "startTime", "endTime"}


def contract_batch(sweep) -> list[tuple[Any, Any]]:
    """(variant, result) pairs: ok, diverged, +-inf metrics, a 7,000-character param, and
    one that successive halving pruned at rung 1 (epoch 500: its tags, a shorter history)."""
    v = sweep.variants
    inf = synthetic_result(sweep, v[2])
    inf = dataclasses.replace(inf, metrics={**inf.metrics, "test_loss": math.inf,
                                            "test_mse": -math.inf})
    long = dataclasses.replace(v[3], settings={**v[3].settings, "note": "x" * 7000})
    full = synthetic_result(sweep, v[4])
    early = full.log_epochs < 500
    pruned = dataclasses.replace(full, status="pruned", epoch=500, rung=1,
                                 log_epochs=full.log_epochs[early],
                                 curves={k: c[early] for k, c in full.curves.items()})
    return [(v[0], synthetic_result(sweep, v[0])),
            (v[1], synthetic_result(sweep, v[1], diverged_at=300)),
            (v[2], inf),
            (long, synthetic_result(sweep, v[3])),
            (v[4], pruned)]


def write_both(sweep, uri: str, bulk_writer: str = "driver"):
    """The batch through the client path, then under a second parent in bulk: by the
    driver's `BulkTracker`, or as a Ray worker writes the pack it trained (`PackWriter`)."""
    batch = contract_batch(sweep)
    client_side = SweepTracker(sweep, uri)
    client_side.start()
    client_side.log_variants(batch)
    client_side.finish()
    bulk_side = BulkTracker(sweep, uri, fresh=True)
    bulk_side.start()
    assert bulk_side.bulk, "the bulk writer must write on the tested MLflow and schema"
    if bulk_writer == "worker":
        writer = bulk_side.pack_writer()
        variants = [variant for variant, _ in batch]
        pack = Pack(0, tuple(variants), variants[0].data_key, PACK_SHARED)
        written = writer.write(pack, sweep.datasets[pack.data_key],
                               [result for _, result in batch])
        assert isinstance(written, Written), written
        bulk_side.adopt(written.records)
    else:
        bulk_side.log_variants(batch)
    bulk_side.finish()
    return client_side, bulk_side, [variant.key for variant, _ in batch]


class Side:
    """One writer's runs: its parent and its children by variant key, and how to anonymize."""

    def __init__(self, client, tracker):
        self.client = client
        self.experiment_id = tracker.experiment_id
        self.parent = tracker.parent_run_id
        self.runs = {r.variant_key: r.run_id for r in tracker.records()}
        self.aliases = {run_id: f"<run {key}>" for key, run_id in self.runs.items()}
        self.aliases[self.parent] = "<parent>"

    def normalize(self, value: Any, key: str | None = None) -> Any:
        """Run ids -> aliases, timestamps -> "<time>" (checked to be ms), floats -> repr."""
        if key in TIME_FIELDS and value not in (None, "<time>"):
            ms = value.timestamp() * 1000 if hasattr(value, "timestamp") else int(value)
            assert ms > 1_600_000_000_000, (key, value)     # a real time, in milliseconds
            return "<time>"
        if isinstance(value, dict):
            return {k: self.normalize(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.normalize(v) for v in value]
        if isinstance(value, str):
            for real, alias in self.aliases.items():
                value = value.replace(real, alias)
            return value
        if isinstance(value, (float, np.floating)):
            return repr(float(value))            # NaN equals NaN, -0.0 differs from 0.0
        if isinstance(value, np.integer):
            return int(value)
        return value

    def children_filter(self, extra: str = "") -> str:
        return f"tags.mlflow.parentRunId = '{self.parent}'" + (f" and {extra}" if extra else "")


def assert_same(client_side: Side, bulk_side: Side, read) -> None:
    """read(side) on both sides, normalized, must be equal (and not empty)."""
    got_client = client_side.normalize(read(client_side))
    got_bulk = bulk_side.normalize(read(bulk_side))
    assert got_client, "nothing read: the comparison would prove nothing"
    assert got_bulk == got_client


def http_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


# workers write only to PostgreSQL; SQLite keeps one writer, the driver
@pytest.mark.parametrize("store_uri, bulk_writer", [("sqlite", "driver"), ("postgresql", "driver"),
                                                    ("postgresql", "worker")],
                         indirect=["store_uri"])
def test_client_and_bulk_writes_read_back_identically(store_uri, bulk_writer, serve, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    sweep = load_small_sweep(tmp_path, name="contract", epochs=1000, log_every=100)
    client_tracker, bulk_tracker, keys = write_both(sweep, store_uri, bulk_writer)
    client = MlflowClient(store_uri)
    sides = Side(client, client_tracker), Side(client, bulk_tracker)
    a, b = sides
    assert set(a.runs) == set(b.runs) == set(keys)

    # get_run: info and data, every field.
    assert_same(a, b, lambda s: {k: client.get_run(s.runs[k]).to_dictionary() for k in keys})
    long_param = client.get_run(b.runs[keys[3]]).data.params["note"]
    assert long_param == "x" * 6000
    inf_metrics = client.get_run(b.runs[keys[2]]).data.metrics
    assert inf_metrics["test_loss"] > 1e308 and inf_metrics["test_mse"] < -1e308
    assert math.isnan(client.get_run(b.runs[keys[1]]).data.metrics["test_loss"])

    # search_runs: tag filters, metric filters, ordering over NaN and inf.
    orders = [["metrics.test_loss DESC", "attributes.run_name ASC"],
              ["params.`train.lr` ASC", "metrics.train_loss ASC"],
              ["tags.`sweep.variant_index` DESC"]]
    filters = ["", "tags.`sweep.status` = 'diverged'", "tags.`sweep.status` = 'ok'",
               "metrics.test_loss > 0", "params.note LIKE 'x%'"]
    for order_by in orders:
        for extra in filters:
            assert_same(a, b, lambda s: [run.to_dictionary() for run in client.search_runs(
                [s.experiment_id], s.children_filter(extra), order_by=order_by)])

    # get_metric_history: every point of every key.
    def histories(s: Side) -> dict:
        out = {}
        for key in keys:
            run = client.get_run(s.runs[key])
            for metric in run.data.metrics:
                out[f"{key}/{metric}"] = [m.to_dictionary() for m in
                                          client.get_metric_history(s.runs[key], metric)]
        return out

    assert_same(a, b, histories)

    # Artifacts: the listing and the bytes.
    assert_same(a, b, lambda s: artifact_files(client, s, keys, tmp_path / "dl"))

    # mlflow.search_runs: the DataFrame, row by row and column by column.
    mlflow.set_tracking_uri(store_uri)
    try:
        def frame(s: Side) -> list:
            df = mlflow.search_runs([s.experiment_id], s.children_filter(),
                                    order_by=["attributes.run_name ASC"])
            return [sorted(df.columns)] + df.to_dict("records")

        assert_same(a, b, frame)
    finally:
        mlflow.set_tracking_uri(None)

    # Raw rows of every table a child run has.
    assert_same(a, b, lambda s: raw_rows(client, s))

    # The UI's REST endpoints on a real `mlflow server`.
    url = serve(store_uri)

    def rest_search(s: Side) -> list:
        return http_json(f"{url}/api/2.0/mlflow/runs/search", {
            "experiment_ids": [s.experiment_id], "filter": s.children_filter(),
            "order_by": ["metrics.test_loss DESC", "attributes.run_name ASC"],
            "max_results": 100})["runs"]

    assert_same(a, b, rest_search)

    def rest_histories(s: Side) -> dict:
        out = {}
        ids = [s.runs[k] for k in keys]
        for metric in ("train_loss", "train_mse", "test_loss", "test_mse"):
            query = urllib.parse.urlencode({"run_ids": ids, "metric_key": metric}, doseq=True)
            points = http_json(f"{url}/ajax-api/2.0/mlflow/metrics/"
                               f"get-history-bulk-interval?{query}").get("metrics", [])
            out[f"interval/{metric}"] = sorted(
                (s.normalize(p) for p in points), key=lambda p: (p["run_id"], p["step"]))
            for run_id in ids:
                query = urllib.parse.urlencode({"run_id": run_id, "metric_key": metric})
                out[f"bulk/{metric}/{s.aliases[run_id]}"] = http_json(
                    f"{url}/ajax-api/2.0/mlflow/metrics/get-history-bulk?{query}")
        return out

    assert_same(a, b, rest_histories)


def artifact_files(client, s: Side, keys, directory: Path) -> dict:
    """{variant key: the listing of its run's artifacts, "key/path": each file's text}."""
    out = {}
    for key in keys:
        files = client.list_artifacts(s.runs[key])
        out[key] = [(f.path, f.is_dir, f.file_size) for f in files]
        for f in files:
            local = client.download_artifacts(s.runs[key], f.path, str(directory / s.runs[key]))
            out[f"{key}/{f.path}"] = Path(local).read_bytes().decode()
    return out


def raw_rows(client, s: Side) -> dict:
    """Every row of runs, tags, params, metrics and latest_metrics for the side's children."""
    from sqlalchemy import bindparam, text

    store = client._tracking_client.store
    ids = list(s.runs.values())
    out = {}
    with store.engine.connect() as connection:
        for table in ("runs", "tags", "params", "metrics", "latest_metrics"):
            rows = connection.execute(
                text(f"SELECT * FROM {table} WHERE run_uuid IN :ids").bindparams(
                    bindparam("ids", expanding=True)),
                {"ids": ids}).mappings().all()
            normalized = [s.normalize(dict(row)) for row in rows]
            out[table] = sorted(normalized, key=lambda r: json.dumps(r, sort_keys=True))
    return out


# --------------------------------------------------------------------------------------------
# Configuration runs (`sweeps.tracking.groups`)

def write_configurations_both(sweep, uri: str):
    """The variants and their configuration runs through the client path and under a second
    parent in bulk; each written twice (a resumed sweep replaces its configuration runs)."""
    trackers = []
    for kind, fresh in ((SweepTracker, False), (BulkTracker, True)):
        tracker = kind(sweep, uri, fresh=fresh)
        tracker.start()
        write_configurations_of(tracker, sweep)
        tracker.finish()
        trackers.append(tracker)
    assert trackers[1].bulk
    return trackers


def group_side(client, tracker) -> Side:
    from sweeps.tracking.groups import group_filter

    side = Side(client, tracker)
    side.groups = {run.data.tags["sweep.group_key"]: run.info.run_id for run in client.search_runs(
        [side.experiment_id], group_filter(side.parent))}
    side.aliases.update({run_id: f"<group {key}>" for key, run_id in side.groups.items()})
    return side


def test_configuration_runs_read_back_identically_and_leave_every_variant_reader_alone(
        store_uri, serve, tmp_path):
    from mlflow import MlflowClient

    from sweeps.tracking.groups import group_filter
    from sweeps.tracking.readback import read_sweep

    sweep = load_small_sweep(tmp_path, name="groups", parameters={"train.lr": [0.1, 0.5],
                                                             "seed": [0, 1, 2]},
                        epochs=1000, log_every=100)
    client_tracker, bulk_tracker = write_configurations_both(sweep, store_uri)
    client = MlflowClient(store_uri)
    a, b = group_side(client, client_tracker), group_side(client, bulk_tracker)
    groups = sorted({v.group for v in sweep.variants})
    assert sorted(a.groups) == sorted(b.groups) == groups     # written twice: replaced, once

    # Readers of variants see exactly the variants (groups are not children of the sweep).
    for tracker in (client_tracker, bulk_tracker):
        for reader in ("sql", "client"):
            read = read_sweep(sweep.name, store_uri, parent_run_id=tracker.parent_run_id,
                              histories=True, reader=reader)
            assert sorted(r.variant_key for r in read.records) == \
                sorted(v.key for v in sweep.variants)
    resumed = BulkTracker(sweep, store_uri)                  # resume keeps every variant
    assert resumed.start() == {v.key for v in sweep.variants}
    resumed.finish()

    # What a configuration run holds: the seeds' statistics and mean curve.
    run = client.get_run(b.groups[groups[0]])
    seeds = [r for r in bulk_tracker.records() if r.group_key == groups[0]]
    finals = np.array([r.metrics["train_loss"] for r in seeds if r.status != "diverged"])
    assert run.data.metrics["train_loss"] == pytest.approx(finals.mean(), rel=1e-12)
    assert run.data.metrics["train_loss_std"] == pytest.approx(finals.std(ddof=1), rel=1e-12)
    assert run.data.metrics["n"] == len(finals)
    assert run.data.tags["sweep.role"] == "group" and "mlflow.parentRunId" not in run.data.tags
    assert run.data.params["train.lr"] in ("0.1", "0.5") and "seed" not in run.data.params

    # Client and bulk paths: every field, every history point, search and raw rows alike.
    def runs(s: Side) -> dict:
        return {k: client.get_run(run_id).to_dictionary() for k, run_id in s.groups.items()}

    def histories(s: Side) -> dict:
        return {f"{k}/{m}": [p.to_dictionary() for p in client.get_metric_history(run_id, m)]
                for k, run_id in s.groups.items() for m in client.get_run(run_id).data.metrics}

    def search(s: Side) -> list:
        return [r.to_dictionary() for r in client.search_runs(
            [s.experiment_id], group_filter(s.parent), order_by=["metrics.train_loss ASC"])]

    for read in (runs, histories, search):
        assert_same(a, b, read)
    assert_same(a, b, lambda s: raw_rows(client, _as_side(s, s.groups)))

    # Through a server: what the UI's search returns, and configuration runs written
    # through it (into the same database: read back here).
    url = serve(store_uri)
    assert_same(a, b, lambda s: http_json(f"{url}/api/2.0/mlflow/runs/search", {
        "experiment_ids": [s.experiment_id], "filter": group_filter(s.parent),
        "order_by": ["metrics.train_loss ASC"], "max_results": 100})["runs"])
    served = SweepTracker(sweep, url, fresh=True)
    served.start()
    write_configurations_of(served, sweep)
    served.finish()
    c = group_side(client, served)
    assert_same(c, b, lambda s: {k: client.get_run(run_id).to_dictionary()["data"]
                                 for k, run_id in s.groups.items()})
    assert_same(c, b, histories)


def write_configurations_of(tracker, sweep) -> None:
    """The sweep's variants (the second diverged) and their configuration runs, twice."""
    from sweeps.report import results, ties
    from sweeps.report.outputs import write_configurations

    tracker.log_variants([(v, synthetic_result(sweep, v, diverged_at=300 if i == 1 else None))
                          for i, v in enumerate(sweep.variants)])
    frame = results.frame_from_records(tracker.records())
    summary = ties.mark_ties(frame, results.summarize(frame))
    for _ in range(2):
        write_configurations(tracker, summary, tracker.records())


def _as_side(side: Side, runs: dict) -> Side:
    """A copy of `side` whose runs are `runs` (for `raw_rows`)."""
    copy = Side.__new__(Side)
    copy.__dict__.update(side.__dict__, runs=runs)
    return copy
