"""`run_sweep`: the library form of `sweeps run`.

Flow: resume or start the parent run -> copy the planned variants the experiment already
holds FINISHED under this machine's numerics (`sweeps.tracking.reuse`, grid and random
search; Ray starts only if something is left) -> pack the variants not yet finished -> train packs
(Ray or serial) in the rounds the search method's scheduler asks for (`sweeps.scheduling`: grid
and random search are one round), while the driver logs each finished pack as one batch
(`open_tracker`: one transaction for a database store) -> tables, plots, artifacts
(`sweeps.report.outputs`: the plots are drawn in a helper process started with the sweep).
Ctrl-C or SIGTERM stops outstanding packs; everything logged so far stays FINISHED and the
parent run is marked KILLED, so running the same file again continues where it stopped.
"""

from __future__ import annotations

import gc
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, get_args

from sweeps import stopping
from sweeps.report import results
from sweeps.report.outputs import PlotWorker, write_outputs
from sweeps.methods.base import Scheduler
from sweeps.records import Executor
from sweeps.scheduling import Outcome, run_scheduled
from sweeps.spec.search import scheduler_of
from sweeps.spec.sweep import Sweep, load_sweep
from sweeps.tracking import Tracker, open_tracker
from sweeps.tracking.ui import open_hint
from sweeps.vocabulary import RunState

if TYPE_CHECKING:
    import pandas as pd

    from sweeps.execution.execute import RayConnection

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class SweepInterrupted(Exception):
    """The sweep was stopped by a signal; finished variants are logged."""

    def __init__(self, signum: int, logged: int, total: int, parent_run_id: str) -> None:
        self.exit_code = EXIT_CODES.get(signum, 130)
        name = signal.Signals(signum).name
        super().__init__(
            f"{name}: sweep stopped, {logged}/{total} variants logged to parent run "
            f"{parent_run_id} (marked KILLED). Run the same command again to continue."
        )


@dataclass
class SweepOutcome:
    """Everything a finished `run_sweep` produced."""

    sweep: Sweep
    parent_run_id: str
    tracking_uri: str
    frame: "pd.DataFrame"
    summary: "pd.DataFrame"
    curves: "pd.DataFrame"
    out_dir: Path
    files: list[Path]
    trained: int
    skipped: int
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # variant key -> error
    nodes: dict[str, int] = field(default_factory=dict)  # Ray node id -> packs run there
    writers: dict[str, int] = field(default_factory=dict)  # "host:pid" -> packs it wrote
    timings: dict[str, float] = field(default_factory=dict)
    experiment_id: str | None = None

    @property
    def status(self) -> RunState:
        return RunState.FAILED if self.failed else RunState.FINISHED

    def report(self, top: int = 5) -> str:
        """The text `sweeps run` prints at the end: best groups and where results are."""
        written = not self.summary.empty and "group_key" in self.summary   # configuration runs
        configurations = self.parent_run_id if written else None
        total = self.trained + self.skipped + self.reused
        lines = [
            f"{self.sweep.name}: {total} variants: {self.reused} reused, {self.trained} trained"
            + (f", {self.skipped} already done" if self.skipped else "")
            + (f", {len(self.failed)} FAILED" if self.failed else ""),
            "",
            results.format_summary(self.summary, top=top),
            "",
            f"MLflow:  {self.tracking_uri}  (parent run {self.parent_run_id})",
            "Runs:    " + open_hint(self.tracking_uri, self.experiment_id, self.sweep.path,
                                    configurations),
            f"Tables:  {self.out_dir}/",
        ]
        if {"startup", "train_and_log", "results"} <= self.timings.keys():
            t = self.timings
            lines.append(f"Time:    start-up {t['startup']:.1f} s, training and logging "
                         f"{t['train_and_log']:.1f} s, results {t['results']:.1f} s")
        for key, error in list(self.failed.items())[:5]:
            lines.append(f"failed {key}: {error}")
        return "\n".join(lines)


