"""Successive halving (`search.method: halving`): its settings, its points, and its scheduler,
which asks for rounds of training and lets the brackets decide (`sweeps.methods.brackets`).

The rule this file keeps: the settings and their checks, and the translation of the brackets'
decisions into rounds of work. The arithmetic of rungs and brackets and the decisions
themselves are `brackets`' (pure bookkeeping), read here rather than repeated.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Mapping, Optional, Sequence

from sweeps.methods.base import Continue, Round, Scheduler, SearchMethod, Start, Stop
from sweeps.methods.brackets import (Schedule, Search, auto_brackets, kept, search_from_state,
                                     search_state)
from sweeps.methods.static import SAMPLERS
from sweeps.methods.validation import (dataset_problems, metric_problems, mode_of,
                                       validation_problems)
from sweeps.spec.config import SweepConfig
from sweeps.spec.parameters import BASE
from sweeps.spec.problems import Problem, suggest
from sweeps.vocabulary import Status
from sweeps.records import without_seed

CHECKPOINT = "halving/checkpoint.npz"
RUNG_TABLE = "halving/rungs.csv"
SEARCH_FILE = "halving/search.json"
RUNG_COLUMNS = ("bracket", "ranking", "rung", "epoch", "groups_in", "groups_kept",
                "variants_in", "variants_kept")

# `ranking`: the rankings each bracket is run with (`both`: one bracket of each per entry).
RANKINGS = {"both": ("value", "trend"), "value": ("value",), "trend": ("trend",)}


class Halving(SearchMethod):
    """Successive halving with Hyperband brackets over the points of a sampler.

    Settings, under `search:` (validated here; the defaults are the schema's):

    sampler     grid (default) or random: the variants that enter; random reads samples and
                random_seed as method: random does, grid takes lists only
    min_epochs  the end of the first rung; required, >= 1 and below train.epochs
    eta         keep the best 1/eta at each rung; >= 2, default 3
    metric      what ranks: val_loss (default), val_accuracy (classification data sets) or
                val_mse (regression); needs `data.validation` (never the test set)
    mode        min or max: the better direction; default the metric's own (max for
                accuracy, else min), and never against it
    brackets    auto (default) or n >= 1, at most the number of rungs
    ranking     both (default), value or trend: what a bracket ranks groups on at a rung,
                their metric there, or its trend (see below); both runs every bracket twice

    Rungs (`rungs`): rung r ends at min_epochs * eta**r epochs while that is below
    train.epochs; the last rung ends at train.epochs. Epochs 300, min_epochs 10, eta 3:
    (10, 30, 90, 270, 300); epochs 270: (10, 30, 90, 270). train.epochs cannot be swept: the
    rungs are derived from it.

    Brackets (`bracket_starts`): bracket b ranks first at the end of rung b and continues
    through the last rung; bracket 0 is the most aggressive (first cut at min_epochs), a
    later one trains longer before its first cut, which hedges against late bloomers.
    `auto` means every start from 0 up to the latest at which the whole search is expected
    to cost at most half the plain grid's work (`auto_brackets`, the one place of the rule;
    at least one bracket). The brackets share training, so they cost less than the sum of
    their parts (300 epochs, min_epochs 3, eta 3, both rankings: rungs 3, 9, 27, 81, 243,
    300, brackets entering at 3, 9 and 27; between 22% and 46% of the grid, 35% measured).
    An int n means the n most aggressive entries, 0 .. n-1; each entry gets one bracket per
    ranking.

    Rankings (`ranking`): ``value`` ranks a group by its metric at the rung (mean over
    seeds), which favours fast starters; ``trend`` by where its last eta-fold of epochs
    points, ``v + w * log_eta(epochs / rung) * (v - v_previous_rung)`` (w =
    `sweeps.methods.brackets.TREND_WEIGHT`; the first rung ranks on v), which
    keeps late bloomers (a curve still falling fast) and drops a curve that turned up (over-
    fitting). ``both`` (default) runs each bracket with each ranking; the pick is the best
    group at the last rung over all of them.
    """

    name = "halving"
    keys = ("sampler", "min_epochs", "eta", "metric", "mode", "brackets", "ranking")

    def __init__(self, config: SweepConfig, role: str = "method"):
        super().__init__(config, role)
        search = self.search
        sampler = SAMPLERS.get(search.sampler)
        self.sampler: Optional[SearchMethod] = sampler(config, "sampler") if sampler else None
        self.min_epochs: Optional[int] = search.min_epochs
        self.eta: int = search.eta
        self.metric: str = search.metric
        self.brackets = search.brackets
        self.rankings: tuple[str, ...] = RANKINGS[search.ranking]

    @property
    def mode(self) -> str:
        """The better direction of `metric`: search.mode, else the metric's own (a validated
        config's: `check` reports an unknown metric or a list first)."""
        return mode_of(self.metric, self.search.mode)

    @property
    def reads(self) -> tuple[str, ...]:
        # An unknown sampler is reported once; the keys of every sampler are let pass with it.
        samplers = [self.sampler] if self.sampler else SAMPLERS.values()
        return self.keys + tuple(k for sampler in samplers for k in sampler.keys)

    @property
    def refuse_distribution(self) -> Optional[str]:
        return self.sampler.refuse_distribution if self.sampler else None

    def check(self, clean: bool) -> list[Problem]:
        search = self.search
        problems = []
        if self.sampler is None:
            problems.append(Problem(("search", "sampler"), (
                f"unknown sampler {search.sampler!r}{suggest(search.sampler, SAMPLERS)} "
                f"(one of: {', '.join(SAMPLERS)})")))
        else:
            problems += self.sampler.check(clean)
        if "train.epochs" in search.parameters:
            problems.append(Problem(BASE + ("train.epochs",), (
                f"cannot be swept under {self.label}: its rungs are derived from train.epochs "
                "(set it once, under train)")))
        if self.min_epochs is None:
            problems.append(Problem(("search", "min_epochs"),
                                    f"required for {self.label} (the epochs of the first rung)"))
        if isinstance(self.metric, list):
            problems.append(Problem(("search", "metric"), (
                f"{self.label} ranks on one metric; several (a Pareto front) need method: "
                "tpe or gp")))
        elif isinstance(search.mode, list):
            problems.append(Problem(("search", "mode"), "one mode for one metric, not a list"))
        else:
            problems += metric_problems(self.metric, search.mode)
        return problems

    def check_config(self) -> list[Problem]:
        problems = []
        epochs = self.config.train.epochs
        if self.min_epochs is not None and self.min_epochs >= epochs:
            problems.append(Problem(("search", "min_epochs"), (
                f"{self.min_epochs} must be below train.epochs ({epochs}): the first rung ends "
                "before training does")))
        elif self.min_epochs is not None and isinstance(self.brackets, int):
            rungs = self.rungs(epochs)
            if self.brackets > len(rungs):
                problems.append(Problem(("search", "brackets"), (
                    f"{self.brackets} brackets, but train.epochs {epochs}, min_epochs "
                    f"{self.min_epochs} and eta {self.eta} give {len(rungs)} rungs "
                    f"({', '.join(map(str, rungs))}); at most {len(rungs)}")))
        return problems + validation_problems(self.config, self.label)

    def check_dataset(self, dataset) -> list[Problem]:
        return dataset_problems(self.metric, dataset)

    def points(self) -> list[dict[str, Any]]:
        return self.sampler.points()

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epoch at which each rung ends, for `epochs` = train.epochs.

        Rung r ends at min_epochs * eta**r while that is below `epochs`; the last rung ends
        at `epochs`. min_epochs 10, eta 3: rungs(300) == (10, 30, 90, 270, 300),
        rungs(270) == (10, 30, 90, 270). Raises ValueError unless 1 <= min_epochs < epochs
        and eta >= 2 (what validation guarantees).
        """
        if self.min_epochs is None or not 1 <= self.min_epochs < epochs or self.eta < 2:
            raise ValueError(f"rungs need 1 <= min_epochs < epochs and eta >= 2, got min_epochs "
                             f"{self.min_epochs}, epochs {epochs}, eta {self.eta}")
        ends = []
        end = self.min_epochs
        while end < epochs:
            ends.append(end)
            end *= self.eta
        return tuple(ends) + (epochs,)

    def bracket_starts(self, rungs: Sequence[int]) -> tuple[int, ...]:
        """The rung index at which each bracket ranks first, most aggressive first.

        brackets auto: `auto_brackets` over this search's groups; an int n: 0 .. n-1. Raises
        ValueError when n exceeds the number of rungs.
        """
        n = (auto_brackets(rungs, self.eta, self.groups(), len(self.rankings))
             if self.brackets == "auto" else self.brackets)
        if not 1 <= n <= len(rungs):
            raise ValueError(f"{n} brackets need at least {n} rungs, got {len(rungs)}")
        return tuple(range(n))

    def groups(self) -> int:
        """How many configurations (points that differ in more than the seed) enter."""
        return max(1, len({tuple(sorted((k, repr(v)) for k, v in without_seed(point).items()))
                           for point in self.points()}))

    def describe(self) -> str:
        rungs = self.rungs(self.config.train.epochs)
        n = len(self.bracket_starts(rungs))
        return (f"halving on {self.metric} ({self.mode}), eta {self.eta}: {len(rungs)} rungs "
                f"ending at epochs {', '.join(map(str, rungs))}, {n} bracket{'s' if n != 1 else ''}"
                f" ranked by {' and by '.join(self.rankings)}; "
                f"sampler: {self.sampler.describe()}")

    def schedule(self) -> Schedule:
        """The rungs and brackets of this search."""
        rungs = self.rungs(self.config.train.epochs)
        return Schedule(rungs=rungs, starts=self.bracket_starts(rungs), eta=self.eta,
                        metric=self.metric, mode=self.mode, rankings=self.rankings)

    def scheduler(self, sweep: Any, finished: Mapping[str, Any],
                  earlier=()) -> "HalvingScheduler":
        return HalvingScheduler(sweep, finished, self.schedule())

    def work_share(self, sweep: Any) -> tuple[float, float]:
        schedule, groups = self.schedule(), len({v.group for v in sweep.variants})
        return tuple(w / (groups * schedule.rungs[-1]) for w in schedule.work(groups))

    def plan_lines(self, sweep: Any) -> list[str]:
        """The brackets' rungs (groups entering each) and the rounds they train in."""
        schedule = self.schedule()
        groups = len({v.group for v in sweep.variants})
        lines = [f"rungs: epochs {', '.join(map(str, schedule.rungs))} (keep the best 1/"
                 f"{schedule.eta} of each bracket's groups by {schedule.metric}, {schedule.mode})"]
        for bracket, (start, ranking) in enumerate(schedule.brackets):
            counts, n = [], groups
            for k in range(start, len(schedule.rungs)):
                counts.append(n)
                n = kept(n, schedule.eta)
            lines.append(f"  bracket {bracket} enters at epoch {schedule.rungs[start]}, ranks by "
                         f"{ranking}: {' -> '.join(map(str, counts))} groups")
        rounds = schedule.rounds()
        ends = [str(schedule.rungs[r[-1]]) for r in rounds]
        lines.append(f"  rounds: {len(rounds)}, ending at epochs {', '.join(ends)} (the first "
                     f"trains all {len(sweep.variants)} variants; the others only the brackets' "
                     "survivors)")
        return lines


