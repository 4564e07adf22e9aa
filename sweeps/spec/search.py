"""Search: a validated sweep file -> variants, deterministically.

`SEARCH_METHODS` is the table of search methods, keyed by the name `search.method` takes:
grid and random (`sweeps.methods.static`), halving (`sweeps.methods.halving`), tpe and gp
(`sweeps.methods.model_based`). Each is one
`sweeps.methods.base.SearchMethod` that checks its own settings (`check`; `check_config` for
rules across sections, `check_dataset` for rules that need the data set), produces its points
(`points`: one {dotted path: value} per variant), describes itself (`describe`: what `sweeps
plan` prints after "variants: N") and makes the `Scheduler` that decides, round by round,
what trains (`scheduler_of`). A search key set in the file that the method does not read is a
problem.

Same file -> same variants, order and keys. A variant's `key` hashes every resolved setting
plus its data set's fingerprint; its `group` is the same hash without `seed`, so variants that
differ only by seed share a group. Settings added to the schema later are hashed only when set
(`sweeps.spec.config.ADDED_LATER`), so the keys of older files never change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

from sweeps.spec.config import SearchConfig, SweepConfig, flatten, hashed_settings
from sweeps.methods.base import Scheduler, SearchMethod
from sweeps.methods.halving import Halving
from sweeps.methods.model_based import GP, TPE
from sweeps.methods.static import SAMPLERS, Grid, Random, StaticScheduler
from sweeps.spec.parameters import check_parameters
from sweeps.spec.problems import Problem, suggest
from sweeps.records import FrozenSettings, Variant, format_value, without_seed

# Short names for the settings in a variant's name.
SHORT = {"train.optimizer": "opt", "train.weight_decay": "wd", "train.batch_size": "batch",
         "model.output_activation": "out", "model.activation": "act", "data.source": "data"}


# The table: YAML name -> method.
SEARCH_METHODS: dict[str, type[SearchMethod]] = {m.name: m for m in (Grid, Random, Halving,
                                                                   TPE, GP)}
# The search keys besides method and parameters; each read by some method.
OPTIONAL_KEYS = tuple(k for k in SearchConfig.model_fields if k not in ("method", "parameters"))


def method_of(config: SweepConfig) -> SearchMethod:
    """The search method of a validated config that has a search section."""
    return SEARCH_METHODS[config.search.method](config)


def scheduler_of(sweep: Any, finished: Mapping[str, Mapping[str, float]],
                 earlier: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]] = ()
                 ) -> Scheduler:
    """The scheduler of a loaded sweep (one round of its one variant without a search);
    finished: {variant key: final metrics} of the variants already FINISHED in the store;
    earlier: (settings, metrics) of other sweeps' variants (`SearchMethod.scheduler`)."""
    if sweep.config.search is None:
        return StaticScheduler(sweep, finished)
    return method_of(sweep.config).scheduler(sweep, finished, earlier)


def check_search(config: SweepConfig, whole: bool = True) -> tuple[SweepConfig, list[Problem]]:
    """Validate the search section: the method's name, search.parameters, the keys the method
    does not read, and the method's own rules (with `whole`, also those across sections).
    Returns the config with normalized parameter values, and the problems."""
    search = config.search
    if search is None:
        return config, []
    method = SEARCH_METHODS.get(search.method)
    if method is None:
        names = list(SEARCH_METHODS)
        unknown = Problem(("search", "method"), (
            f"unknown search method {search.method!r}{suggest(search.method, names)} "
            f"(one of: {', '.join(names)})"))
        return config, [unknown] + check_parameters(search.parameters, None)[1]
    parameters, problems = check_parameters(search.parameters,
                                            method(config).refuse_distribution)
    config = config.model_copy(
        update={"search": search.model_copy(update={"parameters": parameters})})
    checked = method(config)
    problems += _unread_keys(checked)
    problems += checked.check(clean=not problems)
    if whole:
        problems += checked.check_config()
    return config, problems


def _unread_keys(method: SearchMethod) -> list[Problem]:
    """A search key set in the file that the method, as configured, does not read."""
    search = method.search
    return [Problem(("search", key), f"only used by {_readers(key)}") for key in OPTIONAL_KEYS
            if key not in method.reads and key in search.model_fields_set
            and getattr(search, key) is not None]


def _readers(key: str) -> str:
    """"method: random (or sampler: random under method: halving)" for samples."""
    owners = [name for name, m in SEARCH_METHODS.items() if key in m.keys]
    text = " or ".join(f"method: {name}" for name in owners)
    through = [name for name in owners if name in SAMPLERS]
    drawing = [name for name, m in SEARCH_METHODS.items() if "sampler" in m.keys]
    if through and drawing:
        text += (f" (or sampler: {' or '.join(through)} under method: "
                 f"{' or '.join(drawing)})")
    return text


def expand(config: SweepConfig) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The settings of every variant (data defaults still None), and the swept paths in file order."""
    base = flatten(config)
    search = config.search
    if search is None or not search.parameters:
        return [dict(base)], ()
    return [{**base, **point} for point in method_of(config).points()], tuple(search.parameters)


def describe_search(config: SweepConfig, swept: tuple[str, ...]) -> str:
    """What `sweeps plan` says after "variants: N": the method's own line."""
    if config.search is None or not swept:
        return "no search: one variant"
    return method_of(config).describe()


# ---------------------------------------------------------------------------------------------
# Keys, groups and names


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def variant_key(settings: Mapping[str, Any], fingerprint: str) -> str:
    """Hash of every resolved setting plus the data fingerprint (a setting added later is
    hashed only when set: `sweeps.spec.config.ADDED_LATER`)."""
    return _hash({"settings": hashed_settings(settings), "data": fingerprint})


def variant_group(settings: Mapping[str, Any], fingerprint: str) -> str:
    """The key without the seed: variants that differ only by seed share it."""
    return variant_key(without_seed(settings), fingerprint)


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


def group_name(settings: Mapping[str, Any], swept: tuple[str, ...], default: str) -> str:
    """"lr=0.1 hidden=4": the name of a variant's group, its `variant_name` without the seed."""
    return variant_name(settings, tuple(without_seed(dict.fromkeys(swept))), default)


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
