"""Model-based search (tpe) against the full grid it searches, random search at the same budget,
Optuna's own loop and Ray Tune with OptunaSearch.

For each of four spaces of 256 configurations x 5 seeds (lists only, so every configuration
tpe can ask is a grid point):

  grid     the full grid with `sweeps run`'s library form (Ray, a SQLite store of its own):
           every configuration's mean validation loss over its seeds, the reference ranking.
  tpe      `search.method: tpe` with a quarter of the grid's configurations (64, in 4 rounds
           of 16), for 5 sampler seeds: where its pick (its best told configuration) ranks in
           the grid.
           A variant is bit-identical however it trains, so the study is replayed against the
           grid's logged values (exactly what resuming a tpe sweep does); the first seed also
           runs for real, and the benchmark checks that it trained the replay's variants, and
           times it: the share of its wall time spent asking and telling, and its phases
           (start-up: Ray and the store's parent run; rounds: training, logging, ask and tell;
           outputs: tables, plots). Its store exists beforehand (a copy of an empty one: MLflow
           builds a new store's schema once, in seconds, not per sweep).
  random   `random_points` over the same lists at the same budget, same 5 seeds: its pick's rank.
  optuna   (first seed) `study.optimize` with the same TPE sampler, one trial per configuration
           training its 5 seeds as one population with this project's engine (one
           `train_pack` per trial), in this process: the wall time against the tpe sweep's.
  tune     (--tune; first space, first seed) Ray Tune's Tuner with OptunaSearch, one trial
           per configuration training its seeds the same way: the wall time.

Prints figures measured in this run; asserts nothing (the machine is shared).
Usage: python benchmarks/bench_search.py [--seeds 5 | --sampler-seeds 5-9] [--spaces moons sine ...]
       [--tune] [--grids DIR] (keep the grids there and reuse them: replays in seconds)
       [--tpe KEY=VALUE ...] (TPESampler settings over the project's, for the replays)
       [--allow-repeats] (tpe keeps a configuration asked again, as before REASKS)
       [--method gp] (the replays search with gp instead of tpe; needs PyTorch)
       [--no-loops] (quality only: the grids and replays, no Optuna or Tune loop)
       [--speed-only] [--epochs-times 2] [--log-every 20] (speed only, every space's epochs
       scaled; the same number of curve points when --log-every is scaled alike)
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from sweeps import run_sweep
from sweeps.execution.machine import numerics_fingerprint
from sweeps.execution.plan import pack_variants
from sweeps.execution.training import train_pack
from sweeps.methods import model_based
from sweeps.methods.static import random_points
from sweeps.spec.search import scheduler_of
from sweeps.spec.sweep import load_sweep

LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
WDS = [0.0, 0.0001, 0.001, 0.01]
INITS = ["xavier_normal", "he_normal"]
# Four spaces of 256 configurations, where training dominates a sweep and a population pays:
# small networks, mini-batches of 16-32 (many steps of little arithmetic each: a pack of 40
# variants costs ~1.7x a pack of 5) and thousands of epochs. Three search only variant-role
# settings (a round's configurations share packs); breast_cancer searches widths too (a pack
# per width). Epochs are set so one configuration's 5 seeds train in ~2-3 s on a quiet core.
SPACES = {
    "moons": {"data": {"source": "moons", "validation": 0.25},
              "model": {"hidden": [8], "activation": "tanh", "output_activation": "sigmoid",
                        "bias": True},
              "train": {"loss": "bce", "optimizer": "momentum", "epochs": 3000,
                        "batch_size": 16},
              "parameters": {"train.lr": LRS, "train.weight_decay": WDS,
                             "train.momentum": [0.5, 0.8, 0.9, 0.95], "model.init": INITS}},
    "breast_cancer": {"data": {"source": "breast_cancer", "validation": 0.2},
                      "model": {"activation": "tanh", "output_activation": "sigmoid",
                                "bias": True},
                      "train": {"loss": "bce", "optimizer": "momentum", "epochs": 1000,
                                "batch_size": 32},
                      "parameters": {"train.lr": LRS, "model.hidden": [2, 4, 8, 16],
                                     "train.weight_decay": WDS, "model.init": INITS}},
    "sine": {"data": {"source": "sine", "validation": 0.25},
             "model": {"hidden": [8], "activation": "tanh", "output_activation": "identity",
                       "bias": True},
             "train": {"loss": "mse", "optimizer": "momentum", "epochs": 2000, "batch_size": 16},
             "parameters": {"train.lr": LRS, "train.momentum": [0.5, 0.8, 0.9, 0.95],
                            "train.weight_decay": WDS, "model.init": INITS}},
    "iris": {"data": {"source": "iris", "validation": 0.25},
             "model": {"hidden": [8], "activation": "relu", "output_activation": "softmax",
                       "bias": True},
             "train": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 3000,
                       "batch_size": 16},
             "parameters": {"train.lr": LRS, "train.weight_decay": WDS,
                            "train.beta1": [0.5, 0.8, 0.9, 0.95], "model.init": INITS}},
}
SEEDS = [0, 1, 2, 3, 4]     # per configuration: the grid's ranking is a mean over 5 seeds
BATCH = 16                  # configurations a round: 4 rounds for a budget of 64
TOP = 0.05


LOG_EVERY = 10              # epochs between curve points (--log-every)


def write(space: str, method: str, workdir: Path, random_seed: int = 0) -> Path:
    """The space as a sweep file: the grid, or tpe (gp) with a quarter of its configurations."""
    spec = SPACES[space]
    n = math.prod(len(v) for v in spec["parameters"].values())
    search = {"method": method, "parameters": {**spec["parameters"], "seed": SEEDS}}
    if method in ("tpe", "gp"):
        search.update(trials=n // 4, batch=BATCH, random_seed=random_seed)
    config = {"name": f"{space}-{method}-{random_seed}", "data": spec["data"],
              "model": spec["model"], "train": {"log_every": LOG_EVERY, **spec["train"]},
              "seed": 0, "search": search}
    path = workdir / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def ranking(frame) -> dict[str, int]:
    """{group key: rank (1 = best)} by the mean validation loss over seeds."""
    means = frame.groupby("group_key")["val_loss"].mean().sort_values()
    return {group: rank for rank, group in enumerate(means.index, start=1)}


def tpe_pick(path: Path, metrics: dict) -> tuple[str, list[str], float]:
    """(the best configuration's group, the variants asked (a configuration asked again
    repeats its seeds' keys), seconds in ask and tell), the study replayed against logged
    metrics, as a resumed sweep replays it."""
    sweep = load_sweep(path)
    clock = time.perf_counter()
    scheduler = scheduler_of(sweep, metrics)
    assert scheduler.ask() is None, "every configuration is a grid point: nothing to train"
    seconds = time.perf_counter() - clock
    best = scheduler.study.best_trial
    point = scheduler.space.point(best.params)
    told = [t for t in scheduler.study.trials if t.state.is_finished()]   # re-asked repeats too
    asked = [sweep.variant_at({**scheduler.space.point(t.params), "seed": s}, 0).key
             for t in told for s in SEEDS]
    return sweep.variant_at({**point, "seed": SEEDS[0]}, 0).group, asked, seconds


def random_pick(grid_sweep, ranks: dict[str, int], trials: int, seed: int) -> str:
    """The best of `trials` random configurations of the grid, by the grid's means."""
    lists = {p: v for p, v in grid_sweep.config.search.parameters.items() if p != "seed"}
    groups = [grid_sweep.variant_at({**point, "seed": SEEDS[0]}, 0).group
              for point in random_points(lists, trials, seed)]
    return min(groups, key=ranks.__getitem__)


def optuna_loop(path: Path, trials: int, seed: int) -> float:
    """Seconds of `study.optimize`: one trial per configuration, its seeds trained as one pack."""
    import optuna
    sweep = load_sweep(path)
    method = scheduler_of(sweep, {}).method
    lists = {p: v for p, v in sweep.config.search.parameters.items() if p != "seed"}

    def objective(trial):
        point = {p: values[trial.suggest_categorical(p, list(range(len(values))))]
                 for p, values in lists.items()}
        variants = [sweep.variant_at({**point, "seed": s}, i) for i, s in enumerate(SEEDS)]
        results = [r for pack in pack_variants(variants, sweep.datasets, 1, per_worker=1)
                   for r in train_pack(pack, sweep.datasets[pack.data_key])]
        return float(np.mean([r.metrics["val_loss"] for r in results]))

    clock = time.perf_counter()
    study = optuna.create_study(sampler=method.sampler(trials))
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - clock


def tune_loop(path: Path, trials: int, seed: int) -> float:
    """Seconds of Ray Tune's Tuner with OptunaSearch, one trial per configuration, Ray's start
    included."""
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch
    sweep = load_sweep(path)
    lists = {p: v for p, v in sweep.config.search.parameters.items() if p != "seed"}
    clock = time.perf_counter()     # Ray's start counts, as it does in the sweep's wall time
    ray.init(include_dashboard=False, log_to_driver=False)
    datasets = ray.put(dict(sweep.datasets))

    def trainable(config):
        data = ray.get(datasets)
        point = {p: lists[p][config[p]] for p in lists}
        variants = [sweep.variant_at({**point, "seed": s}, i) for i, s in enumerate(SEEDS)]
        results = [r for pack in pack_variants(variants, data, 1, per_worker=1)
                   for r in train_pack(pack, data[pack.data_key])]
        return {"val_loss": float(np.mean([r.metrics["val_loss"] for r in results]))}

    space = {p: tune.choice(list(range(len(v)))) for p, v in lists.items()}
    tuner = tune.Tuner(trainable, param_space=space, tune_config=tune.TuneConfig(
        search_alg=OptunaSearch(metric="val_loss", mode="min", seed=seed),
        num_samples=trials), run_config=tune.RunConfig(storage_path=str(path.parent / "tune"),
                                                        verbose=0))
    tuner.fit()
    seconds = time.perf_counter() - clock
    ray.shutdown()
    return seconds


def seed_list(text: str) -> list[int]:
    """"5-9" or "0,3,7" (or both: "0-4,9") as a list of seeds."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        try:
            seeds += list(range(int(low), int(high or low) + 1))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a seed or a range like 5-9")
    return seeds


def seed_text(seeds: list[int]) -> str:
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 1 else ",".join(map(str, seeds))


def tpe_settings(pairs: list[str]) -> None:
    """Put KEY=VALUE pairs over the project's TPESampler settings for this run."""
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--tpe {pair!r}: give KEY=VALUE, e.g. multivariate=false")
        model_based.TPE_SETTINGS[key] = yaml.safe_load(value)


def tpe_text() -> str:
    repeats = "re-asked" if model_based.TPE.distinct else "kept"
    return (" ".join(f"{k}={v}" for k, v in model_based.TPE_SETTINGS.items())
            + f", repeats {repeats}")


def empty_store(work: Path) -> Path:
    """An SQLite MLflow store with its schema built (copied for each sweep)."""
    from mlflow import MlflowClient
    path = work / "empty.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def store(empty: Path, name: str) -> str:
    path = empty.with_name(f"{name}.db")
    shutil.copy(empty, path)
    return f"sqlite:///{path}"


GRID_COLUMNS = ["group_key", "variant_key", "val_loss", "train_loss"]


def grid_frame(path: Path, sweep, work: Path, empty: Path, grids: Path | None
               ) -> tuple["pd.DataFrame", str]:
    """(the grid's frame (GRID_COLUMNS, one row per variant), a line saying how it came):
    trained with `sweeps run`'s library form, or, with `grids`, read from
    grids/<space>-<digest>/ when an earlier run kept it there. The digest hashes the grid's
    sweep file (space, data, model, training, seeds) and the numerics fingerprint, so a changed
    space or engine trains anew; the kept frame must also hold exactly the sweep's variant
    keys. The store is kept beside the frame: a run stopped mid-grid resumes it."""
    import pandas as pd
    if grids is None:
        return _train_grid(path, store(empty, path.stem), work / path.stem)
    digest = hashlib.sha256((path.read_text() + numerics_fingerprint()).encode()).hexdigest()
    kept = grids / f"{path.stem.removesuffix('-grid-0')}-{digest[:12]}"
    csv = kept / "frame.csv"
    if csv.exists():
        frame = pd.read_csv(csv, usecols=GRID_COLUMNS)
        if sorted(frame["variant_key"]) == sorted(v.key for v in sweep.variants):
            return frame, f"kept in {kept} (not trained in this run)"
        print(f"  {csv} does not hold this grid's variant keys: training it again")
    kept.mkdir(parents=True, exist_ok=True)
    db = kept / "grid.db"
    if not db.exists():
        shutil.copy(empty, db)
    frame, line = _train_grid(path, f"sqlite:///{db}", kept / "out")
    frame.to_csv(kept / "frame.partial.csv", index=False)
    (kept / "frame.partial.csv").replace(csv)       # whole or absent
    return frame, f"{line}; kept in {kept}"


def _train_grid(path: Path, tracking_uri: str, out: Path) -> tuple["pd.DataFrame", str]:
    clock = time.perf_counter()
    grid = run_sweep(path, tracking_uri=tracking_uri, progress=False, out=out)
    wall = time.perf_counter() - clock
    return grid.frame[GRID_COLUMNS], phases(grid, wall)


def phases(outcome, wall: float) -> str:
    """The sweep's wall time split into its phases (and the outputs into their steps)."""
    t = outcome.timings
    steps = ", ".join(f"{name.removeprefix('outputs.').replace('_', ' ')} {seconds:.1f}"
                      for name, seconds in t.items() if name.startswith("outputs."))
    return (f"wall {wall:.1f} s = start-up {t['startup']:.1f} (Ray {t.get('ray_start', 0):.1f})"
            f" + rounds {t['train_and_log']:.1f} (logging {t['logging']:.1f}, ask+tell "
            f"{t['deciding']:.2f}) + outputs "
            f"{t['results']:.1f} ({steps}) + "
            f"{wall - t['startup'] - t['train_and_log'] - t['results']:.1f}")


class TreeCPU:
    """CPU seconds of this process and every process started under it (Ray's node, its
    workers, the plot helper), read from /proc every 0.2 s while running: a process's last
    0.2 s before it exits can be missed. Linux only; elsewhere it reports nothing."""

    def __init__(self) -> None:
        import threading
        self.seen: dict[int, float] = {}          # pid -> CPU seconds (children only)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.start = os.times()

    def __enter__(self) -> "TreeCPU":
        if Path("/proc/self/stat").exists():
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        end = os.times()
        self.own = (end.user + end.system - self.start.user - self.start.system
                    - self.sampling)            # (the sampler's own reading left out)
        self.others = sum(self.seen.values())

    sampling = 0.0

    def _sample(self) -> None:
        tick, me = os.sysconf("SC_CLK_TCK"), os.getpid()
        while not self.stop.wait(0.2):
            parents, cpu = {}, {}
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2:].split()
                parents[int(pid)] = int(fields[1])
                cpu[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
            tree, grown = {me}, True
            while grown:
                grown = False
                for pid, parent in parents.items():
                    if parent in tree and pid not in tree:
                        tree.add(pid)
                        grown = True
            for pid in tree - {me}:
                self.seen[pid] = cpu[pid]
            self.sampling = time.thread_time()


def speed(space: str, work: Path, empty: Path, tune_too: bool,
          metrics: dict | None = None) -> dict[str, float]:
    """The tpe sweep (seed 0) for real against Optuna's loop (and Ray Tune's): printed, and
    their ratios. With the grid's `metrics`, also whether the sweep trained the replay's
    variants."""
    path = write(space, "tpe", work, 0)
    n = math.prod(len(v) for v in SPACES[space]["parameters"].values())
    clock = time.perf_counter()
    with TreeCPU() as cpu:
        real = run_sweep(path, tracking_uri=store(empty, f"{space}-tpe"), progress=False,
                         out=work / f"{space}-tpe")
    wall = time.perf_counter() - clock
    print(f"  tpe sweep (seed 0): {phases(real, wall)}")
    print(f"    CPU {cpu.own + cpu.others:.1f} s: this process {cpu.own:.1f}, the processes "
          f"under it (Ray's node and workers, the plot helper) {cpu.others:.1f}")
    same = ""
    if metrics is not None:
        _, asked, _ = tpe_pick(path, metrics)
        same = (f"; trained the replay's variants: "
                f"{sorted(real.frame['variant_key']) == sorted(set(asked))}")
    print(f"    ask+tell = {real.timings['deciding'] / wall:.1%} of wall{same}")
    loop_cpu = time.process_time()
    loop = optuna_loop(path, n // 4, 0)
    loop_cpu = time.process_time() - loop_cpu
    rounds = real.timings["train_and_log"]
    print(f"  optuna study.optimize: {loop:.1f} s = {loop / wall:.2f}x the tpe sweep's wall, "
          f"{loop / rounds:.2f}x its rounds; CPU {loop_cpu:.1f} s")
    row = {"share": real.timings["deciding"] / wall, "optuna": loop / wall,
           "optuna_vs_rounds": loop / rounds}
    if tune_too:
        tuned = tune_loop(path, n // 4, 0)
        print(f"  ray tune + OptunaSearch: {tuned:.1f} s = {tuned / wall:.2f}x the tpe sweep, "
              f"{tuned / rounds:.2f}x its rounds")
        row["tune"] = tuned / wall
    return row


def main() -> None:
    global LOG_EVERY
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="sampler seeds 0..N-1")
    parser.add_argument("--sampler-seeds", type=seed_list, default=None,
                        help="the sampler seeds instead, e.g. 5-9 or 0,3,7 (tpe's random_seed "
                             "and random search's)")
    parser.add_argument("--allow-repeats", action="store_true",
                        help="tpe (gp) keeps a configuration the sampler asks again (a trial "
                             "spent), as before model_based.REASKS")
    parser.add_argument("--tpe", nargs="+", default=[], metavar="KEY=VALUE",
                        help="TPESampler settings over the project's (model_based.TPE_SETTINGS)"
                             ", e.g. multivariate=false n_ei_candidates=64 (values as YAML)")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--method", choices=["tpe", "gp"], default="tpe",
                        help="the model-based method the replays search with (gp needs "
                             "PyTorch); the speed comparison is tpe's")
    parser.add_argument("--tune", action="store_true", help="also Ray Tune + OptunaSearch")
    parser.add_argument("--no-loops", action="store_true",
                        help="quality only: no tpe sweep, Optuna loop or Ray Tune")
    parser.add_argument("--speed-only", action="store_true",
                        help="no grid and no replays: the tpe sweep against the loops")
    parser.add_argument("--epochs-times", type=float, default=1.0,
                        help="scale every space's epochs (how the ratios move with training)")
    parser.add_argument("--log-every", type=int, default=LOG_EVERY,
                        help="epochs between curve points (logging grows with their number)")
    parser.add_argument("--grids", type=Path, default=None,
                        help="keep each space's grid (store and frame) under this directory "
                             "and reuse it when the space is unchanged: replays in seconds")
    args = parser.parse_args()
    LOG_EVERY = args.log_every
    seeds = args.sampler_seeds or list(range(args.seeds))
    tpe_settings(args.tpe)
    model_based.TPE.distinct = model_based.GP.distinct = not args.allow_repeats
    grids = args.grids.resolve() if args.grids else None     # before the chdir below
    for spec in SPACES.values():
        spec["train"]["epochs"] = max(1, round(spec["train"]["epochs"] * args.epochs_times))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    os.chdir(work)
    empty = empty_store(work)
    summary = []
    for space in args.spaces:
        tune_too = args.tune and space == args.spaces[0]
        if args.speed_only:
            print(f"\n{space}: epochs {SPACES[space]['train']['epochs']}")
            summary.append({"space": space, **speed(space, work, empty, tune_too)})
            continue
        grid_path = write(space, "grid", work)
        grid_sweep = load_sweep(grid_path)
        frame, grid_line = grid_frame(grid_path, grid_sweep, work, empty, grids)
        ranks = ranking(frame)
        n = len(ranks)
        top = max(1, math.ceil(TOP * n))
        metrics = {r.variant_key: {"val_loss": r.val_loss, "train_loss": r.train_loss}
                   for r in frame.itertuples()}
        tpe_ranks, random_ranks, decide, distinct = [], [], [], []
        for seed in seeds:
            path = write(space, args.method, work, seed)
            group, asked, seconds = tpe_pick(path, metrics)
            tpe_ranks.append(ranks[group])
            decide.append(seconds)
            distinct.append(len(set(asked)) // len(SEEDS))
            random_ranks.append(ranks[random_pick(grid_sweep, ranks, n // 4, seed)])
        print(f"\n{space}: {n} configurations x {len(SEEDS)} seeds; budget {n // 4} in rounds of "
              f"{BATCH}; top {TOP:.0%} = rank <= {top}")
        print(f"  grid sweep: {grid_line}")
        settings = tpe_text() if args.method == "tpe" else "GPSampler's (model_based.GP)"
        print(f"  sampler seeds {seed_text(seeds)}; {args.method} settings {settings}")
        print(f"  {args.method} picks' ranks    {tpe_ranks}  mean {np.mean(tpe_ranks):.2f}  "
              f"in top {TOP:.0%}: {sum(r <= top for r in tpe_ranks)}/{len(seeds)}")
        print(f"    distinct configurations asked: {distinct}")
        print(f"  random picks' ranks {random_ranks}  mean {np.mean(random_ranks):.2f}  "
              f"in top {TOP:.0%}: {sum(r <= top for r in random_ranks)}/{len(seeds)}")
        print(f"  ask+tell replayed (Optuna import and study included): "
              f"{min(decide):.2f}-{max(decide):.2f} s")
        row = {"space": space, "top": sum(r <= top for r in tpe_ranks) >= math.ceil(
            0.6 * len(seeds)), "beats": np.mean(tpe_ranks) < np.mean(random_ranks)}
        if not args.no_loops:
            row.update(speed(space, work, empty, tune_too, metrics))
        summary.append(row)
    print("\nsummary")
    for row in summary:
        print("  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in row.items()))


if __name__ == "__main__":
    main()
