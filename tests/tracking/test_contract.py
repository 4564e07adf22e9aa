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
from tests.synthetic import synthetic_result, small_sweep

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


@pytest.mark.parametrize("bulk_writer", ["driver", "worker"])
def test_client_and_bulk_writes_read_back_identically(store_uri, bulk_writer, serve, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    if bulk_writer == "worker" and not store_uri.startswith("postgresql"):
        pytest.skip("workers write only to PostgreSQL; SQLite keeps one writer, the driver")
    sweep = small_sweep(tmp_path, name="contract", epochs=1000, log_every=100)
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
    def artifacts(s: Side) -> dict:
        out = {}
        for key in keys:
            files = client.list_artifacts(s.runs[key])
            out[key] = [(f.path, f.is_dir, f.file_size) for f in files]
            for f in files:
                local = client.download_artifacts(s.runs[key], f.path,
                                                  str(tmp_path / "dl" / s.runs[key]))
                out[f"{key}/{f.path}"] = Path(local).read_bytes().decode()
        return out

    assert_same(a, b, artifacts)

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