def run_sweep(
    sweep: Sweep | str | Path,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    executor: Executor = "ray",
    out: str | Path | None = None,
    fresh: bool = False,
    progress: bool = True,
    reuse: bool = True,
) -> SweepOutcome:
    """Train every variant of a sweep not yet finished and log it to MLflow.

    Parameters
    ----------
    sweep : a loaded Sweep or the path of a sweep file.
    tracking_uri : MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db].
    address : Ray cluster to join [default: a local instance started for the run].
    executor : "ray" (one task per pack) or "serial" (the same packs in this process).
    out : results directory [default: sweep-results/<name>/].
    fresh : start a new parent run instead of resuming the last one for this file.
    progress : show a progress bar on stderr.
    reuse : copy variants already FINISHED in the sweep's experiment, computed under this
        process's numerics, instead of training them (`sweeps.tracking.reuse`; grid and
        random search).
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    if executor not in get_args(Executor):
        raise ValueError(f"executor must be one of {get_args(Executor)}, got {executor!r}")
    out_dir = Path(out) if out is not None else Path("sweep-results") / sweep.name
    # Grid and random search only (docs/DESIGN.md): other methods choose or prune as they go.
    look_up = reuse and _method(sweep) in ("grid", "random")
    timings: dict[str, float] = {}

    # The plot helper imports matplotlib and Optuna's importance on the second core while this
    # one imports MLflow, so it is ready before training or copying needs both cores.
    plotter = PlotWorker()
    try:
        with _timed_phase(timings, "startup"), _collector_paused():
            tracker = open_tracker(tracking_uri, sweep, fresh=fresh)
            started = _start_up(tracker, sweep, look_up, executor, address)
        timings["ray_start"] = started.ray_start
        try:
            with _modules_frozen():
                with _timed_phase(timings, "train_and_log"):
                    done = _copy_and_train(sweep, tracker, started, progress, timings)
                # Ray shuts down (begun once every pack was in) while the outputs are written.
                with _timed_phase(timings, "results"):
                    made = write_outputs(tracker, out_dir, plotter,
                                         RunState.FAILED if done.failed else RunState.FINISHED,
                                         timings)
        finally:
            if started.connection is not None:
                started.connection.close()
    finally:
        plotter.close()
    return SweepOutcome(
        sweep=sweep, parent_run_id=tracker.parent_run_id, tracking_uri=tracker.tracking_uri,
        frame=made.frame, summary=made.summary, curves=made.curves, out_dir=out_dir,
        files=made.files, trained=len(made.frame) - len(started.finished) - len(started.sources),
        skipped=len(started.finished), reused=len(started.sources), failed=done.failed,
        nodes=done.nodes, writers=dict(done.writers), timings=timings,
        experiment_id=tracker.experiment_id,
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection in the block (start-up: MLflow's, SQLAlchemy's and Ray's
    imports), unless it was off already. Their passes walk every object imported so far:
    importing MLflow took 1.7-2.0 s without them against 2.2-2.5 s with them, and a card_4800
    full reuse's start-up 2.1 s against 2.7 s (medians of 5, alternated, 2026-12-07). What
    start-up leaves alive is then frozen out of full passes (`_modules_frozen`)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def _modules_frozen() -> Iterator[None]:
    """Every object alive now (most of them the modules MLflow, SQLAlchemy, Ray and pandas
    brought in) left out of the garbage collector's full passes until the block ends.

    The copies' and the packs' records make Python run a dozen full collections, each
    walking every object of those modules: 1.4 s of a full reuse's ~11 s, GIL held (0.91x
    the time of a card_4800 full reuse, card.yaml 0.96x, 2026-12-07). Nothing is done when
    the process froze objects of its own (they stay frozen).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _timed_phase(timings: dict[str, float], phase: str) -> Iterator[None]:
    """timings[phase] = the block's wall seconds (left out when the block raises)."""
    clock = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - clock


@dataclass
class _Started:
    """What start-up found: keys FINISHED under the parent, {key: `reuse.Source`} of others
    the experiment holds (`copied` already or not), the Ray connection (None: serial, or
    nothing to train), how many packs train at once, and the search's scheduler with the
    seconds it took to make (None: made once the reused variants are copied)."""

    finished: set[str]
    sources: dict
    copied: bool
    connection: RayConnection | None
    workers: int
    scheduler: Scheduler | None = None
    deciding: float = 0.0
    ray_start: float = 0.0              # seconds waiting for Ray's start (or connection)


