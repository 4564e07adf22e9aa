"""Model-based search (`search.method: tpe` and `gp`) through Optuna's samplers, a batch of
configurations per round.

A *configuration* is a point of the space without the seed; it trains with every seed the
file lists (`search.parameters.seed`, else the file's `seed`), and what the sampler is told is
the mean over those seeds of the validation metric (`search.metric`, never the test set). An
in-memory study lives on the driver (Optuna's database storages cost ~50x as much per trial).
Each round asks `search.batch` trials; the configurations train in the usual packs (all their
seeds, every configuration of the round together), and their means are told in the order they
were asked. While a round's trials are pending the sampler treats them as the constant liar
does (`TPESampler(constant_liar=True)`; `GPSampler` conditions on running trials itself), so a
batch spreads out instead of asking one point eight times. TPE still asks a configuration it
asked before now and then, GP more often on a space of lists; such a repeat is asked again
(`REASKS`, `GP_REASKS`), so `search.trials` counts distinct configurations.

Deterministic: the sampler is seeded with `search.random_seed`, the batch size is the file's
(not the number of workers), and results are told in asking order, never finishing order. So a
sweep run again on the same store replays its study: trials whose variants are all FINISHED
are told their logged values without training (nothing is trained twice), and the first trial
with a variant missing is where training resumes. No checkpoint is needed: the store is it.

Warm start: before the first ask the study is told every configuration of other sweep runs in
the same experiment (`earlier`: (settings, final metrics) of their FINISHED variants, any
method's) whose settings lie inside this space and equal this file's elsewhere, as the mean
over the seeds found. (A sweep resumed after other runs joined the experiment replays with
them, so it may then choose differently; what it logged stays.)

Optuna is imported when a scheduler is made (light commands never import it); GP needs PyTorch
as well (`pip install 'backprop-sweeps[gp]'`), which is checked when the file validates.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import itertools
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sweeps.methods.base import Round, Scheduler, SearchMethod, Start
from sweeps.methods.static import MAX_VARIANTS, RANDOM_DIGITS, draw_value, grid
from sweeps.methods.validation import (RECORDED, dataset_problems, objectives,
                                       objectives_problems, validation_problems)
from sweeps.records import format_value
from sweeps.spec.config import DATA_SETTINGS, Distribution, coerce
from sweeps.spec.parameters import BASE
from sweeps.spec.problems import Problem
from sweeps.vocabulary import Status

HISTORY_TABLE = "search/history.csv"
HISTORY_COLUMNS = ("round", "trial", "configuration", "value", "state")
# Trials drawn at random before the model is fitted: Optuna's default (10), but never more than
# a third of the budget, so a small budget still spends most of itself on the model.
STARTUP_TRIALS = 10
# TPESampler's settings beyond its seed and start-up trials (benchmarks/bench_search.py --tpe
# replays other settings against kept grids).
TPE_SETTINGS: dict[str, Any] = {"constant_liar": True}
# TPE asks a configuration again often on a space of lists (~7 trials of 64 on
# benchmarks/bench_search.py's spaces), which spends a trial of the budget on nothing new. So a
# repeat is asked again: the first is told FAIL (TPE's model ignores failed trials; told FAIL
# every time, a sampler sure of one point repeated it up to 100 times), later ones stay running
# until the round is told, so the constant liar steers the next ask away (GPSampler conditions
# on running trials alike). At most REASKS asks per configuration (then an unseen one is drawn
# at random, below); a list space with nothing left unseen repeats.
# Chosen on development sampler seeds 100-199 of bench_search's four spaces (never its report
# seeds), where it moved the mean rank of tpe's pick from 2.05/1.66/1.69/3.11 to
# 1.54/1.38/1.42/2.82 (moons/breast_cancer/sine/iris; random search: 3.98/3.87/4.10/3.50):
# docs/DESIGN.md, "Model-based search", has the protocol and the figures.
REASKS = 20
# GP repeats more (48-61 distinct configurations of 64 asked on sine) and each of its asks
# optimizes an acquisition function (~0.1 s), so it asks again at most 5 times. On development
# seeds 100-119 of bench_search's spaces the mean rank of gp's pick went from 2.70/3.85/3.80/1.40
# (repeats kept) to 2.80/3.25/3.00/1.50 (random: 3.85/4.10/4.00/2.70), alike with 20 re-asks,
# which cost up to 48 s of asking a sweep where 5 (and the draw below) cost at most 21 s.
GP_REASKS = 5
# Where the sampler still insists, an unseen configuration is drawn at random (seeded by the
# file's random_seed and the trial's number, so a replay draws the same): all of a space of up
# to UNSEEN_LISTED lists' configurations are looked at, a larger one drawn up to UNSEEN_DRAWS
# times.
UNSEEN_LISTED = 100_000
UNSEEN_DRAWS = 1_000
DEFAULT_BATCH = 8      # configurations per round: fixed, so the search does not depend on workers


class ModelBased(SearchMethod):
    """Settings, under `search:` (the defaults are the schema's):

    trials       how many configurations to train (required, >= 1)
    batch        configurations asked per round (default 8); each trains with all its seeds
    random_seed  seeds the sampler (default 0)
    metric, mode what the sampler minimizes or maximizes, as under halving: val_loss
                 (default), val_accuracy or val_mse; needs data.validation. Or a list of
                 metrics (and of modes, or none: each metric's own), which may also name
                 n_params (the network's parameter count, then recorded by every variant):
                 the sampler searches their Pareto front (multi-objective TPE or GP)

    search.parameters take lists (categorical) or distributions (as random search does);
    `seed` is a list of the seeds every configuration trains with (not searched), and data
    settings are lists (each data set is loaded when the file validates). The sweep's variants
    (`points`) are the corners of the space, which validate it; the ones trained are chosen
    while the sweep runs.
    """

    keys = ("trials", "batch", "random_seed", "metric", "mode")
    chooses_while_running = True
    distinct = False        # ask again when the sampler repeats a configuration (REASKS)
    reasks = REASKS         # ... at most this many times

    @property
    def refuse_distribution(self) -> Optional[str]:
        return None

    @property
    def batch(self) -> int:
        return self.search.batch or DEFAULT_BATCH

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, mode) of each objective."""
        return objectives(self.search.metric, self.search.mode)

    def check(self, clean: bool) -> list[Problem]:
        search, problems = self.search, []
        if search.trials is None:
            problems.append(Problem(("search", "trials"),
                                    f"required for {self.label} (how many configurations)"))
        for path, values in search.parameters.items():
            if isinstance(values, list):
                continue
            if path == "seed":
                problems.append(Problem(BASE + (path,), (
                    f"the seeds every configuration trains with, not searched under "
                    f"{self.label}: give a list")))
            elif path in DATA_SETTINGS:
                problems.append(Problem(BASE + (path,), (
                    f"a data setting takes a list under {self.label} (each data set is loaded "
                    "when the file validates)")))
        problems += objectives_problems(search.metric, search.mode)
        missing = self.missing_module()
        if missing:
            problems.append(Problem(("search", "method"), missing))
        return problems

    def missing_module(self) -> Optional[str]:
        """Why the sampler cannot be made here (a module not installed), or None."""
        return None

    def check_config(self) -> list[Problem]:
        return validation_problems(self.config, self.label)

    def check_dataset(self, dataset) -> list[Problem]:
        return dataset_problems(self.search.metric, dataset)

    def points(self) -> list[dict[str, Any]]:
        """The corners of the space: every list value and both ends of every range, combined
        (at most MAX_VARIANTS, the first ones in file order)."""
        choices = [[(path, coerce(path, v)) for v in _corners(values)]
                   for path, values in self.search.parameters.items()]
        return [dict(point) for point in itertools.islice(itertools.product(*choices),
                                                          MAX_VARIANTS)]

    def describe(self) -> str:
        n = len([p for p in self.search.parameters if p != "seed"])
        return (f"{self.name} over {n} parameter{'s' if n != 1 else ''}: {self.search.trials} "
                f"configurations in rounds of {self.batch}, on "
                f"{', '.join(f'{m} ({d})' for m, d in self.objectives)}, "
                f"random_seed {self.search.random_seed or 0}")

    def plan_lines(self, sweep: Any) -> list[str]:
        seeds = len(_seeds(sweep.config))
        return [f"{self.name}: {self.search.trials} configurations x {seeds} seed"
                f"{'s' if seeds != 1 else ''} = {self.search.trials * seeds} variants, chosen "
                f"while the sweep runs; the packs below train the {len(sweep.variants)} corners "
                "of the space that validate it"]

    def sampler(self, trials: int) -> Any:
        """The Optuna sampler, seeded; `trials` is the budget."""
        raise NotImplementedError

    def scheduler(self, sweep: Any, finished: Mapping[str, Mapping[str, float]],
                  earlier: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]] = ()
                  ) -> "OptunaScheduler":
        return OptunaScheduler(sweep, finished, self, list(earlier))


def _startup(trials: int) -> int:
    return max(1, min(STARTUP_TRIALS, trials // 3))


class TPE(ModelBased):
    """Tree-structured Parzen estimators (`optuna.samplers.TPESampler`, constant liar); a
    configuration asked again is asked anew (REASKS)."""

    name = "tpe"
    distinct = True

    def sampler(self, trials: int) -> Any:
        import optuna
        return optuna.samplers.TPESampler(**{"seed": self.search.random_seed or 0,
                                             "n_startup_trials": _startup(trials),
                                             **TPE_SETTINGS})


class GP(ModelBased):
    """A Gaussian process with expected improvement (`optuna.samplers.GPSampler`, which
    conditions on running trials; needs PyTorch); a configuration asked again is asked anew
    (GP_REASKS)."""

    name = "gp"
    distinct = True
    reasks = GP_REASKS

    def missing_module(self) -> Optional[str]:
        if importlib.util.find_spec("torch") is None:
            return ("method: gp needs PyTorch (Optuna's GPSampler): pip install "
                    "'backprop-sweeps[gp]', or use method: tpe")
        return None

    def sampler(self, trials: int) -> Any:
        import optuna
        return optuna.samplers.GPSampler(seed=self.search.random_seed or 0,
                                         n_startup_trials=_startup(trials))


# ---------------------------------------------------------------------------------------------
# The space


def _corners(values: Any) -> list:
    if isinstance(values, list):
        return values
    if values.distribution == "int_uniform":
        return [int(values.low), int(values.high)]
    return [float(values.low), float(values.high)]


def _seeds(config: Any) -> list[int]:
    return list(config.search.parameters.get("seed") or [config.seed])


class Space:
    """The searched parameters as Optuna distributions, and the way back.

    A list of numbers in ascending or descending order (learning rates, one-layer widths)
    becomes an int range over its positions, so the sampler sees the order (a categorical
    would not: 0.01 would be as far from 0.03 as from 3); any other list a categorical over
    its values (as text when a value is not a plain number, string or bool); a distribution
    a float or int range.
    """

    def __init__(self, parameters: Mapping[str, Any]):
        from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                          IntDistribution)
        self.paths = [p for p in parameters if p != "seed"]
        self.distributions: dict[str, Any] = {}
        self.lists: dict[str, list] = {}
        self.ordinal: set[str] = set()
        for path in self.paths:
            values = parameters[path]
            if isinstance(values, list) and _ordered(values):
                self.lists[path] = values       # an ordered scale: the sampler sees the order
                self.ordinal.add(path)
                self.distributions[path] = IntDistribution(0, len(values) - 1)
            elif isinstance(values, list):
                self.lists[path] = values
                self.distributions[path] = CategoricalDistribution(
                    [_choice(v) for v in values])
            elif values.distribution == "int_uniform":
                self.distributions[path] = IntDistribution(int(values.low), int(values.high))
            else:
                self.distributions[path] = FloatDistribution(
                    values.low, values.high, log=values.distribution == "log_uniform")
        self.ranges: dict[str, Distribution] = {p: v for p, v in parameters.items()
                                                if p in self.paths and p not in self.lists}
        # configurations in the space, or None when a range makes them countless
        self.size = None if self.ranges else math.prod(len(v) for v in self.lists.values())

    def point(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's params as setting values (a float drawn rounded as random search does)."""
        point = {}
        for path in self.paths:
            value = params[path]
            if path in self.ordinal:
                value = self.lists[path][value]
            elif path in self.lists:
                value = self.lists[path][[_choice(v) for v in self.lists[path]].index(value)]
            elif isinstance(value, float):
                value = float(f"{value:.{RANDOM_DIGITS}g}")
            point[path] = coerce(path, value)
        return point

    def unseen(self, seen: set[str], rng: Any) -> Optional[dict[str, Any]]:
        """A configuration (settings) not in `seen` (configurations as text), drawn with `rng`
        (a numpy Generator) as random search draws, or None when none is found: every one of
        a space of up to UNSEEN_LISTED lists' configurations is looked at, a larger space
        drawn up to UNSEEN_DRAWS times."""
        if self.size is not None and self.size <= UNSEEN_LISTED:
            points = ({p: coerce(p, v) for p, v in point.items()} for point in grid(self.lists))
            unseen = [point for point in points if _configuration(point) not in seen]
            return unseen[int(rng.integers(len(unseen)))] if unseen else None
        specs = {**self.lists, **self.ranges}
        for _ in range(UNSEEN_DRAWS):
            point = {p: coerce(p, draw_value(rng, specs[p])) for p in self.paths}
            if _configuration(point) not in seen and self.params(point) is not None:
                return point        # (a float rounded as drawn, still inside its range)
        return None

    def params(self, settings: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """A variant's settings as trial params, or None when they lie outside the space."""
        params = {}
        for path in self.paths:
            value = settings.get(path)
            if path in self.lists:
                if value not in self.lists[path]:
                    return None
                params[path] = (self.lists[path].index(value) if path in self.ordinal
                                else _choice(value))
            else:
                if path == "model.hidden":
                    if not isinstance(value, (tuple, list)) or len(value) != 1:
                        return None
                    value = value[0]
                spec = self.ranges[path]
                if not isinstance(value, (int, float)) or not spec.low <= value <= spec.high:
                    return None
                params[path] = int(value) if spec.distribution == "int_uniform" else float(value)
        return params


def _ordered(values: list) -> bool:
    """Numbers (or one-layer sizes) strictly ascending or descending."""
    numbers = [v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v for v in values]
    if len(numbers) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   for v in numbers):
        return False
    steps = [b - a for a, b in zip(numbers, numbers[1:])]
    return all(d > 0 for d in steps) or all(d < 0 for d in steps)


def _choice(value: Any) -> Any:
    """A list value as an Optuna categorical choice (None, bool, int, float or str)."""
    return value if value is None or isinstance(value, (bool, int, float, str)) \
        else format_value(value)


# ---------------------------------------------------------------------------------------------
# The scheduler


class OptunaScheduler(Scheduler):
    """Rounds of `batch` configurations asked from an in-memory study; see the module
    docstring. `history` holds one row per trial (HISTORY_COLUMNS)."""

    def __init__(self, sweep: Any, finished: Mapping[str, Mapping[str, float]],
                 method: ModelBased, warm: list[tuple[Mapping[str, Any], Mapping[str, float]]]):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        search = method.search
        self.sweep, self.method = sweep, method
        self.objectives, self.trials, self.batch = method.objectives, search.trials, method.batch
        self.record = tuple(m for m, _ in self.objectives if m in RECORDED)
        self.space = Space(search.parameters)
        self.seeds = _seeds(sweep.config)
        self.known: dict[str, Mapping[str, float]] = dict(finished)
        self.study = optuna.create_study(
            sampler=method.sampler(search.trials),
            directions=["minimize" if mode == "min" else "maximize"
                        for _, mode in self.objectives])
        self.history: list[dict] = []
        self.seen: set[str] = set()         # configurations asked or warm-started, as text
        self.repeats: list[Any] = []        # repeats left running until the round is told
        self.round = 0
        self.asked = 0
        self.pending: list[tuple[Any, list[Any]]] = []     # (trial, its seeds' variants)
        self._warm(warm)

    def _warm(self, warm: list[tuple[Mapping[str, Any], Mapping[str, float]]]) -> None:
        """Tell the study the configurations of other sweeps that lie inside this space."""
        import optuna

        base = self.sweep.variants[0].settings if self.sweep.variants else {}
        fixed = [p for p in base if p not in self.space.paths and p != "seed"]
        groups: dict[tuple, tuple[dict, list]] = {}
        for settings, metrics in warm:
            params = self.space.params(settings)
            if params is None or any(settings.get(p) != base[p] for p in fixed
                                     if p in settings) \
                    or any(m not in metrics for m in self.record):   # not recorded there
                continue
            key = tuple(sorted((k, repr(v)) for k, v in params.items()))
            groups.setdefault(key, (params, []))[1].append(metrics)
        for params, seeds in groups.values():
            value = self._value(seeds)
            state = "COMPLETE" if value is not None else "FAIL"
            self.study.add_trial(optuna.trial.create_trial(
                params=params, distributions=self.space.distributions,
                values=None if value is None else _listed(value),
                state=getattr(optuna.trial.TrialState, state)))
            configuration = _configuration(self.space.point(params))
            self.seen.add(configuration)
            self.history.append({"round": 0, "trial": len(self.history),
                                 "configuration": configuration,
                                 "value": value, "state": "WARM" if value is not None
                                 else "WARM_FAIL"})

    def ask(self) -> Optional[Round]:
        while self.asked < self.trials:
            self.round += 1
            count = min(self.batch, self.trials - self.asked)
            self.asked += count
            self.pending = []
            for _ in range(count):
                trial, point = self._ask_new()
                variants = [self.sweep.variant_at({**point, "seed": seed},
                                                  trial.number * len(self.seeds) + i)
                            for i, seed in enumerate(self.seeds)]
                self.pending.append((trial, variants))
            todo = {v.key: v for _, variants in self.pending for v in variants
                    if v.key not in self.known}
            if not todo:                    # replayed from the store: nothing to train
                self.tell({})
                continue
            total = math.ceil(self.trials / self.batch)
            return Round(work=tuple(Start(v) for v in todo.values()),
                         last=self.asked >= self.trials, final=True, record=self.record,
                         packs_per_worker=1,     # a round ends together: few large packs
                         label=f"{self.sweep.name} {self.method.name} round {self.round}/"
                               f"{total} ({count} configurations)")
        return None

    def _ask_new(self) -> tuple[Any, dict[str, Any]]:
        """(a trial, its configuration's settings): with `method.distinct`, a configuration not
        asked or warm-started before, where one is left (a repeat is asked again, at most
        `method.reasks` times, then an unseen configuration is drawn at random: see REASKS)."""
        import optuna

        exhausted = self.space.size is not None and len(self.seen) >= self.space.size
        tries = self.method.reasks if self.method.distinct and not exhausted else 1
        for attempt in range(1, tries + 1):
            trial = self.study.ask(self.space.distributions)
            point = self.space.point(trial.params)
            configuration = _configuration(point)
            if configuration not in self.seen or tries == 1:
                break
            if attempt == 1:        # forgotten: the model is as it was, its next draw differs
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:                   # a lie until the round is told: steers the next ask away
                self.repeats.append(trial)
        else:                       # the sampler insists: an unseen configuration at random
            unseen = self.space.unseen(self.seen, np.random.default_rng(
                [self.method.search.random_seed or 0, trial.number]))
            if unseen is None:      # none found: the last repeat stands, told its value
                self.repeats.remove(trial)
            else:
                self.study.enqueue_trial(self.space.params(unseen))
                trial = self.study.ask(self.space.distributions)
                point = self.space.point(trial.params)
                configuration = _configuration(point)
        self.seen.add(configuration)
        return trial, point

    def tell(self, results: Mapping[str, Any]) -> None:
        import optuna

        for key, result in results.items():
            metrics = dict(result.metrics)
            if result.status == Status.DIVERGED:
                metrics.setdefault("diverged_epoch", float(result.epoch or 0))
            self.known[key] = metrics
        for trial, variants in self.pending:           # in asking order: deterministic
            value = self._value([self.known[v.key] for v in variants])
            if value is None:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, value)
            self.history.append({"round": self.round, "trial": trial.number,
                                 "configuration": _configuration(self.space.point(trial.params)),
                                 "value": value, "state": "COMPLETE" if value is not None
                                 else "FAIL"})
        for trial in self.repeats:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.pending, self.repeats = [], []

    def _value(self, seeds: list[Mapping[str, float]]) -> Any:
        """What a configuration is told: the mean over its seeds of the metric, or of each
        objective (a list); None when it failed."""
        values = [_mean(seeds, metric) for metric, _ in self.objectives]
        if any(v is None for v in values):
            return None
        return values[0] if len(values) == 1 else values

    def tables(self) -> dict[str, bytes]:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(HISTORY_COLUMNS))
        writer.writeheader()
        writer.writerows({**row, "value": "" if row["value"] is None else
                          ";".join(repr(v) for v in _listed(row["value"]))}
                         for row in self.history)
        return {HISTORY_TABLE: out.getvalue().encode()}


def _listed(value: Any) -> list[float]:
    return list(value) if isinstance(value, list) else [value]


def _mean(seeds: list[Mapping[str, float]], metric: str) -> Optional[float]:
    """The mean over seeds of `metric`, or None when a seed diverged or lacks a finite value
    (a configuration that fails on some seed is a failed trial)."""
    values = [m.get(metric) for m in seeds]
    if any("diverged_epoch" in m for m in seeds) or \
            any(v is None or not math.isfinite(v) for v in values):
        return None
    return sum(values) / len(values)


def _configuration(point: Mapping[str, Any]) -> str:
    """A configuration as text, as variant names spell it: "lr=0.01 hidden=4"."""
    return " ".join(f"{path}={format_value(value)}" for path, value in point.items())
