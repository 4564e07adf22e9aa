"""Successive halving (`search.method: halving`): its settings, its points and the pure
arithmetic of its rounds (rungs and brackets).

The rule this file keeps: only arithmetic and checks. Which variants enter which bracket, how a
group of seeds is ranked, and training that continues from the previous rung's parameters and
optimizer state belong to the scheduler, which reads `Halving.rungs` and `Halving.bracket_starts`
rather than repeating them.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

from sweeps.spec.config import SweepConfig
from sweeps.spec.methods import SAMPLERS, SearchMethod
from sweeps.spec.parameters import BASE
from sweeps.spec.problems import Problem, suggest


class Metric(NamedTuple):
    """A validation metric halving may rank on."""

    mode: str                   # the better direction: min or max
    task: Optional[str]         # the data set task it needs (None: any)


VAL_METRICS = {
    "val_loss": Metric("min", None),
    "val_accuracy": Metric("max", "classification"),
    "val_mse": Metric("min", "regression"),
}


# `brackets: auto` spends about this share of the plain grid's work (groups x epochs) at most:
# the search's work halfway between its bounds (`search_work`), which predicted the measured
# work within 1.5 points on both spaces of benchmarks/bench_halving.py (34% for 35%, 36.5%
# for 37.4%); the upper bound, with no survivor shared, is always far above it.
AUTO_BUDGET = 0.5
# `ranking`: the rankings each bracket is run with (`both`: one bracket of each per entry).
RANKINGS = {"both": ("value", "trend"), "value": ("value",), "trend": ("trend",)}


def kept(groups: int, eta: int) -> int:
    """How many of `groups` a bracket keeps at a rung that is not its last."""
    return max(1, groups // eta)


def bracket_work(rungs: Sequence[int], eta: int, start: int, groups: int,
                 beyond: int = 0) -> int:
    """Group-epochs past epoch `beyond` that one bracket entering at rung `start` with
    `groups` groups trains: all of them to ``rungs[start]``, then `kept` of them on to each
    next rung."""
    work = groups * max(0, rungs[start] - beyond)
    for k in range(start, len(rungs) - 1):
        groups = kept(groups, eta)
        work += groups * max(0, rungs[k + 1] - max(rungs[k], beyond))
    return work


def search_work(rungs: Sequence[int], eta: int, starts: Sequence[int], groups: int,
                rankings: int = 1) -> tuple[int, int]:
    """(least, most) group-epochs a search of brackets entering at `starts` (each run with
    `rankings` rankings) trains. The brackets share training: every group trains to the last
    entry; beyond it, least if every bracket keeps the same groups as the costliest one,
    most if no two share a survivor."""
    entry = rungs[starts[-1]]
    beyond = [bracket_work(rungs, eta, start, groups, beyond=entry) for start in starts]
    top = groups * (rungs[-1] - entry)
    return (groups * entry + max(beyond),
            groups * entry + min(top, rankings * sum(beyond)))


def auto_brackets(rungs: Sequence[int], eta: int, groups: int, rankings: int = 1) -> int:
    """How many brackets `brackets: auto` means: the most (entering at rungs 0, 1, ...) whose
    search is expected to cost at most AUTO_BUDGET of the plain grid (`groups * rungs[-1]`
    group-epochs): the mean of its least and most work; at least one."""
    budget = AUTO_BUDGET * groups * rungs[-1]
    fits = [n for n in range(1, len(rungs) + 1)
            if sum(search_work(rungs, eta, range(n), groups, rankings)) / 2 <= budget]
    return max(fits, default=1)


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
    `sweeps.execution.halving.TREND_WEIGHT`; the first rung ranks on v), which
    keeps late bloomers (a curve still falling fast) and drops a curve that turned up (over-
    fitting). ``both`` (default) runs each bracket with each ranking; the pick is the best
    group at the last rung over all of them.
    """

    name = "halving"
    keys = ("sampler", "min_epochs", "eta", "metric", "mode", "brackets", "ranking")
    adaptive = True

    def __init__(self, config: SweepConfig, role: str = "method"):
        super().__init__(config, role)
        search = self.search
        sampler = SAMPLERS.get(search.sampler)
        self.sampler: Optional[SearchMethod] = sampler(config, "sampler") if sampler else None
        self.min_epochs: Optional[int] = search.min_epochs
        self.eta: int = search.eta
        self.metric: str = search.metric
        own = VAL_METRICS.get(search.metric)
        self.mode: str = search.mode or (own.mode if own else "min")
        self.brackets = search.brackets
        self.rankings: tuple[str, ...] = RANKINGS[search.ranking]

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
        metric = VAL_METRICS.get(self.metric)
        if metric is None:
            problems.append(Problem(("search", "metric"), (
                f"unknown metric {self.metric!r}{suggest(self.metric, VAL_METRICS)} "
                f"(one of: {', '.join(VAL_METRICS)})")))
        elif search.mode is not None and search.mode != metric.mode:
            better = "higher" if metric.mode == "max" else "lower"
            problems.append(Problem(("search", "mode"), (
                f"mode {search.mode} contradicts metric {self.metric}, where {better} is better "
                f"(use mode: {metric.mode}, or leave mode out)")))
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
        return problems + self._validation_problems()

    def _validation_problems(self) -> list[Problem]:
        """Every variant needs a validation split: halving never ranks on the test set."""
        why = f"{self.label} ranks variants on a validation metric, never on the test set"
        swept = self.search.parameters.get("data.validation")
        if isinstance(swept, list):
            return [Problem(BASE + ("data.validation", i), f"{why}: use a fraction, not null")
                    for i, value in enumerate(swept) if value is None]
        if self.config.data.validation is None:
            return [Problem(("data", "validation"), f"{why}: set a validation split, e.g. "
                                                    "data.validation: 0.2")]
        return []

    def check_dataset(self, dataset) -> list[Problem]:
        metric = VAL_METRICS.get(self.metric)
        if metric is None or metric.task is None or dataset.task == metric.task:
            return []
        usable = [m for m, spec in VAL_METRICS.items() if spec.task in (None, dataset.task)]
        return [Problem(("search", "metric"), (
            f"{self.metric} needs a {metric.task} data set, but {dataset.name!r} is "
            f"{dataset.task} (use {' or '.join(usable)})"))]

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
        return max(1, len({tuple(sorted((k, repr(v)) for k, v in point.items() if k != "seed"))
                           for point in self.points()}))

    def describe(self) -> str:
        rungs = self.rungs(self.config.train.epochs)
        n = len(self.bracket_starts(rungs))
        return (f"halving on {self.metric} ({self.mode}), eta {self.eta}: {len(rungs)} rungs "
                f"ending at epochs {', '.join(map(str, rungs))}, {n} bracket{'s' if n != 1 else ''}"
                f" ranked by {' and by '.join(self.rankings)}; "
                f"sampler: {self.sampler.describe()}")
