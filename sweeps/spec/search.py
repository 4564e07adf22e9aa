"""Search spaces: a validated sweep file -> variants, deterministically.

Grid search is the Cartesian product of the value lists, the first listed parameter varying
slowest (file order). Random search draws `samples` variants from a NumPy generator seeded
with `search.random_seed`; each parameter in file order: a list is a uniform choice,
`{distribution: log_uniform | uniform | int_uniform, low, high}` a range (int_uniform includes
high). Drawn floats are rounded to 6 significant digits, so names and keys stay readable, and a
draw equal to an earlier one is drawn again. Same file -> same variants, order and keys.

A variant's `key` hashes every resolved setting plus its data set's fingerprint; its `group`
is the same hash without `seed`, so variants that differ only by seed share a group. Settings added to the schema later are hashed only when set
(`sweeps.spec.config.ADDED_LATER`), so the keys of older files never change.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any, Iterator, Mapping

import numpy as np

from sweeps.spec.config import Distribution, SweepConfig, coerce, flatten, hashed_settings
from sweeps.records import FrozenSettings, Variant, format_value

RANDOM_DIGITS = 6
# Short names for the settings in a variant's name.
SHORT = {"train.optimizer": "opt", "train.weight_decay": "wd", "train.batch_size": "batch",
         "model.output_activation": "out", "model.activation": "act", "data.source": "data"}


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def variant_key(settings: Mapping[str, Any], fingerprint: str) -> str:
    """Hash of every resolved setting plus the data fingerprint (a setting added later is
    hashed only when set: `sweeps.spec.config.ADDED_LATER`)."""
    return _hash({"settings": hashed_settings(settings), "data": fingerprint})


def variant_group(settings: Mapping[str, Any], fingerprint: str) -> str:
    """The key without the seed: variants that differ only by seed share it."""
    return variant_key({k: v for k, v in settings.items() if k != "seed"}, fingerprint)


def short_names(paths: tuple[str, ...]) -> dict[str, str]:
    """Dotted path -> short name (last part, or SHORT), the full path where two would clash."""
    short = {p: SHORT.get(p, p.split(".")[-1]) for p in paths}
    clashes = {s for s in short.values() if list(short.values()).count(s) > 1}
    return {p: (p if s in clashes else s) for p, s in short.items()}


def variant_name(settings: Mapping[str, Any], swept: tuple[str, ...], default: str,
                 names: Mapping[str, str] | None = None) -> str:
    """"lr=0.1 hidden=4 seed=3" from the swept settings; `default` when nothing is swept.
    `names`: short_names(swept), when the caller has it already."""
    names = names or short_names(swept)
    return " ".join(f"{names[p]}={format_value(settings[p])}" for p in swept) or default


def grid(parameters: Mapping[str, list]) -> Iterator[dict[str, Any]]:
    """Cartesian product in file order (the first parameter varies slowest)."""
    paths = list(parameters)
    for values in itertools.product(*(parameters[p] for p in paths)):
        yield dict(zip(paths, values))


def _draw(rng: np.random.Generator, spec: Any) -> Any:
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
        point = {path: coerce(path, _draw(rng, spec)) for path, spec in parameters.items()}
        fingerprint = json.dumps(point, sort_keys=True)
        if fingerprint not in seen:
            seen.add(fingerprint)
            points.append(point)
            if len(points) == samples:
                break
    return points


def expand(config: SweepConfig) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The settings of every variant (data defaults still None), and the swept paths in file order."""
    base = flatten(config)
    search = config.search
    if search is None or not search.parameters:
        return [dict(base)], ()
    if search.method == "grid":
        points = list(grid(search.parameters))
    else:
        points = random_points(search.parameters, search.samples, search.random_seed or 0)
    return [{**base, **point} for point in points], tuple(search.parameters)


def make_variants(settings: list[Mapping[str, Any]], data_keys: list[str],
                  swept: tuple[str, ...], default_name: str) -> tuple[Variant, ...]:
    """Frozen Variant records from resolved settings and their data fingerprints."""
    variants = []
    names = short_names(swept)
    for index, (resolved, data_key) in enumerate(zip(settings, data_keys)):
        frozen = FrozenSettings(resolved)
        variants.append(Variant(
            index=index,
            settings=frozen,
            key=variant_key(frozen, data_key),
            group=variant_group(frozen, data_key),
            name=variant_name(frozen, swept, default_name, names),
            data_key=data_key,
        ))
    return tuple(variants)