def _start_up(tracker: Tracker, sweep: Sweep, look_up: bool, executor: Executor,
              address: str | None) -> _Started:
    """Start the tracker and find what can be reused (`_start`) while Ray starts, once a
    first lookup leaves something to train. The connection is closed if start-up fails."""
    connection = None
    try:
        with ThreadPoolExecutor(max_workers=1) as background:
            # Both take seconds and mostly wait (Ray on its processes, MLflow on SQLite). With
            # reuse, Ray starts once a first lookup leaves something to train, while the
            # tracker starts and the reusable variants are copied.
            unfound: Future[int] = Future()
            tracker_started = background.submit(_start_and_schedule, tracker, sweep, look_up,
                                                unfound, executor == "ray")
            clock = time.perf_counter()
            if executor == "ray" and unfound.result() > 0:
                connection = _connect(address)
            ray_start = time.perf_counter() - clock
        finished, sources, copied, (scheduler, deciding) = tracker_started.result()
        to_train = len(sweep.variants) - len(finished) - len(sources)
        if executor == "ray" and connection is None and to_train > 0:
            clock = time.perf_counter()
            connection = _connect(address)  # (the first lookup found more than remained)
            ray_start = time.perf_counter() - clock
        workers = _workers(executor) if to_train > 0 else 1
    except BaseException:
        if connection is not None:
            connection.close()
        raise
    return _Started(finished, sources, copied, connection, workers, scheduler, deciding,
                    ray_start)


def _copy_and_train(sweep: Sweep, tracker: Tracker, started: _Started, progress: bool,
                   timings: dict[str, float]) -> Outcome:
    """Copy the reusable variants, then train and log the others in the rounds the search
    method's scheduler asks for, Ctrl-C and SIGTERM handled (`_stopped_by_signals`)."""
    with _stopped_by_signals(sweep, tracker):
        if started.sources:
            _copy_with_progress(sweep, tracker, started.sources, started.copied, progress,
                                timings)
        scheduler, begun = started.scheduler, started.deciding
        if scheduler is None:
            scheduler, begun = _made_scheduler(sweep, tracker,
                                               started.finished | set(started.sources))
        writer = tracker.pack_writer() if started.connection is not None else None
        done = run_scheduled(sweep, tracker, scheduler, _pack_runner(sweep, started.connection),
                             started.workers, progress, pack_writer=writer,
                             submit_writes=_write_submitter(writer))
        timings["logging"], timings["deciding"] = done.logging, begun + done.deciding
    return done


def _made_scheduler(sweep: Sweep, tracker: Tracker, done_keys: set[str]
                    ) -> tuple[Scheduler, float]:
    """The search's scheduler, told the variants of `done_keys` (logged under the parent),
    and the seconds it took (Optuna's import and study, the warm start's read). The
    scheduler trains the others."""
    clock = time.perf_counter()
    finished_metrics = {r.variant_key: r.metrics for r in tracker.records()
                        if r.variant_key in done_keys}
    earlier = () if sweep.variants_fixed else _earlier_variants(sweep, tracker)
    return scheduler_of(sweep, finished_metrics, earlier), time.perf_counter() - clock


def _method(sweep: Sweep) -> str | None:
    search = getattr(getattr(sweep, "config", None), "search", None)
    return "grid" if search is None else getattr(search, "method", None)


def _start(tracker: Tracker, sweep: Sweep, look_up: bool, unfound: Future,
           copy_while_ray_starts: bool) -> tuple[set[str], dict, bool]:
    """Start the tracker and, when `look_up`, find (and maybe copy) what can be reused.

    Sets `unfound` first: how many variants no FINISHED child of the experiment holds (all
    of them without `look_up`), so the caller starts Ray only when something will train.
    Returns (keys FINISHED under the parent, {key: `reuse.Source`} of the others found in
    the experiment, whether they were copied already: they are while Ray starts, since the
    caller waits for Ray anyway; without Ray the caller copies them, under its signal
    handling).
    """
    from sweeps.execution.machine import numerics_fingerprint
    from sweeps.tracking import reuse

    numerics = numerics_fingerprint()
    keys = [variant.key for variant in sweep.variants]
    try:
        unfound.set_result(reuse.count_unfound(tracker, sweep.name, keys, numerics)
                           if look_up else len(keys))
    except BaseException as error:
        unfound.set_exception(error)
        raise
    finished = tracker.start()
    if not look_up:
        return finished, {}, False
    sources = reuse.find_sources(tracker, [key for key in keys if key not in finished],
                                 numerics)
    copy_now = copy_while_ray_starts and unfound.result() > 0 and bool(sources)
    if copy_now:
        reuse.copy_sources(tracker, _pairs(sweep, sources))
    return finished, sources, copy_now


