"""The rounds of successive halving inside `run_sweep`: train, rank, log, checkpoint.

Each round (`sweeps.execution.halving.Schedule.rounds`) packs the variants still training
(each pack carries its variants' `core.TrainState` and the round's rungs as stops), trains
the packs on Ray or serially, records every variant's metric at those rungs and lets the
brackets decide (`Search.decide`). Every variant that stops there is logged at once as a
complete child run: ``pruned`` (its curves up to its rung, its test predictions there),
``diverged``, or ``ok`` at the last rung (those are logged as their packs come in). Then
the search is checkpointed on the parent run (``halving/checkpoint.npz``), so a sweep
stopped by Ctrl-C or SIGKILL continues after its last finished round; a round in progress
is trained again, and variants it had logged are not logged twice.

What a round decided is logged and checkpointed while the next round's packs train (the
driver waits on them anyway); a round that is interrupted before its checkpoint is trained
again, so the order costs nothing on resume.

A pack that fails (after Ray's retries) ends the search after that round's other packs: a
ranking without its variants would be a different search. Running the file again retries
from the last finished round.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import core
from sweeps.execution.halving import Schedule, Search
from sweeps.execution.plan import pack_variants
from sweeps.execution.rounds import Trail, dump, load
from sweeps.execution.training import VariantResult
from sweeps.records import Pack
from sweeps.report.progress import SweepProgress

log = logging.getLogger(__name__)

CHECKPOINT = "halving/checkpoint.npz"
RUNG_TABLE = "halving/rungs.csv"
SEARCH_FILE = "halving/search.json"

# run(packs, on_done, on_failed, last_round, on_submitted) trains packs on Ray or serially,
# calling on_submitted() once the packs are on their way
RunPacks = Callable[[list[Pack], Callable, Callable, bool, Callable], dict[str, int]]


@dataclass
class Outcome:
    """What the rounds did: variants that failed (key -> error), packs per Ray node."""

    failed: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)


def run_rounds(sweep: Any, tracker: Any, schedule: Schedule, run_packs: RunPacks,
               workers: int, progress: bool, finished: set[str]) -> Outcome:
    """Every round still to do of the sweep's halving search; see the module docstring.

    finished : the keys of variants already FINISHED in the store (a resumed sweep).
    """
    by_key = {variant.key: variant for variant in sweep.variants}
    outcome = Outcome()
    if by_key.keys() <= finished:
        return outcome                      # a finished search: nothing to train again
    search, trails = _resume(tracker, schedule, sweep)
    decided: Callable[[], None] = lambda: None  # noqa: E731 - the last round's logging
    for number, rungs in enumerate(schedule.rounds()):
        if set(rungs) <= set(search.done):
            continue
        last_round = rungs[-1] == schedule.last
        stops = tuple(schedule.rungs[k] for k in rungs)
        todo = [by_key[key] for key in search.training()]
        packs = [_with_state(pack, trails, stops)
                 for pack in pack_variants(todo, sweep.datasets, workers)]
        results: dict[str, VariantResult] = {}

        with SweepProgress(len(todo), _round_text(sweep, number, schedule, stops),
                           enabled=progress) as bar:
            def on_done(pack: Pack, pack_results: list[VariantResult]) -> None:
                for result in pack_results:
                    results[result.key] = result
                    trails[result.key] = (trails[result.key].extend(result)
                                          if result.key in trails else Trail.first(result))
                if last_round:               # nothing left to decide for these: log now
                    _log(tracker, by_key, trails, {r.key: schedule.last for r in pack_results},
                         schedule)
                bar.advance([r.metrics["train_loss"] for r in pack_results],
                            diverged=sum(r.status == "diverged" for r in pack_results))

            def on_failed(pack: Pack, error: str) -> None:
                for variant in pack.variants:
                    outcome.failed[variant.key] = error
                bar.advance([], failed=len(pack.variants))

            nodes = run_packs(packs, on_done, on_failed, last_round, decided)
        for node, count in nodes.items():
            outcome.nodes[node] = outcome.nodes.get(node, 0) + count
        if outcome.failed:
            return outcome
        for key, result in results.items():
            for k, stop in zip(rungs, stops):
                search.record(key, k, result.at_stops[stop][schedule.metric])
        decision = search.decide(rungs)
        if not last_round:
            decided = _logger(tracker, by_key, trails, decision.stopped, schedule, search)
    decided()
    _write_tables(tracker, search, sweep)
    return outcome


def _logger(tracker: Any, by_key: dict, trails: dict[str, Trail], stopped: dict[str, int],
            schedule: Schedule, search: Search) -> Callable[[], None]:
    """What to do once the next round is under way: log the variants that stopped, then
    checkpoint the search. It runs before the next round's first result comes in (see
    `RunPacks`), while `search` and `trails` still hold this round's outcome."""
    batch = {key: trails.pop(key) for key in stopped}
    done = False

    def log_and_checkpoint() -> None:
        nonlocal done
        if not done:
            done = True
            _log(tracker, by_key, batch, stopped, schedule)
            tracker.write_parent_file(CHECKPOINT, dump(search, trails))

    return log_and_checkpoint


