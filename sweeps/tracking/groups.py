"""Configuration runs: one MLflow run per group of variants that differ only by seed.

A configuration run carries what its seeds say together (built by
`sweeps.report.configurations`): each final metric's mean under the metric's own key (so
one runs-table column shows seeds and configurations alike), ``<metric>_std``,
``<metric>_sem``, ``n``, ``diverged``, ``rank``, ``p_vs_best``; every curve's mean over
the seeds as the history of its key and the seeds' spread as the history of
``<key>_std``; the group's settings as params. Tags: ``sweep.role=group``,
``sweep.group_key``, ``sweep.sweep_run`` (the sweep's parent run id), ``sweep.rank``,
``sweep.tied`` (best | true | false, absent where untested), ``sweep.curves``.

The rule: a configuration run is NOT a child of the sweep run (no ``mlflow.parentRunId``),
so every reader of variants (`readback`, `sqlread`, resume, halving, `verify`, `best`) finds
exactly the variants it found before, on stores written before and after this. They are
derived data: each sweep run (first or resumed) replaces its parent's configuration runs at
its end (old ones deleted, new ones written: one transaction each on a database store).

Why not nest the seeds under their configuration: MLflow 3.17's runs table nests only when
sorted by start time with no filter, and only the runs of the loaded page of 100
(`sweeps.tracking.ui`): sorted by a metric it shows a flat list either way. The seeds of a
configuration are one link away instead (`ui.seeds_url`, in the run's description).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from sweeps.tracking.contract import MAX_METRICS, MAX_PARAMS_TAGS, ROLE, SWEEP_RUN, RunRole
from sweeps.tracking.store import chunks
from sweeps.vocabulary import RunState

if TYPE_CHECKING:
    from sweeps.tracking.tracker import Tracker


@dataclass
class GroupRun:
    """One configuration run, as the writers write it (the fields `bulk.batch_rows` reads).

    points : (key, value, step) of every metric point, histories in step order.
    """

    group_key: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    points: list[tuple[str, float, int]]


def group_filter(sweep_run_id: str) -> str:
    """The search filter of one sweep run's configuration runs."""
    return f"tags.`{ROLE}` = '{RunRole.GROUP}' and tags.`{SWEEP_RUN}` = '{sweep_run_id}'"


def write_in_bulk(tracker: Tracker, runs: Sequence[GroupRun],
                  experiment_tags: Mapping[str, str]) -> list[str]:
    """Replace the parent's configuration runs on a database store: the old ones marked
    deleted as `MlflowClient.delete_run` marks them, the new ones inserted as the bulk
    writer inserts children, the experiment tags set as ``set_experiment_tag`` sets them;
    one transaction. Their run ids."""
    from mlflow.entities import LifecycleStage
    from mlflow.store.tracking.dbmodels.models import SqlExperimentTag, SqlRun, SqlTag
    from mlflow.utils.validation import _validate_experiment_tag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.uri import append_to_uri_path
    from sqlalchemy import delete, select, update

    from sweeps.tracking.bulk import insert_rows
    from sweeps.tracking.rows import batch_rows

    for key, value in experiment_tags.items():
        _validate_experiment_tag(key, value)
    store = tracker.store
    location = store.get_experiment(tracker.experiment_id).artifact_location
    run_ids = [uuid.uuid4().hex for _ in runs]
    artifact_uris = [append_to_uri_path(location, run_id, SqlAlchemyStore.ARTIFACTS_FOLDER_NAME)
                     for run_id in run_ids]
    now = int(time.time() * 1000)
    rows = batch_rows(tracker.experiment_id, runs, run_ids, artifact_uris, now,
                      metric_time=now, end_time=now)
    mine = select(SqlTag.run_uuid).where(SqlTag.key == SWEEP_RUN,
                                         SqlTag.value == tracker.parent_run_id)

    def replace() -> None:
        with store.ManagedSessionMaker(read_only=False) as session:   # commits on exit
            session.execute(update(SqlRun).where(
                SqlRun.run_uuid.in_(mine), SqlRun.lifecycle_stage == LifecycleStage.ACTIVE)
                .values(lifecycle_stage=LifecycleStage.DELETED, deleted_time=now))
            insert_rows(session, rows)
            experiment = int(tracker.experiment_id)
            session.execute(delete(SqlExperimentTag).where(
                SqlExperimentTag.experiment_id == experiment,
                SqlExperimentTag.key.in_(list(experiment_tags))))
            if experiment_tags:
                session.execute(SqlExperimentTag.__table__.insert(), [
                    dict(experiment_id=experiment, key=key, value=value)
                    for key, value in experiment_tags.items()])

    tracker.with_retries("write_groups", replace)
    return run_ids


def write_through_client(tracker: Tracker, runs: Sequence[GroupRun],
                         experiment_tags: Mapping[str, str]) -> list[str]:
    """Replace the parent's configuration runs through `MlflowClient` (tracking servers):
    old ones deleted, each new one created, logged and set FINISHED, the experiment tags
    set, by the tracker's writer threads. Their run ids. (A retried run may leave a RUNNING
    one behind when the server lost an answer: the next write of the parent's configuration
    runs deletes it with the rest.)"""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow.entities import Metric, Param

    from sweeps.tracking.store import search_all

    client = tracker.client
    old = tracker.with_retries("write_groups", lambda: search_all(
        client, [tracker.experiment_id], group_filter(tracker.parent_run_id)))

    def write(run: GroupRun) -> str:
        info = client.create_run(tracker.experiment_id, run_name=run.name, tags=run.tags).info
        now = int(time.time() * 1000)
        for chunk in chunks([Param(k, v) for k, v in run.params.items()], MAX_PARAMS_TAGS):
            client.log_batch(info.run_id, params=chunk)
        metrics = [Metric(key, value, now, step) for key, value, step in run.points]
        for chunk in chunks(metrics, MAX_METRICS):
            client.log_batch(info.run_id, metrics=chunk)
        client.set_terminated(info.run_id, RunState.FINISHED)
        return info.run_id

    with ThreadPoolExecutor(max(1, tracker.writers), thread_name_prefix="sweeps-groups") as pool:
        for _ in pool.map(lambda run: tracker.with_retries(
                "delete_group", lambda: client.delete_run(run.info.run_id)), old):
            pass
        for _ in pool.map(lambda item: tracker.with_retries("set_experiment_tag", lambda: (
                client.set_experiment_tag(tracker.experiment_id, *item))),
                experiment_tags.items()):
            pass
        return list(pool.map(lambda run: tracker.with_retries("write_group", lambda: write(run)),
                             runs))