def _start_and_schedule(tracker: Tracker, sweep: Sweep, look_up: bool, unfound: Future,
                        copy_while_ray_starts: bool) -> tuple:
    """`_start`, then, with nothing found to copy, the search's scheduler and its seconds
    (`_made_scheduler`: Optuna's import, the warm start's read and the study, while Ray
    starts rather than after it); else (None, 0.0): it is made once the copies are stored."""
    finished, sources, copied = _start(tracker, sweep, look_up, unfound, copy_while_ray_starts)
    made = (None, 0.0) if sources else _made_scheduler(sweep, tracker, finished)
    return finished, sources, copied, made


def _pairs(sweep: Sweep, sources: dict) -> list[tuple]:
    """(variant, source) in sweep order."""
    return [(v, sources[v.key]) for v in sweep.variants if v.key in sources]


def _copy_with_progress(sweep: Sweep, tracker: Tracker, sources: dict, copied: bool,
                        progress: bool, timings: dict[str, float]) -> None:
    """Copy the reusable variants (in batches) unless `copied` already, on a progress bar of
    their own ("480/480 variants: 480 reused"); the scheduler's bar counts the trained ones."""
    from sweeps.report.progress import SweepProgress
    from sweeps.tracking.reuse import copy_sources

    with SweepProgress(len(sources), f"{sweep.name} (reused)", enabled=progress) as bar:
        if copied:
            bar.advance_reused(len(sources))
            return
        clock = time.perf_counter()
        copy_sources(tracker, _pairs(sweep, sources), on_batch=bar.advance_reused)
        timings["reuse"] = time.perf_counter() - clock


def _connect(address: str | None) -> RayConnection:
    from sweeps.execution import execute
    return execute.RayConnection(address)


def _workers(executor: Executor) -> int:
    from sweeps.execution import execute
    return execute.worker_count(executor)


@contextmanager
def _stopped_by_signals(sweep: Sweep, tracker: Tracker) -> Iterator[None]:
    """Ctrl-C or SIGTERM while training: the parent run KILLED, then SweepInterrupted."""
    with stopping.signals_as_exceptions():
        try:
            yield
        except (KeyboardInterrupt, stopping.Signalled, SystemError) as error:
            stop = stopping.signal_behind(error)
            if stop is None:
                raise
            signum = getattr(stop, "signum", signal.SIGINT)
            with stopping.ignored():         # a second Ctrl-C must not cut this write short
                tracker.finish(RunState.KILLED)
            raise SweepInterrupted(
                signum, len(tracker.records()), len(sweep.variants), tracker.parent_run_id
            ) from None


def _earlier_variants(sweep: Sweep, tracker: Tracker) -> list:
    """(settings, metrics) of other sweeps' FINISHED variants in the experiment, which a
    method that chooses its variants while running warm-starts from."""
    from sweeps.spec.config import SETTING_PATHS
    from sweeps.tracking.contract import value_kind
    from sweeps.tracking.readback import earlier_variants

    kinds = {path: value_kind(v.settings.get(path) for v in sweep.variants)
             for path in SETTING_PATHS}
    return earlier_variants(tracker.tracking_uri, sweep.name, tracker.parent_run_id, kinds)


def _write_submitter(writer: Any):
    """How stopped variants of a search that keeps states are written on Ray (with a pack
    writer, so Ray is connected), else None (the driver writes them)."""
    if writer is None:
        return None
    from sweeps.execution import execute

    return execute.submit_writes


def _pack_runner(sweep: Sweep, connection: RayConnection | None):
    """run(packs, on_done, on_failed, last, on_submitted, writer) on Ray or serially: how each
    round of `run_scheduled` trains. With `last`, Ray shuts down in the background once every
    pack is in, while the driver logs the rest. With a `writer` (`Tracker.pack_writer`), each
    worker writes the children of the pack it trained. (Imports the executor, and so Ray,
    only when a round trains: 1.2 s of a sweep with nothing to train.)"""

    def run(packs, on_done, on_failed, last: bool, on_submitted=None,
            writer=None) -> dict[str, int]:
        from sweeps.execution import execute

        if connection is None:
            execute.run_serial(packs, sweep.datasets, on_done, on_failed, on_submitted)
            return {}
        return execute.run_ray(packs, sweep.datasets, on_done, on_failed,
                               on_all_trained=connection.close_soon if last else None,
                               cancel_on_interrupt=not connection.owned,
                               on_submitted=on_submitted, writer=writer)

    return run
