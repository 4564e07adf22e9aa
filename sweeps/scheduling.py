"""The driver of every search method inside `run_sweep`: ask the method's scheduler for a round,
train it, log, tell, checkpoint; again until the scheduler says the search is over.

Each round (`sweeps.methods.base.Round`) packs its work (variants that start from their
initializers and variants that go on from a state apart: a pack starts from one or the other),
trains the packs on Ray or serially to the round's stops, and tells the scheduler the
results. Variants are logged as complete child runs: in a final round as their packs come
in; the ones a scheduler stops after a round (``pruned``, or ``diverged`` when training says
so) while the next round's packs train (the driver waits on them anyway). Then, for a
scheduler with a `checkpoint`, its state and the states of the variants it keeps are written
to the parent run, so a sweep stopped by Ctrl-C or SIGKILL continues after its last told
round; a round in progress is trained again, and variants it had logged are not logged twice.
A round that is interrupted before its checkpoint is trained again, so the order costs nothing
on resume.

Where workers can write to the store (`Tracker.pack_writer`: PostgreSQL), a round whose results
the scheduler does not read (`Scheduler.reads_results` False: grid and random) is written by the
worker that trained each pack; the driver adopts the records (`tracking.pack_writer.settle`).
A search that keeps states (successive halving) writes a variant once, when it stops, with
its curves joined across its rounds, which only the driver holds: there, with `submit_writes`,
the driver hands each batch of stopped variants' joined results to Ray write tasks (one
transaction each, exactly once by the run ids `pack_writer` derives) and waits for them
before the checkpoint, so a resumed search finds every stopped variant stored or writes it
again to no effect.

A pack that fails (after Ray's retries) ends the search after that round's other packs: a
scheduler told a round without its variants would make a different search. Running the file
again retries from the last told round.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import core
from sweeps.execution.plan import PACKS_PER_WORKER, pack_variants
from sweeps.execution.trails import Trail, dump, load
from sweeps.execution.training import VariantResult
from sweeps.methods.base import Continue, Fork, Round, Scheduler, Start, Stop
from sweeps.records import Pack
from sweeps.report.progress import SweepProgress
from sweeps.tracking.pack_writer import settle
from sweeps.vocabulary import Status

log = logging.getLogger(__name__)

# run(packs, on_done, on_failed, last_round, on_submitted, writer) trains packs on Ray or
# serially, calling on_submitted() once the packs are on their way; with a writer, each worker
# writes the children of its pack
RunPacks = Callable[..., dict[str, int]]
# submit(writer, datasets, [(variants, results)]) -> wait(): writes batches of children on
# Ray; wait() returns each batch's `Written` / `Unwritten` (`execute.submit_writes`)
SubmitWrites = Callable[..., Callable[[], list]]
WRITE_BATCH = 1000          # stopped variants per write task (one transaction) at most


@dataclass
class Outcome:
    """What the rounds did: variants that failed (key -> error), packs per Ray node, packs
    per writing process ("host:pid"), seconds spent logging and in the scheduler's ask and
    tell."""

    failed: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)
    logging: float = 0.0
    deciding: float = 0.0


def run_scheduled(sweep: Any, tracker: Any, scheduler: Scheduler, run_packs: RunPacks,
                  workers: int, progress: bool, pack_writer: Any = None,
                  submit_writes: SubmitWrites | None = None) -> Outcome:
    """Every round still to do of the sweep's search; see the module docstring.

    pack_writer : `Tracker.pack_writer()` where workers can write their packs (else None).
    submit_writes : how stopped variants of a search that keeps states reach Ray write
        tasks with `pack_writer` (None: the driver writes them).
    """
    outcome = Outcome()
    if scheduler.over:
        return outcome                      # a finished search: nothing to train again
    by_key = {variant.key: variant for variant in sweep.variants}
    log_stopped = _Stopped(tracker, by_key, sweep.datasets, outcome,
                           pack_writer if submit_writes else None, submit_writes, workers)
    trails = _resume(tracker, scheduler)
    pending: Callable[[], None] = lambda: None  # noqa: E731 - the last told round's logging
    told = False
    while (work := _timed(outcome, scheduler.ask)) is not None:
        for request in work.work:
            if isinstance(request, (Start, Fork)):
                by_key[request.variant.key] = request.variant
            if isinstance(request, Fork):
                trails[request.variant.key] = trails[request.source]
        if told:
            pending = _logger(log_stopped, trails, work.stop, scheduler, tracker, outcome)
        packs = _packs(work, by_key, trails, sweep.datasets, workers)
        results: dict[str, VariantResult] = {}
        writes: list[Callable[[], list]] = []     # a final round's stopped variants on Ray

        written_by_workers = (pack_writer is not None and not scheduler.reads_results
                              and (work.final or work.last) and not work.keep)

        with SweepProgress(len(work.work), work.label, enabled=progress,
                           metric=sweep.ranking_metric) as bar:
            def on_done(pack: Pack, pack_results: list[VariantResult]) -> None:
                if written_by_workers:      # records (or results the driver writes now)
                    clock = time.perf_counter()
                    pack_results, writer = settle(tracker, by_key, pack_results)
                    outcome.writers[writer] = outcome.writers.get(writer, 0) + 1
                    outcome.logging += time.perf_counter() - clock
                    bar.advance([r.metrics for r in pack_results],
                                diverged=sum(r.status == Status.DIVERGED for r in pack_results))
                    return
                for result in pack_results:
                    if scheduler.reads_results:   # else held for nothing (48,000 curves)
                        results[result.key] = result
                    if work.keep:
                        trails[result.key] = (trails[result.key].extend(result)
                                              if result.key in trails else Trail.first(result))
                if work.final or work.last:  # nothing left to decide for these: log now
                    clock = time.perf_counter()
                    if work.keep:
                        writes.append(log_stopped(
                            trails, {r.key: Stop(Status.OK, work.rung) for r in pack_results},
                            wait=False))
                    else:
                        tracker.log_variants([(by_key[r.key], r) for r in pack_results])
                    outcome.logging += time.perf_counter() - clock
                bar.advance([r.metrics for r in pack_results],
                            diverged=sum(r.status == Status.DIVERGED for r in pack_results))

            def on_failed(pack: Pack, error: str) -> None:
                for variant in pack.variants:
                    outcome.failed[variant.key] = error
                bar.advance([], failed=len(pack.variants))

            # (Ray stays up through a last round whose stopped variants it writes)
            nodes = run_packs(packs, on_done, on_failed,
                              work.last and not (work.keep and log_stopped.remote), pending,
                              pack_writer if written_by_workers else None)
            clock = time.perf_counter()
            for wait in writes:
                log_stopped.settle(wait)
            outcome.logging += time.perf_counter() - clock
        for node, count in nodes.items():
            outcome.nodes[node] = outcome.nodes.get(node, 0) + count
        if outcome.failed:
            return outcome
        _timed(outcome, scheduler.tell, results)
        told = True
    pending()
    for path, data in scheduler.tables().items():
        tracker.write_parent_file(path, data)
    return outcome


def _timed(outcome: Outcome, call: Callable, *args: Any) -> Any:
    """call(*args), its seconds added to `outcome.deciding`."""
    clock = time.perf_counter()
    try:
        return call(*args)
    finally:
        outcome.deciding += time.perf_counter() - clock


def _packs(work: Round, by_key: Mapping[str, Any], trails: Mapping[str, Trail],
           datasets: Mapping[str, Any], workers: int) -> list[Pack]:
    """The round's packs: new variants and variants that go on from a state packed apart."""
    fresh = [by_key[r.variant.key] for r in work.work if isinstance(r, Start)]
    going_on = [by_key[r.key if isinstance(r, Continue) else r.variant.key] for r in work.work
                if not isinstance(r, Start)]
    packs = [_with_state(pack, trails, work) for todo in (fresh, going_on) if todo
             for pack in pack_variants(todo, datasets, workers,
                                       work.packs_per_worker or PACKS_PER_WORKER)]
    return [replace(pack, index=i) for i, pack in enumerate(packs)]


