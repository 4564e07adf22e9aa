"""Replay successive halving on every-epoch validation curves: how `trend` should weigh a
curve's last eta-fold (`sweeps.methods.brackets.TREND_WEIGHT`).

Each space is trained once as a plain grid in this process, measuring the validation loss at
every epoch; then the search's own bookkeeping (`Search`, with `TREND_WEIGHT` set to each
weight in turn) is replayed on those curves under several schedules, value and trend
brackets together as `ranking: both` runs them. Training continues exactly across rungs, so
a replay makes the decisions a real halving run makes. Printed: where the pick ranks among
the space's configurations by final validation loss (mean over seeds), and the work.

Spaces: benchmarks/spaces/late_bloomers.yaml, and the same grid on moons (mini-batches of
16), wine (softmax) and breast cancer split with another data_seed.
Usage: python benchmarks/replay_trend.py [--weights 0.5 0.75 1.0]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
import yaml

from sweeps.methods import brackets as halving
from sweeps.methods.brackets import Schedule, Search
from sweeps.execution.plan import make_packs
from sweeps.execution.training import fit_pack
from sweeps.spec.sweep import load_sweep

REPO = Path(__file__).resolve().parent.parent
LATE = REPO / "benchmarks" / "spaces" / "late_bloomers.yaml"
SPACES = {
    "late-bloomers": {},
    "moons": {"data": {"source": "moons"}, "train": {"batch_size": 16}},
    "wine": {"data": {"source": "wine"}, "model": {"output_activation": "softmax"},
             "train": {"loss": "cross_entropy"}},
    "breast-cancer, data_seed 1": {"data_seed": 1},
}
SCHEDULES = [((3, 9, 27, 81, 243, 300), (0, 1, 2)), ((10, 30, 90, 270, 300), (0, 1)),
             ((4, 12, 36, 108, 300), (0, 1, 2)), ((5, 15, 45, 135, 300), (0, 1, 2)),
             ((6, 18, 54, 162, 300), (0, 1, 2)), ((11, 33, 99, 297, 300), (0, 1))]


def dense_curves(overrides: dict, workdir: Path) -> tuple[dict, dict, list]:
    """({variant key: val_loss at epochs 0..epochs}, {key: group}, groups in sweep order) of
    the late-bloomer grid with `overrides`, trained with a validation log every epoch."""
    config = yaml.safe_load(LATE.read_text())
    for section, values in overrides.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    config["train"]["log_every"] = 1
    config["search"] = {"method": "grid", "parameters": config["search"]["parameters"]}
    path = workdir / "space.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    sweep = load_sweep(path)
    curves = {}
    for pack in make_packs(sweep, workers=1):
        for result in fit_pack(pack, sweep.datasets[pack.data_key])[1]:
            curves[result.key] = np.append(result.curves["val_loss"], result.metrics["val_loss"])
    groups = {v.key: v.group for v in sweep.variants}
    return curves, groups, list(dict.fromkeys(groups.values()))


def replay(curves: dict, groups: dict, rungs, starts, weight: float) -> tuple[int, float]:
    """(the pick's rank by final val_loss among all groups, variant-epochs / the grid's)."""
    halving.TREND_WEIGHT = weight
    schedule = Schedule(rungs=rungs, starts=starts, eta=3, metric="val_loss", mode="min",
                        rankings=("value", "trend"))
    search = Search.begin(schedule, list(groups.items()))
    reached = {}
    for rounds in schedule.rounds():
        for key in search.training():
            for k in rounds:
                search.record(key, k, curves[key][rungs[k]])
            reached[key] = rungs[rounds[-1]]
        search.decide(rounds)
    final = {}
    for key, group in groups.items():
        final.setdefault(group, []).append(curves[key][-1])
    order = sorted(final, key=lambda g: np.mean(final[g]))
    return order.index(search.pick()) + 1, sum(reached.values()) / (len(groups) * rungs[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.6, 0.75, 1.0])
    args = parser.parse_args()
    saved = halving.TREND_WEIGHT
    spaces = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in SPACES.items():
            spaces[name] = dense_curves(copy.deepcopy(overrides), Path(tmp))
            print(f"trained {name}: {len(spaces[name][2])} configurations")
    totals = dict.fromkeys(args.weights, 0)
    for rungs, starts in SCHEDULES:
        print(f"\nrungs {rungs}, brackets entering at {[rungs[s] for s in starts]}")
        for weight in args.weights:
            cells = []
            for name, (curves, groups, _) in spaces.items():
                rank, work = replay(curves, groups, rungs, starts, weight)
                totals[weight] += rank
                cells.append(f"{name} #{rank} ({work:.0%})")
            print(f"  weight {weight:4.2f}: " + ", ".join(cells))
    halving.TREND_WEIGHT = saved
    print("\nsum of the picks' ranks: " + ", ".join(f"{w}: {t}" for w, t in totals.items()))


if __name__ == "__main__":
    main()
