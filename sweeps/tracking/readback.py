"""Reading a sweep back from MLflow alone: its FINISHED child runs as typed `RunRecord`s.

Two readers give the same records (`tests/tracking/test_readers.py` holds them to it):

- ``"sql"``: database-backed stores (``sqlite:///``, ``postgresql://``, ...) are read through
  MLflow's own store session in a few set-based queries (`sweeps.tracking.sqlread`);
- ``"client"``: anything else (``http(s)://`` tracking servers) through `MlflowClient`:
  paged ``search_runs`` and bulk metric-history requests.

The parent-run lookup (`find_parent`) is shared with the writer, so both agree on which sweep
run a sweep file continues. Everything here decodes MLflow's strings once (`run_records`); the
callers (`sweeps.report.results`, `sweeps.report.plots` through `sweeps.run`) never see MLflow.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from sweeps.spec.config import SETTING_PATHS, TEXT_SETTINGS
from sweeps.tracking.contract import (CONFIG_HASH, PARENT_ID, PREDICTIONS_FILE, RANKING_METRIC,
                                      ROLE, SWEPT, VARIANT_KEY, FINISHED_VARIANTS, RunRole,
                                      decode_metric, decode_param, sweep_kinds)
from sweeps.tracking.run_records import (Predictions, RunRecord, by_index, decode_record,
                                         newest_per_variant)
from sweeps.tracking.store import (artifact_repository, chunks, default_tracking_uri, make_client,
                                   search_all)
from sweeps.vocabulary import RunState

READERS = ("auto", "sql", "client")


@dataclass(frozen=True)
class SweepRead:
    """One sweep run read back: its parent run id, swept kinds and children (sweep order),
    the parent's params (``env.*``: the machine it ran on) and artifact location, and the
    metric to rank on by default (the sweep file's `Sweep.ranking_metric` when given, else
    the parent's ``sweep.ranking_metric`` tag; None: neither says, the default ranking)."""

    parent_run_id: str
    swept: Mapping[str, str]
    records: list[RunRecord]
    parent_params: Mapping[str, str] = field(default_factory=dict)
    parent_artifact_uri: str = ""
    ranking_metric: str | None = None


def experiment_name(experiment: str | None, sweep: Any) -> str:
    """The MLflow experiment of a sweep run: `experiment`, else the sweep's name."""
    if experiment is None:
        if sweep is None:
            raise ValueError("give an experiment name or a sweep")
        return sweep.name
    if not isinstance(experiment, str):
        raise TypeError(f"experiment must be the sweep's name (a str), not "
                        f"{type(experiment).__name__}")
    return experiment


# --------------------------------------------------------------------------------------------
# The parent run

def find_parent(client, experiment_id: str, config_hash: str | None = None):
    """The newest active parent run in the experiment (with that config hash), else None."""
    filter_string = f"tags.`{ROLE}` = '{RunRole.PARENT}'"
    if config_hash is not None:
        filter_string += f" and tags.`{CONFIG_HASH}` = '{config_hash}'"
    runs = search_all(client, [experiment_id], filter_string,
                      ["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def locate_parent(client, experiment: str, config_hash: str | None = None,
                  parent_run_id: str | None = None):
    """(experiment id, parent run): the given run, else `find_parent`; LookupError if none."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment named {experiment!r}")
    if parent_run_id is not None:
        return exp.experiment_id, client.get_run(parent_run_id)
    parent = find_parent(client, exp.experiment_id, config_hash)
    if parent is None:
        what = f" with config hash {config_hash}" if config_hash else ""
        raise LookupError(f"no sweep run{what} in MLflow experiment {experiment!r}")
    return exp.experiment_id, parent


# --------------------------------------------------------------------------------------------
# Children: what a writer keeps when it resumes (SQL or client), and the client reader's parts

def split_children(runs: Sequence[Any]) -> tuple[list, list]:
    """(newest FINISHED child per variant key, every other child): the others are deleted."""
    keep: dict[str, Any] = {}
    drop = []
    for run in sorted(runs, key=lambda r: (r.info.start_time or 0), reverse=True):
        key = run.data.tags.get(VARIANT_KEY)
        if run.info.status == RunState.FINISHED and key and key not in keep:
            keep[key] = run
        else:
            drop.append(run)
    return list(keep.values()), drop


def finished_children(client, experiment_id: str, parent_run_id: str, swept: Mapping[str, str],
                      keys: Collection[str] | None = None) -> tuple[list[RunRecord], list[str]]:
    """What a writer keeps of the parent's children (of the variants `keys` only, when given):
    (records, histories attached, of the newest FINISHED child per variant; the run ids of
    every other child, which the writer deletes).

    Database stores are read in a few set-based queries (`sweeps.tracking.sqlread`), others
    through the client (paged searches of whole runs): resuming 4,800 variants took minutes.
    """
    from sweeps.tracking.sqlread import child_run_ids, is_sql_store, read_children, read_histories

    store = client._tracking_client.store
    if is_sql_store(store):
        keep = newest_per_variant(read_children(store, experiment_id, parent_run_id, swept, keys))
        kept = {record.run_id for record in keep}
        drop = [run_id for run_id in child_run_ids(store, experiment_id, parent_run_id, keys)
                if run_id not in kept]
        return read_histories(store, experiment_id, parent_run_id, keep, keys), drop
    filter_string = f"tags.`{PARENT_ID}` = '{parent_run_id}'"
    if keys is not None and len(keys) == 1:
        filter_string += f" and tags.`{VARIANT_KEY}` = '{next(iter(keys))}'"
    runs = search_all(client, [experiment_id], filter_string)
    if keys is not None:                                     # (tags take no IN filter)
        runs = [run for run in runs if run.data.tags.get(VARIANT_KEY) in keys]
    keep, drop = split_children(runs)
    return (attach_histories(client, [run_record(run, swept) for run in keep]),
            [run.info.run_id for run in drop])


def run_record(run: Any, swept: Mapping[str, str]) -> RunRecord:
    """A child run (an MLflow Run entity) as a record, history not yet attached."""
    return decode_record(run_id=run.info.run_id, name=run.info.run_name,
                         start_time=run.info.start_time, tags=run.data.tags,
                         params=run.data.params, metrics=run.data.metrics, swept=swept)


def attach_histories(client, records: Sequence[RunRecord]) -> list[RunRecord]:
    """The records with every curve's history, fetched in bulk per metric key."""
    by_key: dict[str, list[str]] = {}
    for record in records:
        for key in record.curves:
            by_key.setdefault(key, []).append(record.run_id)
    found: dict[str, dict] = {record.run_id: {} for record in records}
    for key, run_ids in by_key.items():
        for run_id, curve in metric_histories(client, run_ids, key).items():
            found[run_id][key] = curve
    return [record.with_history({k: found[record.run_id][k] for k in record.curves})
            for record in records]


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


# --------------------------------------------------------------------------------------------
# A whole sweep

def read_sweep(experiment: str, tracking_uri: str | None = None, sweep: Any = None, *,
               parent_run_id: str | None = None, histories: bool = False,
               reader: str = "auto") -> SweepRead:
    """The FINISHED child runs of one sweep run as records, read from MLflow alone.

    The sweep run is `parent_run_id` if given, else the newest parent run in the experiment
    (with `sweep`'s config hash when a sweep is given). Of several FINISHED children of one
    variant (a resumed sweep) the newest counts.

    histories : attach every curve's history to the records.
    reader : "sql" (database stores only), "client", or "auto" (sql where it can).
    """
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}, not {reader!r}")
    from sweeps.tracking.sqlread import is_sql_store, read_children, read_histories

    tracking_uri = tracking_uri or default_tracking_uri()
    client = make_client(tracking_uri, create=False)
    store = client._tracking_client.store
    if reader == "sql" and not is_sql_store(store):
        raise ValueError(f"the sql reader needs a database store, not {tracking_uri}")
    use_sql = reader == "sql" or (reader == "auto" and is_sql_store(store))
    experiment_id, parent = locate_parent(client, experiment, getattr(sweep, "config_hash", None),
                                          parent_run_id)
    swept = json.loads(parent.data.tags.get(SWEPT, "{}") or "{}")
    if not swept and sweep is not None:
        swept = sweep_kinds(sweep)
    if use_sql:
        records = newest_per_variant(read_children(store, experiment_id, parent.info.run_id,
                                                   swept))
        if histories:
            records = read_histories(store, experiment_id, parent.info.run_id, records)
    else:
        runs = search_all(client, [experiment_id],
                          f"tags.`{PARENT_ID}` = '{parent.info.run_id}' "
                          f"and attributes.status = '{RunState.FINISHED}'")
        keep, _ = split_children(runs)
        records = [run_record(run, swept) for run in keep]
        if histories:
            records = attach_histories(client, records)
    ranking = getattr(sweep, "ranking_metric", None) or parent.data.tags.get(RANKING_METRIC)
    return SweepRead(parent_run_id=parent.info.run_id, swept=swept, records=by_index(records),
                     parent_params=dict(parent.data.params),
                     parent_artifact_uri=parent.info.artifact_uri, ranking_metric=ranking or None)


def fetch_settings(tracking_uri: str | None, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{run_id: the settings its params hold, decoded} for the given child runs: what
    re-training a variant needs (`sweeps.execution.retrain`)."""
    return {run_id: decode_settings(params)
            for run_id, params in fetch_params(tracking_uri, run_ids).items()}


def decode_settings(params: Mapping[str, str]) -> dict[str, Any]:
    """A child run's params as setting values (dotted path -> value, `contract.encode_param`
    undone); params that are not settings (``env.*``) left out."""
    return {path: decode_param(params[path], "str" if path in TEXT_SETTINGS else "json")
            for path in SETTING_PATHS if path in params}


def fetch_tags(tracking_uri: str | None, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """{run_id: every tag} for the given runs (what `sweeps verify` reports of provenance)."""
    client = make_client(tracking_uri or default_tracking_uri(), create=False)
    return {run_id: dict(client.get_run(run_id).data.tags) for run_id in run_ids}


def fetch_params(tracking_uri: str | None, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """{run_id: every param as logged} for the given runs: what re-training a variant needs
    (records hold only the swept settings, typed)."""
    client = make_client(tracking_uri or default_tracking_uri(), create=False)
    return {run_id: dict(client.get_run(run_id).data.params) for run_id in run_ids}


def earlier_variants(tracking_uri: str | None, experiment: str, parent_run_id: str | None,
                     kinds: Mapping[str, str]) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """(settings, final metrics) of every FINISHED variant run in the experiment outside the
    sweep run `parent_run_id`: what a model-based search warm-starts from. settings: every
    setting param decoded with `kinds` ({dotted path: value kind}; others left out)."""
    client = make_client(tracking_uri or default_tracking_uri(), create=False)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = search_all(client, [found.experiment_id], FINISHED_VARIANTS)
    return [({path: decode_param(text, kinds[path])
              for path, text in run.data.params.items() if path in kinds},
             dict(run.data.metrics))
            for run in runs if run.data.tags.get(PARENT_ID) != parent_run_id]


# --------------------------------------------------------------------------------------------
# Predictions

def fetch_predictions(tracking_uri: str | None, run_ids: Sequence[str]
                      ) -> dict[str, Predictions]:
    """{run_id: predictions.csv as arrays} for the given child runs (missing ones left out).

    Each file comes from its run's artifact repository as the writers reach it
    (`store.artifact_repository`): artifacts behind a server's proxy (``mlflow-artifacts:``)
    of runs in its database are read through $SWEEPS_ARTIFACTS_SERVER (a RuntimeError says
    so when it is not set), not through the database URI.
    """
    if not run_ids:
        return {}
    tracking_uri = tracking_uri or default_tracking_uri()
    client = make_client(tracking_uri, create=False)
    out = {}
    with tempfile.TemporaryDirectory(prefix="sweeps-pred-") as tmp:
        for run_id in run_ids:
            try:
                artifact_uri = client.get_run(run_id).info.artifact_uri
            except Exception:  # noqa: BLE001 - no such run
                continue
            repository = artifact_repository(artifact_uri, tracking_uri)
            try:
                path = repository.download_artifacts(PREDICTIONS_FILE, tmp)
            except Exception:  # noqa: BLE001 - a run without predictions
                continue
            out[run_id] = parse_predictions(Path(path).read_text(encoding="utf-8"))
            os.remove(path)
    return out


def parse_predictions(text: str) -> Predictions:
    """predictions.csv (as `contract.write_csv` writes it) as arrays."""
    header, _, body = text.partition("\n")
    columns = tuple(next(csv.reader([header])))
    values = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
    return Predictions(columns=columns, values=values.reshape(-1, len(columns)))

