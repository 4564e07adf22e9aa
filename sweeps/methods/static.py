"""Grid and random search: every point chosen before anything trains, so one round trains
every variant not yet finished to its end (`StaticScheduler`). They are also the samplers
successive halving draws its points with (`SAMPLERS`).

- grid: the Cartesian product of the value lists, the first listed parameter varying slowest
  (file order).
- random: `samples` draws from a NumPy generator seeded with `search.random_seed`; each
  parameter in file order: a list is a uniform choice, `{distribution: log_uniform | uniform |
  int_uniform, low, high}` a range (int_uniform includes high). Drawn floats are rounded to 6
  significant digits, so names and keys stay readable, and a draw equal to an earlier one is
  drawn again.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from sweeps.methods.base import Round, Scheduler, SearchMethod, Start
from sweeps.methods.validation import (RECORDED, VAL_METRICS, dataset_problems,
                                       objectives_problems, validation_problems)
from sweeps.spec.config import Distribution, coerce
from sweeps.spec.parameters import BASE
from sweeps.spec.problems import Problem

MAX_VARIANTS = 100_000
RANDOM_DIGITS = 6


class StaticScheduler(Scheduler):
    """One round: every variant of the sweep not yet finished, trained to its end and logged
    as its pack comes in (recording `record` too: metrics of a Pareto front)."""

    reads_results = False

    def __init__(self, sweep: Any, finished: Mapping[str, Any], record: tuple[str, ...] = ()):
        self.todo = [v for v in sweep.variants if v.key not in finished]
        self.label = sweep.name
        self.record = record
        self.asked = False

    def ask(self) -> Optional[Round]:
        if self.asked or not self.todo:
            return None
        self.asked = True
        return Round(work=tuple(Start(v) for v in self.todo), last=True, final=True,
                     record=self.record, label=self.label)

    def tell(self, results: Mapping[str, Any]) -> None:
        pass


class _Static(SearchMethod):
    """A method whose points are its variants, all trained to the end in one round. It reads
    `metric` (and `mode`) only to rank: one validation metric its outputs rank on instead of
    the default (`ranks_on`), or a list of two or more, the Pareto front `sweeps summary`
    and ``pareto.png`` show (n_params among them is then recorded by every variant)."""

    @property
    def reads(self) -> tuple[str, ...]:
        return self.keys + ("metric", "mode")

    @property
    def names_metric(self) -> bool:
        """As the method (not halving's sampler), the file names `search.metric` or
        `search.mode` (else the default ranking)."""
        search = self.search
        return self.role == "method" and ("metric" in search.model_fields_set
                                          or search.mode is not None)

    @property
    def ranks_on(self) -> Optional[str]:
        return super().ranks_on if self.names_metric else None

    def check(self, clean: bool) -> list[Problem]:
        return self.check_points(clean) + self._metric_problems()

    def check_points(self, clean: bool) -> list[Problem]:
        """Problems of the method's own settings (also as another method's sampler)."""
        return []

    def _metric_problems(self) -> list[Problem]:
        search = self.search
        return objectives_problems(search.metric, search.mode) if self.names_metric else []

    def check_config(self) -> list[Problem]:
        metrics = self.search.metric
        metrics = [metrics] if isinstance(metrics, str) else metrics
        if self.names_metric and set(metrics) & set(VAL_METRICS):
            return validation_problems(self.config, self.label)
        return []

    def check_dataset(self, dataset) -> list[Problem]:
        return dataset_problems(self.search.metric, dataset) if self.names_metric else []

    def scheduler(self, sweep: Any, finished: Mapping[str, Any], earlier=()) -> Scheduler:
        metrics = self.search.metric
        record = tuple(m for m in metrics if m in RECORDED) if isinstance(metrics, list) else ()
        return StaticScheduler(sweep, finished, record)


class Grid(_Static):
    """Every combination of the value lists; the first listed parameter varies slowest."""

    name = "grid"

    def check_points(self, clean: bool) -> list[Problem]:
        count = math.prod(len(v) for v in self.search.parameters.values())
        if clean and count > MAX_VARIANTS:
            return [Problem(BASE, f"the grid has {count} variants; at most {MAX_VARIANTS} are "
                                  "supported")]
        return []

    def points(self) -> list[dict[str, Any]]:
        return list(grid(self.search.parameters))

    def describe(self) -> str:
        n = len(self.search.parameters)
        return f"grid over {n} parameter{'s' if n != 1 else ''}"


class Random(_Static):
    """`samples` distinct draws seeded by `random_seed` (default 0); lists are uniform choices,
    mappings ranges (`config.Distribution`)."""

    name = "random"
    keys = ("samples", "random_seed")

    @property
    def refuse_distribution(self) -> Optional[str]:
        return None

    def check_points(self, clean: bool) -> list[Problem]:
        samples, parameters = self.search.samples, self.search.parameters
        if samples is None:
            return [Problem(("search", "samples"),
                            f"required for {self.label} (how many variants to draw)")]
        if samples > MAX_VARIANTS:
            return [Problem(("search", "samples"),
                            f"{samples} variants; at most {MAX_VARIANTS} are supported")]
        finite = all(isinstance(v, list) or v.distribution == "int_uniform"
                     for v in parameters.values())
        if clean and finite:
            distinct = math.prod(len(v) if isinstance(v, list) else int(v.high) - int(v.low) + 1
                                 for v in parameters.values())
            if samples > distinct:
                return [Problem(("search", "samples"), f"{samples} samples but the choices give "
                                                       f"only {distinct} distinct variants")]
        return []

    def points(self) -> list[dict[str, Any]]:
        return random_points(self.search.parameters, self.search.samples,
                             self.search.random_seed or 0)

    def describe(self) -> str:
        return (f"random search, {self.search.samples} samples, "
                f"random_seed {self.search.random_seed or 0}")


# The methods others may draw their points with (`search.sampler` under halving).
SAMPLERS: dict[str, type[SearchMethod]] = {m.name: m for m in (Grid, Random)}


# ---------------------------------------------------------------------------------------------
# Points


def grid(parameters: Mapping[str, list]) -> Iterator[dict[str, Any]]:
    """Cartesian product in file order (the first parameter varies slowest)."""
    paths = list(parameters)
    for values in itertools.product(*(parameters[p] for p in paths)):
        yield dict(zip(paths, values))


def draw_value(rng: np.random.Generator, spec: Any) -> Any:
    """One value of a list (uniformly) or a distribution (a float rounded to RANDOM_DIGITS)."""
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    if spec.distribution == "int_uniform":
        return int(rng.integers(int(spec.low), int(spec.high), endpoint=True))
    if spec.distribution == "log_uniform":
        value = math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
    else:
        value = rng.uniform(spec.low, spec.high)
    return float(f"{value:.{RANDOM_DIGITS}g}")


def random_points(parameters: Mapping[str, list | Distribution], samples: int, seed: int,
                  max_tries: int = 100) -> list[dict[str, Any]]:
    """`samples` distinct draws; fewer only if that many distinct ones cannot be found."""
    rng = np.random.default_rng(seed)
    points: list[dict[str, Any]] = []
    seen: set = set()
    for _ in range(samples * max_tries):
        point = {path: coerce(path, draw_value(rng, spec)) for path, spec in parameters.items()}
        fingerprint = json.dumps(point, sort_keys=True)
        if fingerprint not in seen:
            seen.add(fingerprint)
            points.append(point)
            if len(points) == samples:
                break
    return points
