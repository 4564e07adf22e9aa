"""Successive halving's bookkeeping: the arithmetic of rungs and brackets, and the brackets'
decisions rung by rung (which variants train on).

The rule. Rungs ``r_0 < r_1 < ... < r_L = train.epochs`` (`sweeps.methods.halving.Halving`).
A bracket enters at one of the rungs ``starts`` with every configuration (a *group*: the
variants that differ only by seed) and, at each of its rungs but the last, keeps the best
``max(1, n // eta)`` of its n groups, ranked one of two ways (each entry rung gets a bracket
per ranking of `Schedule.rankings`):

- ``value``: the metric at the rung, mean over the group's seeds;
- ``trend``: where the group's last eta-fold of epochs points, ``v + TREND_WEIGHT *
  log_eta(r_L / r_k) * (v - v_prev)`` with v_prev its value at the rung before (the first
  rung ranks on v): a curve still falling fast (a late bloomer: plain SGD with a large step
  against Adam, which leads early) keeps its place, one that turned up (over-fitting) loses it.

A group with a diverged seed ranks after every group without one (by the count, then the
mean), so a lucky seed never carries a configuration that fails on others, and a group whose
seeds all diverged is dropped. The search's pick is the best group by value at the last rung
over every bracket.

Brackets share training. Training is deterministic and continues exactly (`core.state`), so
a variant trained to epoch e is the same variant in every bracket: it trains once, up to the
furthest rung any bracket takes it to. Every bracket takes every group to its first rung, so
everything trains to the last bracket's first rung; the earlier brackets cost only the groups
they promote beyond it that the last one does not. Hence the rounds: round 0 trains every
variant to ``r[starts[-1]]`` (ranking at each rung on the way, in the same task), each later
round trains the union of the brackets' survivors one rung on.

Pure bookkeeping: no Ray, no MLflow. `sweeps.methods.halving.HalvingScheduler` asks for its
rounds and tells it their results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence


# `brackets: auto` spends about this share of the plain grid's work (groups x epochs) at most:
# the search's work halfway between its bounds (`search_work`), which predicted the measured
# work within 1.5 points on both spaces of benchmarks/bench_halving.py (34% for 35%, 36.5%
# for 37.4%); the upper bound, with no survivor shared, is always far above it.
AUTO_BUDGET = 0.5


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


# How far `trend` follows a curve's last eta-fold, as a share of a straight extrapolation in
# log-epochs. benchmarks/replay_trend.py replays this bookkeeping on every-epoch validation
# curves of four 84-configuration spaces under six schedules (value and trend brackets
# together): every pick ranked 1st to 3rd for weights 0.5 to 1.0 (the ranks summed to 28, 26,
# 27, 27 for 0.5, 0.6, 0.75, 1.0); 0.75 and 1.0 alone picked the late-bloomer space's winner
# under its own schedule, and 0.75 spends a little less than 1.0.
TREND_WEIGHT = 0.75


@dataclass(frozen=True)
class Schedule:
    """The rungs and brackets of one halving search.

    rungs : epochs at the end of each rung, ascending; the last is train.epochs.
    starts : the rung indices brackets enter at, ascending (the first the most aggressive).
    eta : keep the best 1/eta of a bracket's groups at each rung.
    metric, mode : what groups are ranked on ("val_loss", ...) and "min" or "max".
    rankings : "value" and/or "trend"; one bracket per entry rung and ranking (`brackets`).
    """

    rungs: tuple[int, ...]
    starts: tuple[int, ...]
    eta: int
    metric: str
    mode: str
    rankings: tuple[str, ...] = ("value",)

    def __post_init__(self):
        if list(self.rungs) != sorted(set(self.rungs)) or not self.rungs:
            raise ValueError(f"rungs must ascend, got {self.rungs}")
        if not self.starts or list(self.starts) != sorted(set(self.starts)) \
                or self.starts[-1] >= len(self.rungs):
            raise ValueError(f"bracket starts {self.starts} do not fit {len(self.rungs)} rungs")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, not {self.mode!r}")
        if not self.rankings or not set(self.rankings) <= {"value", "trend"}:
            raise ValueError(f"rankings must be value and/or trend, not {self.rankings}")

    @property
    def last(self) -> int:
        return len(self.rungs) - 1

    @property
    def brackets(self) -> list[tuple[int, str]]:
        """(entry rung index, ranking) of each bracket, by bracket number."""
        return [(start, ranking) for ranking in self.rankings for start in self.starts]

    def rounds(self) -> list[tuple[int, ...]]:
        """The rung indices each round trains through: (0, ..., starts[-1]), then one each."""
        first = tuple(range(self.starts[-1] + 1))
        return [first] + [(k,) for k in range(self.starts[-1] + 1, len(self.rungs))]

    def work(self, groups: int) -> tuple[int, int]:
        """(least, most) group-epochs the search can cost, against ``groups * rungs[-1]``
        for the plain grid: least if every bracket keeps the same groups, most if none
        shares a survivor with another beyond the last bracket's first rung."""
        return search_work(self.rungs, self.eta, self.starts, groups, len(self.rankings))


