"""A store as a cache of variants: what reusing FINISHED variants saves (issue 24, part 1).

(a) grow   configs/halving.yaml's parameters as a plain grid (3 optimizers x 6 learning rates
           x 3 widths x 2 initializers x 10 seeds = 1,080 variants, 189 epochs on
           breast_cancer: training dominates) is run once into a SQLite store (not timed).
           Then, alternately, each on its own copy of that store:
             seed+1  the grid with seeds 0..10 (1,188 variants: 1,080 reused, 108 trained)
             alone   the grid with seed 10 only (the 108 new variants, nothing to reuse)
           Target: seed+1 <= 1.3x alone.
(b) again  configs/card_4800.yaml (4,800 variants), alternately:
             first   on a copy of an empty store (schema made beforehand, as a store in use)
             again   `--fresh` (a new parent run) on a copy of the store a first run left:
                     every variant reusable, so nothing trains and Ray never starts
           Target: again <= 0.35x first.

Every figure is the wall time of the whole `sweeps run` command (Python start to exit), the
median of --reps runs of each, A and B alternating so the machine's load falls on both.
Prints figures and ratios measured in this run; asserts nothing (the machine is shared).
Usage: python benchmarks/bench_reuse.py [--reps 2] [--only grow again]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
HALVING_KEYS = ("sampler", "min_epochs", "eta", "metric", "mode", "brackets", "ranking")
SWEEPS = [sys.executable, "-m", "sweeps"]
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OPENBLAS_NUM_THREADS": "1"}


def grid_of_halving(workdir: Path, seeds: list[int], stem: str) -> Path:
    """configs/halving.yaml's space as a plain grid over `seeds` (one experiment for all)."""
    config = yaml.safe_load((REPO / "configs" / "halving.yaml").read_text())
    search = {k: v for k, v in config["search"].items() if k not in HALVING_KEYS}
    config["search"] = {**search, "method": "grid",
                        "parameters": {**search["parameters"], "seed": seeds}}
    config["name"] = "halving-space-grid"
    out = workdir / f"{stem}.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def run(file: Path, store: Path, *extra: str) -> tuple[float, str]:
    """(seconds, first report line) of `sweeps run FILE` in the store directory `store`."""
    clock = time.perf_counter()
    done = subprocess.run([*SWEEPS, "run", str(file), "--no-progress", *extra], cwd=store,
                          env={**ENV, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - clock
    if done.returncode != 0:
        raise SystemExit(f"sweeps run {file.name} failed:\n{done.stderr[-3000:]}")
    line = next((l for l in done.stdout.splitlines() if re.search(r"\d+ variants:", l)), "?")
    return seconds, line


def copy_store(template: Path, target: Path) -> Path:
    """A copy of the store `template` that is a store of its own: MLflow keeps absolute
    artifact locations, so without `relocate` a run on the copy would write its run
    directories into the template's mlruns (which then grows by 4,800 with every run)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(template, target)
    relocate(target, template)
    # The copy's ~200 MB on disk before the timed run: its write-back is not the command's.
    os.sync()
    return target


def relocate(store: Path, template: Path) -> None:
    """Point the experiments and runs of the copy `store` at its own artifact directory."""
    old, new = str(template.resolve()), str(store.resolve())
    with closing(sqlite3.connect(store / "mlflow.db")) as db, db:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))


def empty_store(workdir: Path) -> Path:
    """A store with MLflow's schema and nothing else (what every run copies)."""
    store = workdir / "empty"
    store.mkdir()
    subprocess.run([sys.executable, "-c", "from mlflow import MlflowClient; "
                    "MlflowClient('sqlite:///mlflow.db').search_experiments()"],
                   cwd=store, env=ENV, check=True, capture_output=True)
    return store


def alternate(reps: int, a, b) -> tuple[list[float], list[float]]:
    """a() and b() `reps` times each, alternating; their seconds."""
    times_a, times_b = [], []
    for _ in range(reps):
        times_a.append(a())
        times_b.append(b())
    return times_a, times_b


def report(name: str, label_a: str, times_a: list[float], label_b: str, times_b: list[float],
           target: float) -> None:
    ratio = statistics.median(times_a) / statistics.median(times_b)
    verdict = "met" if ratio <= target else "NOT met"
    print(f"{name}: {label_a} {fmt(times_a)}, {label_b} {fmt(times_b)}: "
          f"ratio {ratio:.2f}x (target <= {target}x: {verdict})", flush=True)


def fmt(times: list[float]) -> str:
    return f"median {statistics.median(times):.1f} s ({', '.join(f'{t:.1f}' for t in times)})"


def grow(workdir: Path, empty: Path, reps: int) -> None:
    base = grid_of_halving(workdir, list(range(10)), "grid-10-seeds")
    more = grid_of_halving(workdir, list(range(11)), "grid-11-seeds")
    alone = grid_of_halving(workdir, [10], "grid-seed-10")
    trained = copy_store(empty, workdir / "grow-base")
    seconds, line = run(base, trained)
    print(f"grow: the 1,080-variant grid once (not compared) {seconds:.1f} s: {line}", flush=True)

    def seed_plus_one() -> float:
        seconds, line = run(more, copy_store(trained, workdir / "grow-run"))
        print(f"  seed+1 {seconds:.1f} s: {line}", flush=True)
        return seconds

    def new_alone() -> float:
        seconds, line = run(alone, copy_store(trained, workdir / "grow-run"))
        print(f"  alone  {seconds:.1f} s: {line}", flush=True)
        return seconds

    times_a, times_b = alternate(reps, seed_plus_one, new_alone)
    report("(a) adding a seed", "seed+1", times_a, "new variants alone", times_b, 1.3)


def again(workdir: Path, empty: Path, reps: int) -> None:
    card = REPO / "configs" / "card_4800.yaml"
    finished = copy_store(empty, workdir / "again-base")
    seconds, line = run(card, finished)
    print(f"again: the first run that every later one reuses {seconds:.1f} s: {line}",
          flush=True)

    def first() -> float:
        seconds, line = run(card, copy_store(empty, workdir / "again-run"))
        print(f"  first  {seconds:.1f} s: {line}", flush=True)
        return seconds

    def reused() -> float:
        seconds, line = run(card, copy_store(finished, workdir / "again-run"), "--fresh")
        print(f"  again  {seconds:.1f} s: {line}", flush=True)
        return seconds

    times_b, times_a = alternate(reps, first, reused)
    report("(b) card_4800 again", "again", times_a, "first run", times_b, 0.35)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="runs of each command")
    parser.add_argument("--only", nargs="+", choices=["grow", "again"],
                        default=["grow", "again"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
        workdir = Path(tmp)
        empty = empty_store(workdir)
        if "grow" in args.only:
            grow(workdir, empty, args.reps)
        if "again" in args.only:
            again(workdir, empty, args.reps)


if __name__ == "__main__":
    main()
