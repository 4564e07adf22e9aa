"""The plan: variants that can train as one population are packed together (one Ray task per
pack), and packs are split so every worker stays busy and results come back early.

Packs are sized by their estimated cost (`pack_work`), not by their variant count: a pack of
64-wide networks costs many times one of 4-wide ones, and a worker left with the one long
pack at the end holds the whole sweep up. They are handed out longest first (the LPT rule),
so the short ones fill the gaps at the end.

Variants in a pack share every setting of the data and pack roles (`sweeps.spec.config.Role`: layer
sizes, activations, loss, optimizer kind, epochs, batch size, data set and data order); they may
differ in the variant-role settings (learning rate, optimizer constants, initializer, seed).
`describe` is what `sweeps plan` prints.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from sweeps.spec.config import PACK_SHARED
from sweeps.spec.search import describe_search, method_of
from sweeps.records import Pack, Variant, format_value
from sweeps.execution.training import layer_sizes
from sweeps.vocabulary import DEFAULT_RANKING

PACKS_PER_WORKER = 4      # aim for at least this many packs per worker where variants allow
MAX_PACK = 64             # variants per pack at most

# Rough cost of core.train on one core: per optimizer step of a pack, per multiply-add, and
# per element of the activations and parameters touched in a step (elementwise work dominates
# small networks). Fitted by benchmarks/fit_plan_constants.py on the development machine (2 cores, NumPy
# 2.x); off by up to ~2x on other shapes, which is what "rough" means in `sweeps plan`.
SECONDS_PER_STEP = 1.1e-4
SECONDS_PER_MADD = 5.0e-10
SECONDS_PER_ELEMENT = 6.6e-9


def make_packs(sweep, workers: int = 2, skip: Collection[str] = ()) -> list[Pack]:
    """Pack the sweep's variants (leaving out keys in `skip`) for `workers` workers."""
    skip = set(skip)
    return pack_variants([v for v in sweep.variants if v.key not in skip], sweep.datasets,
                         workers)


def pack_variants(todo: Sequence[Variant], datasets: Mapping[str, Any],
                  workers: int = 2, per_worker: int = PACKS_PER_WORKER) -> list[Pack]:
    """Pack variants for `workers` workers, longest pack first.

    Variants are grouped by PACK_SHARED; each group is split into near-equal packs of at most
    MAX_PACK variants and of at most about 1 / (per_worker * workers) of the whole
    estimated work, so there are >= per_worker packs per worker when there are enough
    variants. Within a pack the variants keep their order.
    """
    if not todo:
        return []
    groups: dict[tuple, list[Variant]] = {}
    for variant in todo:
        key = (variant.data_key,) + tuple(repr(variant.settings[p]) for p in PACK_SHARED)
        groups.setdefault(key, []).append(variant)
    cost = {key: pack_work(_pack(members), datasets[members[0].data_key])["seconds"]
            for key, members in groups.items()}
    share = sum(cost.values()) / (max(1, per_worker) * max(1, workers))
    packs: list[tuple[float, Pack]] = []
    for key, members in groups.items():
        n_packs = min(len(members), max(math.ceil(len(members) / MAX_PACK),
                                        math.ceil(cost[key] / share - 1e-9)))
        for chunk in np.array_split(np.arange(len(members)), n_packs):
            pack = _pack([members[i] for i in chunk])
            packs.append((pack_work(pack, datasets[pack.data_key])["seconds"], pack))
    packs.sort(key=lambda item: -item[0])          # stable: equal costs keep their order
    return [replace(pack, index=i) for i, (_, pack) in enumerate(packs)]


def _pack(variants: Sequence[Variant]) -> Pack:
    """A pack of `variants` (its index is set once the packs are ordered)."""
    return Pack(index=0, variants=tuple(variants), data_key=variants[0].data_key,
                shared_paths=PACK_SHARED)


# ---------------------------------------------------------------------------------------------
# Work estimate