def rank(values: Mapping[str, Sequence[float]], mode: str) -> list[str]:
    """Group keys best first, from each group's metric values (one per seed; NaN = diverged).

    Groups whose values are all NaN are left out. Ties keep the order of `values`.
    """
    sign = 1.0 if mode == "min" else -1.0
    scored = []
    for order, (group, seeds) in enumerate(values.items()):
        finite = [v for v in seeds if not math.isnan(v)]
        if finite:
            scored.append((len(seeds) - len(finite), sign * sum(finite) / len(finite), order, group))
    return [group for *_, group in sorted(scored)]


@dataclass
class Decision:
    """What one round's end decides.

    train : the variant keys to train on to the next round's rungs (sweep order).
    stopped : {variant key: rung index} of variants that stop here: pruned, or diverged.
    """

    train: list[str]
    stopped: dict[str, int]


@dataclass
class Search:
    """The state of a halving search between rounds (all of it JSON: a checkpoint holds it).

    groups : {group key: its variant keys}, in sweep order.
    alive : {bracket: group keys alive in it at its current rung}, set when it enters.
    values : {variant key: {rung index: metric value}} (NaN once diverged).
    done : the rung indices already decided.
    stopped : {variant key: rung index it stopped at}, pruned or diverged or finished.
    table : one row per bracket and rung: bracket, rung, epoch, groups_in, groups_kept,
        variants_in, variants_kept (the parent run's rung table).
    picks : {bracket: its best group at the last rung}.
    """

    schedule: Schedule
    groups: dict[str, list[str]]
    alive: dict[int, list[str]] = field(default_factory=dict)
    values: dict[str, dict[int, float]] = field(default_factory=dict)
    done: list[int] = field(default_factory=list)
    stopped: dict[str, int] = field(default_factory=dict)
    table: list[dict] = field(default_factory=list)
    picks: dict[int, str] = field(default_factory=dict)

    @classmethod
    def begin(cls, schedule: Schedule, variants: Iterable[tuple[str, str]]) -> "Search":
        """A search over (variant key, group key) pairs, in sweep order."""
        groups: dict[str, list[str]] = {}
        for key, group in variants:
            groups.setdefault(group, []).append(key)
        return cls(schedule=schedule, groups=groups)

    def record(self, key: str, rung: int, value: float) -> None:
        """A variant's metric at a rung (NaN when it has diverged)."""
        self.values.setdefault(key, {})[rung] = float(value)

    def decide(self, rungs: Sequence[int]) -> Decision:
        """Apply every bracket's choice at the rungs of the round just trained.

        Every variant of the round (`training()`) must have its value recorded at each rung.
        """
        schedule = self.schedule
        trained = self.training()
        training = set(trained)             # membership: one lookup per variant and bracket
        for k in rungs:
            for bracket, (start, _) in enumerate(schedule.brackets):
                if start == k:
                    self.alive[bracket] = list(self.groups)
            for bracket in sorted(self.alive):
                entered, ranking = self.alive[bracket], schedule.brackets[bracket][1]
                if k == schedule.last:
                    ranking = "value"            # the last rung: what the search picks on
                ranked = rank({g: [self._score(v, k, ranking) if v in training else math.nan
                                   for v in self.groups[g]] for g in entered}, schedule.mode)
                if k == schedule.last:
                    kept_groups = ranked
                    if ranked:
                        self.picks[bracket] = ranked[0]
                else:
                    kept_groups = ranked[:kept(len(entered), schedule.eta)]
                self.table.append(self._row(bracket, k, entered, kept_groups))
                self.alive[bracket] = kept_groups
            self.done.append(k)
        last = rungs[-1]
        going_on = set() if last == schedule.last else set(self.training())
        going_on = {v for v in going_on if not math.isnan(self.values[v][last])}
        stopped = {v: last for v in trained if v not in going_on}
        self.stopped.update(stopped)
        return Decision(train=self.training(), stopped=stopped)

    def _score(self, key: str, k: int, ranking: str) -> float:
        """What a bracket ranks variant `key` on at rung k (see the module docstring)."""
        value = self.values[key][k]
        if ranking == "value" or k == 0:
            return value
        schedule = self.schedule
        folds = math.log(schedule.rungs[-1] / schedule.rungs[k]) / math.log(schedule.eta)
        return value + TREND_WEIGHT * folds * (value - self.values[key][k - 1])

    def training(self) -> list[str]:
        """The variants still training: of groups alive in any bracket (every group before
        the first decision), not stopped; sweep order."""
        return [v for g in self._training() for v in self.groups[g] if v not in self.stopped]

    def _training(self) -> list[str]:
        """Groups alive in any bracket (all of them before the first decision), sweep order."""
        if not self.alive:
            return list(self.groups)
        alive = {g for groups in self.alive.values() for g in groups}
        return [g for g in self.groups if g in alive]

    def _row(self, bracket: int, k: int, entered: list[str], kept: list[str]) -> dict:
        size = lambda groups: sum(len(self.groups[g]) for g in groups)  # noqa: E731
        return {"bracket": bracket, "ranking": self.schedule.brackets[bracket][1],
                "rung": k, "epoch": self.schedule.rungs[k],
                "groups_in": len(entered), "groups_kept": len(kept),
                "variants_in": size(entered), "variants_kept": size(kept)}

    def pick(self) -> str | None:
        """The search's choice: the best group at the last rung over every bracket."""
        finalists = dict.fromkeys(self.picks.values())
        ranked = rank({g: [self.values[v][self.schedule.last] for v in self.groups[g]]
                       for g in finalists}, self.schedule.mode)
        return ranked[0] if ranked else None