def _with_state(pack: Pack, trails: dict[str, Trail], stops: tuple[int, ...]) -> Pack:
    """The pack with its variants' states (when they trained before) and the round's stops."""
    states = [trails[v.key].state for v in pack.variants if v.key in trails]
    start = core.TrainState.concat(states) if states else None
    if states and len(states) != len(pack.variants):
        raise RuntimeError("a pack mixes variants that trained before with new ones")
    return replace(pack, start=start, stops=stops, keep_state=True)


def _log(tracker: Any, by_key: dict, trails: dict[str, Trail], stopped: dict[str, int],
         schedule: Schedule) -> None:
    """Log the variants that stopped (key -> rung index) as complete child runs."""
    batch = []
    for key, rung in stopped.items():
        trail = trails[key]
        if trail.last.status == "diverged":
            status = "diverged"
        else:
            status = "ok" if rung == schedule.last else "pruned"
        batch.append((by_key[key], trail.result(status, rung)))
    if batch:
        tracker.log_variants(batch)


def _resume(tracker: Any, schedule: Schedule, sweep: Any) -> tuple[Search, dict[str, Trail]]:
    """The search from the parent's checkpoint, else a new one over every variant."""
    data = tracker.read_parent_file(CHECKPOINT)
    if data is not None:
        try:
            search, trails = load(data, schedule)
        except ValueError as error:
            log.warning("starting the search again: %s", error)
        else:
            known = {v.key for v in sweep.variants}
            if set(trails) <= known:
                return search, trails
            log.warning("starting the search again: the checkpoint names other variants")
    return Search.begin(schedule, [(v.key, v.group) for v in sweep.variants]), {}


def _round_text(sweep: Any, number: int, schedule: Schedule, stops: tuple[int, ...]) -> str:
    rounds = len(schedule.rounds())
    return f"{sweep.name} round {number + 1}/{rounds} (to epoch {stops[-1]})"


def _write_tables(tracker: Any, search: Search, sweep: Any) -> None:
    """The rung table and the search's summary (schedule, brackets' picks) on the parent."""
    out = io.StringIO()
    columns = ["bracket", "ranking", "rung", "epoch", "groups_in", "groups_kept",
               "variants_in", "variants_kept"]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(search.table)
    tracker.write_parent_file(RUNG_TABLE, out.getvalue().encode())
    names = {v.group: v.name for v in sweep.variants}
    schedule = search.schedule
    summary = {
        "rungs": list(schedule.rungs),
        "brackets": [{"enters": schedule.rungs[start], "ranking": ranking}
                     for start, ranking in schedule.brackets],
        "eta": schedule.eta, "metric": schedule.metric, "mode": schedule.mode,
        "pick": search.pick(), "picks": {str(b): g for b, g in search.picks.items()},
        "pick_names": {str(b): _group_name(names.get(g, g)) for b, g in search.picks.items()},
    }
    tracker.write_parent_file(SEARCH_FILE, json.dumps(summary, indent=2).encode())


def _group_name(name: str) -> str:
    """A variant's name without its seed: the group's."""
    return " ".join(part for part in name.split() if not part.startswith("seed="))