def _with_state(pack: Pack, trails: Mapping[str, Trail], work: Round) -> Pack:
    """The pack with its variants' states (when they trained before) and the round's stops."""
    if work.record:
        pack = replace(pack, record=work.record)
    if not work.keep:
        return replace(pack, stops=work.stops) if work.stops else pack
    states = [trails[v.key].state for v in pack.variants if v.key in trails]
    start = core.TrainState.concat(states) if states else None
    if states and len(states) != len(pack.variants):
        raise RuntimeError("a pack mixes variants that trained before with new ones")
    return replace(pack, start=start, stops=work.stops, keep_state=True)


def _logger(log_stopped: "_Stopped", trails: dict[str, Trail], stopped: Mapping[str, Stop],
            scheduler: Scheduler, tracker: Any, outcome: Outcome) -> Callable[[], None]:
    """What to do once the next round is under way: log the variants that stopped, then
    checkpoint the search. It runs before the next round's first result comes in (see
    `RunPacks`), while the scheduler and `trails` still hold the told round's outcome."""
    batch = {key: trails.pop(key) for key in stopped}
    done = False

    def log_and_checkpoint() -> None:
        nonlocal done
        if not done:
            done = True
            clock = time.perf_counter()
            log_stopped(batch, stopped)           # stored before the checkpoint says so
            if scheduler.checkpoint:
                tracker.write_parent_file(scheduler.checkpoint, dump(scheduler.state(), trails))
            outcome.logging += time.perf_counter() - clock

    return log_and_checkpoint


