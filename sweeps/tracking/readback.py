"""Reading a sweep back from MLflow alone: its FINISHED child runs as records.

A record is what a child run holds, as plain Python (see `sweeps.tracking.layout`); the tracker builds
the same records while it logs, and `sweeps.results` turns either into the same tables.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sweeps.tracking.layout import (CONFIG_HASH, PARENT_ID, PREDICTIONS_FILE, ROLE, SWEPT, VARIANT_INDEX,
                           VARIANT_KEY, curve_keys, decode_metric, sweep_kinds)
from sweeps.tracking.store import chunks, default_tracking_uri, make_client, search_all


def split_children(runs: Sequence[Any]) -> tuple[list, list]:
    """(newest FINISHED child per variant key, every other child): the others are deleted."""
    keep: dict[str, Any] = {}
    drop = []
    for run in sorted(runs, key=lambda r: (r.info.start_time or 0), reverse=True):
        key = run.data.tags.get(VARIANT_KEY)
        if run.info.status == "FINISHED" and key and key not in keep:
            keep[key] = run
        else:
            drop.append(run)
    return list(keep.values()), drop


def run_record(run: Any, kinds: Mapping[str, str]) -> dict:
    """A child run as a record (histories not yet attached)."""
    data = run.data
    return {
        "run_id": run.info.run_id, "name": run.info.run_name, "start_time": run.info.start_time,
        "tags": {k: v for k, v in data.tags.items() if k.startswith("sweep.")},
        "params": dict(data.params),
        "metrics": {k: decode_metric(v) for k, v in data.metrics.items()},
        "history": None, "swept": kinds, "predictions": None,
    }


def attach_histories(client, records: Sequence[dict]) -> None:
    """Fill record["history"] for every curve key, fetched in bulk."""
    by_key: dict[str, list[str]] = {}
    for record in records:
        record["history"] = {}
        for key in curve_keys(record["tags"]):
            by_key.setdefault(key, []).append(record["run_id"])
    index = {r["run_id"]: r for r in records}
    for key, run_ids in by_key.items():
        for run_id, (steps, values) in metric_histories(client, run_ids, key).items():
            index[run_id]["history"][key] = (steps, values)


def metric_histories(client, run_ids: Sequence[str], key: str) -> dict[str, tuple]:
    """{run_id: (steps, values)} of one metric key for many runs, in as few requests as can be.

    SQL stores: one query per 500 runs. Tracking servers: the bulk endpoint the UI uses
    (100 runs per request), falling back to one request per run when it is unavailable.
    """
    store = client._tracking_client.store
    points: dict[str, list] = {r: [] for r in run_ids}
    if hasattr(store, "get_metric_history_bulk"):
        for chunk in chunks(list(run_ids), 500):
            for m in store.get_metric_history_bulk(chunk, key, max_results=2**62):
                points[m.run_id].append((m.step, m.timestamp, m.value))
    else:
        rest = _rest_bulk(store, list(run_ids), key, points)
        if rest:
            _per_run(client, rest, key, points)
    out = {}
    for run_id, rows in points.items():
        rows.sort()
        steps = np.array([r[0] for r in rows], dtype=np.int64)
        values = np.array([decode_metric(r[2]) for r in rows], dtype=np.float64)
        out[run_id] = (steps, values)
    return out


def _rest_bulk(store, run_ids: list[str], key: str, points: dict) -> list[str]:
    """Fill points through ajax-api .../metrics/get-history-bulk; return runs it could not."""
    try:
        from mlflow.utils.rest_utils import http_request
        get_creds = store.get_host_creds
    except (ImportError, AttributeError):
        return run_ids
    limit = 25000
    left: list[str] = []
    for chunk in chunks(run_ids, 100):
        try:
            response = http_request(get_creds(), "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
                                    "GET", params={"run_id": chunk, "metric_key": key,
                                                   "max_results": limit})
            if response.status_code != 200:
                left.extend(chunk)
                continue
            rows = json.loads(response.text).get("metrics", [])
        except Exception:  # noqa: BLE001 - older servers: fall back
            left.extend(chunk)
            continue
        if len(rows) >= limit:       # truncated: fetch these one by one
            left.extend(chunk)
            continue
        for m in rows:
            value = m.get("value", math.nan)
            points[m["run_id"]].append((int(m.get("step", 0)), int(m.get("timestamp", 0)),
                                        float(value) if value is not None else math.nan))
    return left


def _per_run(client, run_ids: list[str], key: str, points: dict) -> None:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=8) as pool:
        for run_id, history in zip(run_ids, pool.map(
                lambda r: client.get_metric_history(r, key), run_ids)):
            points[run_id].extend((m.step, m.timestamp, m.value) for m in history)


def find_parent(client, experiment: str, config_hash: str | None = None,
                parent_run_id: str | None = None):
    """(experiment id, parent run): the given one, else the newest (with that config hash)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment named {experiment!r}")
    if parent_run_id is not None:
        return exp.experiment_id, client.get_run(parent_run_id)
    filter_string = f"tags.`{ROLE}` = 'parent'"
    if config_hash is not None:
        filter_string += f" and tags.`{CONFIG_HASH}` = '{config_hash}'"
    runs = search_all(client, [exp.experiment_id], filter_string,
                      ["attributes.start_time DESC"], max_results=1)
    if not runs:
        what = f" with config hash {config_hash}" if config_hash else ""
        raise LookupError(f"no sweep run{what} in MLflow experiment {experiment!r}")
    return exp.experiment_id, runs[0]


def fetch_runs(experiment: str, tracking_uri: str | None = None, sweep: Any = None, *,
               parent_run_id: str | None = None, histories: bool = False) -> list[dict]:
    """Records of the FINISHED child runs of one sweep run, read from MLflow alone.

    The sweep run is `parent_run_id` if given, else the newest parent run in the experiment
    (with `sweep`'s config hash when a sweep is given).
    """
    client = make_client(tracking_uri or default_tracking_uri(), create=False)
    config_hash = getattr(sweep, "config_hash", None)
    experiment_id, parent = find_parent(client, experiment, config_hash, parent_run_id)
    kinds = json.loads(parent.data.tags.get(SWEPT, "{}") or "{}")
    if not kinds and sweep is not None:
        kinds = sweep_kinds(sweep)
    runs = search_all(client, [experiment_id],
                      f"tags.`{PARENT_ID}` = '{parent.info.run_id}' "
                      f"and attributes.status = 'FINISHED'")
    keep, _ = split_children(runs)
    records = [run_record(run, kinds) for run in keep]
    if histories:
        attach_histories(client, records)
    return sorted(records, key=lambda r: int(r["tags"].get(VARIANT_INDEX, 0)))


def fetch_predictions(tracking_uri: str | None, run_ids: Sequence[str]) -> dict[str, str]:
    """{run_id: text of predictions.csv} for the given child runs (missing ones left out)."""
    client = make_client(tracking_uri or default_tracking_uri(), create=False)
    out = {}
    with tempfile.TemporaryDirectory(prefix="sweeps-pred-") as tmp:
        for run_id in run_ids:
            try:
                path = client.download_artifacts(run_id, PREDICTIONS_FILE, tmp)
            except Exception:  # noqa: BLE001 - a run without predictions
                continue
            out[run_id] = Path(path).read_text(encoding="utf-8")
            os.remove(path)
    return out
