"""Writing a sweep to MLflow through `MlflowClient`, resumably (`SweepTracker`), in the layout
of `sweeps.tracking.contract`: the path for tracking servers, and the parent run's writer for
every store.

Writes per child: one ``create_run`` (name and every tag), one ``log_batch`` (metrics and
params, split only beyond MLflow's 1000-entity limit), one artifact copy, one
``set_terminated``. No per-run ``get_run``. Writes are retried after transient errors without
ever leaving two children per variant; `writers` threads write a batch's children at once.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from sweeps import stopping
from sweeps.vocabulary import ENDED, RunState
from sweeps.tracking.child import ChildRun, child_run
from sweeps.tracking.contract import (CONFIG_HASH, MAX_ENTITIES, MAX_METRICS, MAX_PARAMS_TAGS,
                                      NAME, PARENT_ID, RANKING_METRIC, ROLE, SWEPT, RunRole,
                                      shared_settings, sweep_kinds)
from sweeps.tracking.readback import fetch_predictions, find_parent, finished_children
from sweeps.tracking.run_records import Predictions, RunRecord, by_index
from sweeps.tracking.store import (artifact_repository, check_tracking_server, chunks,
                                   default_tracking_uri, ensure_experiment, is_transient,
                                   make_client, search_all, write_artifact)

log = logging.getLogger(__name__)


class SweepTracker:
    """Writes one sweep to MLflow, resumably.

    Usage::

        tracker = SweepTracker(sweep)              # $MLFLOW_TRACKING_URI or sqlite:///mlflow.db
        done = tracker.start()                     # keys of variants already FINISHED
        run_ids = tracker.log_variants([(variant, result), ...])   # per finished pack
        tracker.finish()                           # FINISHED | KILLED | FAILED

    Parameters
    ----------
    sweep : the loaded sweep (name, config_hash, text, path, variants, swept, datasets).
    tracking_uri : MLflow tracking URI; default `default_tracking_uri()`.
    fresh : start a new parent run even if one with the same config hash exists.
    retries : how often a write is retried after a transient error (server restart, busy
        database), with exponential backoff from `backoff` seconds. A child is re-created only
        after looking it up by variant key, so a retry never leaves two children per variant.
    histories : the curve keys logged as metric histories (default: every curve a result
        has). Each history point costs MLflow's SQL store about 0.1 ms of CPU; curves left
        out still get their final value.
    writers : threads writing the children of one `log_variants` batch (a tracking server
        serves them in parallel; one for a database written through the client).
    """

    # Whether `log_variants` writes a batch in one transaction (`BulkTracker` on a store it
    # was tested with, known after `start`); here every child goes through the client.
    bulk: bool = False

    def __init__(self, sweep: Any, tracking_uri: str | None = None, fresh: bool = False, *,
                 retries: int = 4, backoff: float = 1.0,
                 histories: Collection[str] | None = None, writers: int = 1):
        self.sweep = sweep
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.fresh = fresh
        self.retries = retries
        self.backoff = backoff
        self.histories = None if histories is None else frozenset(histories)
        self.parent_run_id: str | None = None
        self._new_parent: str | None = None
        self._parent_artifacts: str | None = None      # the parent run's artifact URI
        self.experiment_id: str | None = None
        self.kinds = sweep_kinds(sweep)
        self._records: dict[str, RunRecord] = {}     # variant key -> record
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._client = None
        self._sleep: Callable[[float], None] = time.sleep
        self.writers = writers
        self._pool: ThreadPoolExecutor | None = None

    # -- MLflow plumbing -------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.tracking_uri)
        return self._client

    @property
    def store(self):
        """MLflow's tracking store behind `client` (a ``SqlAlchemyStore`` on a database URI,
        a REST store on a server): what the bulk writer and `sweeps.tracking.reuse` write."""
        return self.client._tracking_client.store

    def with_retries(self, what: str, fn: Callable[[], Any],
                     on_retry: Callable[[], Any] | None = None) -> Any:
        """What fn() returns, retried `retries` times after transient errors (`what` names it
        in the warning); before each new attempt on_retry() runs, and when it returns
        something other than None that is returned instead (the write is already done).

        Each attempt runs with stop signals held (`sweeps.stopping`): Ctrl-C never cuts a
        write in two, and a signal that arrived during it is raised right after. Every write
        of the tracking package goes through here (`groups`, `reuse`).
        """
        for attempt in range(self.retries + 1):
            try:
                with stopping.held():
                    if attempt and on_retry is not None:
                        result = on_retry()
                        if result is not None:
                            return result
                    return fn()
            except Exception as error:  # noqa: BLE001 - classified below
                if attempt == self.retries or not is_transient(error):
                    raise
                delay = self.backoff * 2 ** attempt
                log.warning("MLflow %s failed (%s); retrying in %.1f s", what, error, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _search(self, filter_string: str, order_by: Sequence[str] | None = None,
                max_results: int | None = None) -> list:
        """All active runs of the experiment matching the filter, every page."""
        return search_all(self.client, [self.experiment_id], filter_string, order_by, max_results)

    # -- parent ----------------------------------------------------------------------------

    def start(self) -> set[str]:
        """Create or resume the parent run; return the keys of variants already FINISHED.

        Resuming (same config hash, `fresh` False): the newest active parent with this
        sweep's ``sweep.config_hash`` is reopened; its FINISHED children count as done (their
        records are loaded, so `records()` covers the whole sweep); unfinished children and
        duplicates are deleted.
        """
        check_tracking_server(self.tracking_uri)
        return self.with_retries("start", self._start)

    def _start(self) -> set[str]:
        self.experiment_id = ensure_experiment(self.client, self.sweep.name, self.tracking_uri)
        self._records = {}
        if self._new_parent is None:          # (a retry after creating it reuses it)
            parent = None if self.fresh else find_parent(self.client, self.experiment_id,
                                                         self.sweep.config_hash)
            if parent is not None:
                return self._resume(parent)
            info = self.client.create_run(
                self.experiment_id, run_name=self.sweep.name,
                tags={ROLE: RunRole.PARENT, NAME: self.sweep.name,
                      CONFIG_HASH: self.sweep.config_hash, SWEPT: json.dumps(self.kinds),
                      **self._ranking_tag()}).info
            self._new_parent, self._parent_artifacts = info.run_id, info.artifact_uri
        self.parent_run_id = self._new_parent
        self._fill_parent(self.parent_run_id)
        return set()

    def _ranking_tag(self) -> dict[str, str]:
        """{RANKING_METRIC: the metric the file searched on}, or {} when it names none."""
        metric = getattr(self.sweep, "ranking_metric", None)
        return {RANKING_METRIC: metric} if metric else {}

    def _resume(self, parent) -> set[str]:
        self.parent_run_id = parent.info.run_id
        self._parent_artifacts = parent.info.artifact_uri
        if parent.info.status != RunState.RUNNING:
            self.client.update_run(self.parent_run_id, status=RunState.RUNNING)
        for key, value in self._ranking_tag().items():     # a parent from before the tag
            if parent.data.tags.get(key) != value:
                self.client.set_tag(self.parent_run_id, key, value)
        records = self.keep_finished_children()
        wanted = {v.key for v in self.sweep.variants}
        # a method that chooses its variants while running (tpe) knows them only from here
        fixed = getattr(self.sweep, "variants_fixed", True)
        self._records = {r.variant_key: r for r in records if not fixed or r.variant_key in wanted}
        return set(self._records)

    def keep_finished_children(self, keys: Collection[str] | None = None) -> list[RunRecord]:
        """The records of the parent's newest FINISHED child of each variant (of the variants
        `keys` only, when given), after deleting their other children (unfinished ones,
        older duplicates): what a resume and a retry after a lost answer go on from
        (`readback.finished_children` reads them). Started tracker; not retried here (the
        callers run inside `with_retries`)."""
        records, drop = finished_children(self.client, self.experiment_id, self.parent_run_id,
                                          self.kinds, keys)
        for run_id in drop:
            self.client.delete_run(run_id)
        if drop:
            log.info("deleted %d unfinished or duplicate child runs", len(drop))
        return records

    def _fill_parent(self, run_id: str) -> None:
        """Shared settings and the machine (``env.*``) as params, the sweep file as given
        (idempotent)."""
        from mlflow.entities import Param

        from sweeps.execution.machine import machine_params
        settings = {**shared_settings(self.sweep.variants), **machine_params()}
        params = [Param(k, v) for k, v in settings.items()]
        for chunk in chunks(params, MAX_PARAMS_TAGS):
            self.client.log_batch(run_id, params=chunk)
        name = Path(str(self.sweep.path)).name or "sweep.yaml"
        path = Path(self._tmpdir()) / name
        path.write_text(self.sweep.text, encoding="utf-8")
        artifact_repository(self._parent_artifacts, self.tracking_uri).log_artifact(str(path))

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sweeps-track-")
        return self._tmp.name

    def log_artifacts(self, directory: str | Path) -> None:
        """Every file under `directory` onto the parent run (results tables, plots)."""
        self._require_started()
        self.with_retries("log_artifacts", lambda: artifact_repository(
            self._parent_artifacts, self.tracking_uri).log_artifacts(str(directory)))

    def write_parent_file(self, path: str, data: bytes) -> None:
        """Bytes as the parent run's artifact `path` ("dir/name"), replacing an older one."""
        self._require_started()
        self.with_retries("write_parent_file", lambda: write_artifact(
            self._parent_artifacts, self.tracking_uri, path, data, self._tmpdir()))

    def read_parent_file(self, path: str) -> bytes | None:
        """The parent run's artifact `path` ("dir/name"), or None when it has none."""
        self._require_started()
        folder, _, name = path.rpartition("/")
        repo = artifact_repository(self._parent_artifacts, self.tracking_uri)
        listed = {item.path for item in self.with_retries(
            "read_parent_file", lambda: repo.list_artifacts(folder or None))}
        if path not in listed:
            return None
        with tempfile.TemporaryDirectory(dir=self._tmpdir()) as directory:
            local = self.with_retries("read_parent_file",
                                      lambda: repo.download_artifacts(path, directory))
            return Path(local).read_bytes()

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        """Metrics on the parent run (the best group's), so the runs table shows the winner."""
        from mlflow.entities import Metric
        self._require_started()
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()
                 if v is not None and not (isinstance(v, float) and math.isnan(v))]
        for chunk in chunks(batch, MAX_METRICS):
            self.with_retries("log_parent_metrics", lambda chunk=chunk: self.client.log_batch(
                self.parent_run_id, metrics=chunk))

    def write_groups(self, runs: Sequence[Any], experiment_tags: Mapping[str, str]) -> list[str]:
        """Replace the sweep run's configuration runs (`sweeps.tracking.groups`) and set
        `experiment_tags` (the UI's view of them); their run ids."""
        from sweeps.tracking.groups import write_through_client
        self._require_started()
        return write_through_client(self, runs, experiment_tags)

    def finish(self, status: RunState = RunState.FINISHED) -> None:
        """Delete stray unfinished children, then end the parent run with `status`."""
        if status not in ENDED:
            raise ValueError(f"status must be {', '.join(ENDED)}, not {status!r}")
        self._require_started()

        def _finish():
            stray = self._search(f"tags.`{PARENT_ID}` = '{self.parent_run_id}' "
                                 f"and attributes.status != '{RunState.FINISHED}'")
            for run in stray:
                self.client.delete_run(run.info.run_id)
            self.client.set_terminated(self.parent_run_id, status)

        self.with_retries("finish", _finish)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _require_started(self) -> None:
        if self.parent_run_id is None:
            raise RuntimeError("SweepTracker.start() must be called first")

    # -- children --------------------------------------------------------------------------

    def log_variant(self, variant: Any, result: Any) -> str:
        """Write one variant's child run (FINISHED last); return its run id.

        A variant already FINISHED under this parent is not written again.
        """
        return self.log_child(variant.key, lambda: child_run(
            self.sweep, variant, result, self.parent_run_id, self.kinds, self.histories))

    def log_child(self, key: str, make_child: Callable[[], ChildRun]) -> str:
        """Write the child run `make_child()` of the variant `key` (FINISHED last), unless
        one is FINISHED under this parent already; return its run id. A trained variant's
        child comes from `child_run`, a reused one's from `sweeps.tracking.reuse`."""
        self._require_started()
        if key in self._records:
            return self._records[key].run_id

        def _existing() -> str | None:
            """Before re-trying: a FINISHED child counts, anything else is deleted."""
            return self._records[key].run_id if self.adopt_written({key: make_child}) else None

        def _write() -> str:
            record = self._records[key] = self._write_run(make_child())
            return record.run_id

        return self.with_retries("log_variant", _write, on_retry=_existing)

    def log_variants(self, batch: Sequence[tuple[Any, Any]]) -> list[str]:
        """Write the child runs of a batch of (variant, result) pairs; return their run ids.

        With several `writers` the children are written by that many threads at once (a
        tracking server's workers then run in parallel); each one is retried on its own.
        """
        return self.log_children([(variant.key, lambda variant=variant, result=result:
                                   child_run(self.sweep, variant, result, self.parent_run_id,
                                             self.kinds, self.histories))
                                  for variant, result in batch])

    def log_children(self, batch: Sequence[tuple[str, Callable[[], ChildRun]]]) -> list[str]:
        """`log_child` for each (variant key, make_child) of a batch, on `writers` threads."""
        if self.writers <= 1 or len(batch) <= 1:
            return [self.log_child(key, make) for key, make in batch]
        self._tmpdir()                        # created once, before the threads share it
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.writers, thread_name_prefix="sweeps-writer")
        futures = [self._pool.submit(self.log_child, key, make) for key, make in batch]
        return [future.result() for future in futures]

    def adopt_written(self, todo: dict[str, Any]) -> bool | None:
        """Before a write's retry: the children of the variants in `todo` ({variant key: what
        writes its child}) that a lost commit or answer did write FINISHED are adopted and
        their keys taken out of `todo`; every other child of those variants is deleted. True
        when nothing is left to write, else None (the on_retry contract of `with_retries`).
        The bulk writer and `sweeps.tracking.reuse`'s copies retry with it."""
        records = self.keep_finished_children(set(todo))
        self.adopt(records)
        for record in records:
            todo.pop(record.variant_key, None)
        return True if not todo else None

    def adopt(self, records: Sequence[RunRecord]) -> None:
        """Count children written under this parent by other means (the Ray workers'
        packs, `sweeps.tracking.reuse`'s copies inside the database) as FINISHED, like
        resumed ones."""
        self._records.update((record.variant_key, record) for record in records)

    def _write_run(self, child: ChildRun) -> RunRecord:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value, step in child.points]
        params = [Param(k, v) for k, v in child.params.items()]

        client = self.client
        run = client.create_run(self.experiment_id, tags=child.tags, run_name=child.name)
        run_id = run.info.run_id
        for m_chunk, p_chunk in _batches(metrics, params):
            client.log_batch(run_id, metrics=m_chunk, params=p_chunk)
        with tempfile.TemporaryDirectory(dir=self._tmpdir()) as directory:
            path = child.write_predictions(Path(directory))
            if path is not None:
                artifact_repository(run.info.artifact_uri,
                                    self.tracking_uri).log_artifact(str(path))
        client.set_terminated(run_id, RunState.FINISHED)
        return child.record(run_id, run.info.start_time)

    def pack_writer(self) -> Any:
        """What would let Ray workers write their packs' children: None, the client path
        writes from the driver (see `BulkTracker.pack_writer`)."""
        return None

    def records(self) -> list[RunRecord]:
        """What the FINISHED child runs hold (this session's and resumed ones), by variant index."""
        return by_index(list(self._records.values()))

    def predictions(self, run_ids: Sequence[str]) -> dict[str, Predictions]:
        """{run_id: predictions.csv}: this session's from memory, resumed ones read back."""
        by_id = {record.run_id: record for record in self._records.values()}
        held = {run_id: by_id[run_id].predictions for run_id in run_ids
                if run_id in by_id and by_id[run_id].predictions is not None}
        return {**held, **fetch_predictions(self.tracking_uri,
                                            [run_id for run_id in run_ids if run_id not in held])}



def _batches(metrics: list, params: list) -> list[tuple[list, list]]:
    """(metrics, params) per log_batch call within MLflow's limits; usually exactly one."""
    out = []
    for p_chunk in chunks(params, MAX_PARAMS_TAGS) or [[]]:
        room = min(MAX_METRICS, MAX_ENTITIES - len(p_chunk))
        out.append((metrics[:room], p_chunk))
        metrics = metrics[room:]
    out += [(m_chunk, []) for m_chunk in chunks(metrics, MAX_METRICS)]
    return [(m, p) for m, p in out if m or p]