def search_state(search: Search) -> dict:
    """The search as JSON: its schedule (which identifies it) and its bookkeeping."""
    s = search.schedule
    return {"schedule": {"rungs": list(s.rungs), "starts": list(s.starts), "eta": s.eta,
                         "metric": s.metric, "mode": s.mode, "rankings": list(s.rankings)},
            "search": {"groups": search.groups,
                       "alive": {str(b): g for b, g in search.alive.items()},
                       "values": {k: {str(r): v for r, v in values.items()}
                                  for k, values in search.values.items()},
                       "done": search.done, "stopped": search.stopped, "table": search.table,
                       "picks": {str(b): g for b, g in search.picks.items()}}}


def search_from_state(state: Mapping[str, Any], schedule: Schedule) -> Search:
    """`search_state` back into a Search of `schedule`; ValueError for another schedule."""
    if state.get("schedule") != search_state(Search(schedule, {}))["schedule"]:
        raise ValueError("the checkpoint belongs to another search schedule or format")
    data = state["search"]
    return Search(schedule=schedule, groups=data["groups"],
                  alive={int(b): g for b, g in data["alive"].items()},
                  values={k: {int(r): float(v) for r, v in values.items()}
                          for k, values in data["values"].items()},
                  done=list(data["done"]), stopped=dict(data["stopped"]), table=data["table"],
                  picks={int(b): g for b, g in data["picks"].items()})