def pack_work(pack: Pack, dataset) -> dict[str, float]:
    """variant_epochs, multiply_adds, steps and seconds (rough, one core) of one pack."""
    shared = pack.shared
    sizes = layer_sizes(shared, dataset)
    n_train = dataset.X_train.shape[0]
    batch = min(shared["train.batch_size"] or n_train, n_train)
    epochs = shared["train.epochs"]
    steps = epochs * math.ceil(n_train / batch)
    K = len(pack.variants)
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    # forward X @ W once, backward twice (dW and dA) per layer, for every training row
    madds = K * epochs * 3 * n_train * weights
    elements = K * (epochs * n_train * sum(sizes[1:]) + steps * weights)
    return {
        "variant_epochs": K * epochs,
        "multiply_adds": madds,
        "steps": steps,
        "seconds": (steps * SECONDS_PER_STEP + madds * SECONDS_PER_MADD
                    + elements * SECONDS_PER_ELEMENT),
    }


def _human_seconds(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _sizes_text(packs: list[Pack]) -> str:
    counts: dict[int, int] = {}
    for pack in packs:
        counts[len(pack.variants)] = counts.get(len(pack.variants), 0) + 1
    return ", ".join(f"{n} of {size}" for size, n in sorted(counts.items(), reverse=True))


def _swept_text(sweep) -> list[str]:
    parameters = sweep.config.search.parameters if sweep.config.search else {}
    width = max((len(p) for p in sweep.swept), default=0)
    lines = []
    for path in sweep.swept:
        spec = parameters[path]
        if isinstance(spec, list):
            shown = ", ".join(format_value(v) for v in spec)
            lines.append(f"  {path:<{width}}  {len(spec)} value{'s' if len(spec) != 1 else ''}: {shown}")
        else:
            lines.append(f"  {path:<{width}}  {spec.distribution} from {format_value(spec.low)} "
                         f"to {format_value(spec.high)}")
    return lines


def describe(sweep, packs: list[Pack], workers: int | None = None) -> str:
    """The text `sweeps plan` prints: variants, data, swept parameters, packs and work.

    workers: when given, also the rough wall time with packs handed out in order to whichever
    worker is free first.
    """
    n = len(sweep.variants)
    todo = sum(len(p.variants) for p in packs)
    how = describe_search(sweep.config, sweep.swept)
    lines = [f"sweep {sweep.name} ({sweep.path})", f"  config hash {sweep.config_hash}",
             f"variants: {n} ({how})"]
    if todo != n:
        lines.append(f"  to run: {todo} ({n - todo} already finished)")
    groups = len({v.group for v in sweep.variants})
    if groups != n:
        lines.append(f"  groups (same settings but seed): {groups}, {n / groups:.3g} seeds each on average")
    ranking = sweep.ranking_metric
    lines.append(f"  ranked on: {ranking} (search.metric)" if ranking else
                 f"  ranked on: the first of {', '.join(DEFAULT_RANKING)} it logs (the default)")
    lines.append("data:")
    for key, dataset in sweep.datasets.items():
        lines.append(f"  {dataset.describe()}  [{key}]")
    if sweep.swept:
        lines.append("swept:")
        lines += _swept_text(sweep)
    lines.append(f"packs: {len(packs)}" + (f" ({_sizes_text(packs)} variants)" if packs else ""))
    total = {"variant_epochs": 0, "multiply_adds": 0, "seconds": 0.0}
    longest = 0.0
    loads = [0.0] * (workers or 1)
    for pack in packs:
        work = pack_work(pack, sweep.datasets[pack.data_key])
        for k in total:
            total[k] += work[k]
        longest = max(longest, work["seconds"])
        loads[loads.index(min(loads))] += work["seconds"]
    method = method_of(sweep.config) if sweep.config.search is not None else None
    share = method.work_share(sweep) if method is not None else None
    lines += method.plan_lines(sweep) if method is not None else []
    if packs:
        lines.append(
            f"work: {total['variant_epochs']:,} variant-epochs, {total['multiply_adds']:.3g} "
            f"multiply-adds; roughly {_human_seconds(total['seconds'])} of one core "
            f"(longest pack {_human_seconds(longest)})" if share is None else
            f"work: {share[0]:.0%} to {share[1]:.0%} of the plain grid's "
            f"{total['variant_epochs']:,} variant-epochs (which would take roughly "
            f"{_human_seconds(total['seconds'])} of one core)"
        )
        share = share or (1.0, 1.0)
        if workers:
            lines.append(f"  on {workers} worker{'s' if workers != 1 else ''}: roughly "
                         f"{_human_seconds(max(loads) * share[1])} of training, plus start-up")
    return "\n".join(lines)