class _Stopped:
    """Logs variants that stopped as complete child runs (diverged when training says so),
    their results joined from their trails: by the driver, or (with a pack writer and
    `submit_writes`) by Ray write tasks, each batch's records then adopted."""

    def __init__(self, tracker: Any, by_key: Mapping[str, Any], datasets: Mapping[str, Any],
                 outcome: Outcome, pack_writer: Any, submit_writes: SubmitWrites | None,
                 workers: int) -> None:
        self.tracker, self.by_key, self.datasets = tracker, by_key, datasets
        self.outcome, self.pack_writer, self.submit_writes = outcome, pack_writer, submit_writes
        self.workers = workers

    @property
    def remote(self) -> bool:
        return self.pack_writer is not None

    def __call__(self, trails: Mapping[str, Trail], stopped: Mapping[str, Stop],
                 wait: bool = True) -> Callable[[], list]:
        """Log them; with `wait` False a remote write is only submitted: hand what this
        returns to `settle` (a driver write is done at once either way)."""
        batch = []
        for key, stop in stopped.items():
            trail = trails[key]
            status = Status.DIVERGED if trail.last.status == Status.DIVERGED else stop.status
            batch.append((self.by_key[key], trail.result(status, stop.rung)))
        if not batch or not self.remote:
            if batch:
                self.tracker.log_variants(batch)
            return _nothing_to_wait_for
        size = min(WRITE_BATCH, -(-len(batch) // self.workers))
        chunks = [batch[i:i + size] for i in range(0, len(batch), size)]
        written = self.submit_writes(self.pack_writer, self.datasets,
                                     [([v for v, _ in c], [r for _, r in c]) for c in chunks])
        if wait:
            self.settle(written)
        return written

    def settle(self, written: Callable[[], list]) -> None:
        """Wait for submitted writes; adopt their records (or write what a task could not)."""
        for outcome in written():
            _, writer = settle(self.tracker, self.by_key, outcome)
            self.outcome.writers[writer] = self.outcome.writers.get(writer, 0) + 1


def _nothing_to_wait_for() -> list:
    """The outcomes of a write done already (by the driver): none to adopt."""
    return []


def _resume(tracker: Any, scheduler: Scheduler) -> dict[str, Trail]:
    """The kept variants' trails from the parent's checkpoint (the scheduler restored from it),
    else none (the scheduler starts anew)."""
    if not scheduler.checkpoint:
        return {}
    data = tracker.read_parent_file(scheduler.checkpoint)
    if data is not None:
        try:
            state, trails = load(data)
            scheduler.restore(state, set(trails))
        except ValueError as error:
            log.warning("starting the search again: %s", error)
        else:
            return trails
    return {}