class HalvingScheduler(Scheduler):
    """Successive halving's rounds (`Schedule.rounds`): the first starts every variant and
    trains it through the last bracket's entry rung, each later one continues the brackets'
    survivors one rung on; after each, the brackets decide (`Search.decide`) and the variants
    they drop stop at that rung (``pruned``). The last round's variants end ``ok``."""

    checkpoint = CHECKPOINT

    def __init__(self, sweep: Any, finished: Mapping[str, Any], schedule: Schedule):
        self.name = sweep.name
        self.variants = {v.key: v for v in sweep.variants}
        self._group_name = sweep.group_name
        self.schedule = schedule
        self.search = Search.begin(schedule, [(v.key, v.group) for v in sweep.variants])
        self._over = self.variants.keys() <= finished.keys()
        self._rounds = list(enumerate(schedule.rounds()))
        self._rungs: tuple[int, ...] = ()
        self._pending: dict[str, Stop] = {}

    @property
    def over(self) -> bool:
        return self._over

    def ask(self) -> Optional[Round]:
        schedule = self.schedule
        while self._rounds:
            number, rungs = self._rounds.pop(0)
            if set(rungs) <= set(self.search.done):
                continue                    # decided before a resume
            self._rungs = rungs
            stops = tuple(schedule.rungs[k] for k in rungs)
            request = Continue if self.search.done else Start
            work = tuple(request(key) if request is Continue else Start(self.variants[key])
                         for key in self.search.training())
            last = rungs[-1] == schedule.last
            stop, self._pending = self._pending, {}
            return Round(work=work, stops=stops, stop=stop, last=last, final=last,
                         rung=schedule.last if last else None, keep=True,
                         label=f"{self.name} round {number + 1}/{len(schedule.rounds())} "
                               f"(to epoch {stops[-1]})")
        return None

    def tell(self, results: Mapping[str, Any]) -> None:
        schedule, rungs = self.schedule, self._rungs
        stops = tuple(schedule.rungs[k] for k in rungs)
        for key, result in results.items():
            for k, stop in zip(rungs, stops):
                self.search.record(key, k, result.at_stops[stop][schedule.metric])
        decision = self.search.decide(rungs)
        if rungs[-1] != schedule.last:         # the last round's variants are logged already
            self._pending = {key: Stop(Status.PRUNED, rung)
                             for key, rung in decision.stopped.items()}

    def state(self) -> dict:
        return search_state(self.search)

    def restore(self, state: Mapping[str, Any], kept: set[str]) -> None:
        search = search_from_state(state, self.schedule)
        if not kept <= self.variants.keys():
            raise ValueError("the checkpoint names other variants")
        self.search = search

    def tables(self) -> dict[str, bytes]:
        """The rung table and the search's summary (schedule, brackets' picks)."""
        search, schedule = self.search, self.schedule
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(RUNG_COLUMNS))
        writer.writeheader()
        writer.writerows(search.table)
        members = {v.group: v for v in self.variants.values()}
        summary = {
            "rungs": list(schedule.rungs),
            "brackets": [{"enters": schedule.rungs[start], "ranking": ranking}
                         for start, ranking in schedule.brackets],
            "eta": schedule.eta, "metric": schedule.metric, "mode": schedule.mode,
            "pick": search.pick(), "picks": {str(b): g for b, g in search.picks.items()},
            "pick_names": {str(b): self._group_name(members[g]) if g in members else g
                           for b, g in search.picks.items()},
        }
        return {RUNG_TABLE: out.getvalue().encode(),
                SEARCH_FILE: json.dumps(summary, indent=2).encode()}
