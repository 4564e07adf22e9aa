"""Successive halving against the plain grid it searches, and against Ray Tune's ASHA.

For each space (configs/halving.yaml, benchmarks/spaces/late_bloomers.yaml):

  grid     the same file as a plain grid (`search.method: grid`), run with `sweeps run`
           (the whole command is timed) on a SQLite store of its own, new (MLflow first
           creates its schema, seconds of CPU) and, again, existing (a copy of an empty
           store, as a store already in use looks; --stores picks): the reference
           ranking of every configuration by validation loss (mean over seeds at the last
           epoch), the wall time and, of it, the training and logging;
  halving  the file itself, the same way: where its pick and each bracket's pick rank in
           the reference, the work (variant-epochs trained against the grid's), the times.
           Both pay the same start-up (Ray, the store) and end (tables, plots) besides;
           the "bound" line is the wall time of a halving with no overhead at all: the
           grid's time outside training and logging, plus the work share of the rest.

  ASHA     (late bloomers; --skip-asha leaves it out) Ray Tune's ASHAScheduler over the same
           420 variants, one trial per variant as Tune does it, each trial training its
           variant with this project's engine one epoch per report (the same numbers, bit
           for bit, as the sweep's), grace period and reduction factor = min_epochs and eta:
           the configuration of its best trial, the epochs it used, the wall time.

Prints figures and ratios measured in this run; asserts nothing (the machine is shared).
Usage: python benchmarks/bench_halving.py [--skip-asha] [--asha-trials N] [--spaces halving late
       other.yaml ...] [--stores new existing]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
SPACES = {"halving": REPO / "configs" / "halving.yaml",
          "late": REPO / "benchmarks" / "spaces" / "late_bloomers.yaml"}
HALVING_KEYS = ("sampler", "min_epochs", "eta", "metric", "mode", "brackets", "ranking")


def as_grid(path: Path, workdir: Path) -> Path:
    """The sweep file with its halving search replaced by the plain grid over its points."""
    config = yaml.safe_load(path.read_text())
    search = {k: v for k, v in config["search"].items() if k not in HALVING_KEYS}
    config["search"] = {**search, "method": "grid"}
    config["name"] = f"{config['name']}-grid"
    out = workdir / f"{path.stem}-grid.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def empty_store(workdir: Path) -> Path:
    """An MLflow SQLite store with its schema and nothing else, as a store a user has
    already used looks to `sweeps run` (MLflow's schema migrations take seconds of CPU)."""
    from mlflow import MlflowClient

    path = workdir / "empty.db"
    if not path.exists():
        MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def sweeps_run(path: Path, workdir: Path, label: str,
               existing: bool) -> tuple[float, float, Path]:
    """`sweeps run FILE` on a store of its own, new or (`existing`) a copy of an empty one
    with MLflow's schema: (wall seconds of the whole command, seconds of training and
    logging from the report's Time line, results directory)."""
    store, out = workdir / f"{label}.db", workdir / label
    if existing:
        shutil.copy(empty_store(workdir), store)
    command = [str(Path(sys.executable).with_name("sweeps")), "run", str(path), "--tracking-uri",
               f"sqlite:///{store}", "--out", str(out), "--no-progress"]
    clock = time.perf_counter()
    done = subprocess.run(command, check=True, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - clock
    training = re.search(r"^Time: .*training and logging ([\d.]+) s", done.stdout, re.M)
    return wall, float(training.group(1)), out


def reference(out: Path) -> dict[str, int]:
    """{group key: rank} of the grid's groups by mean validation loss (1 = best)."""
    summary = pd.read_csv(out / "summary.csv")
    order = summary.sort_values("val_loss_mean", kind="stable")["group_key"]
    return {group: rank for rank, group in enumerate(order, start=1)}


def halving_search(store: Path) -> dict:
    """halving/search.json of the store's sweep run."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    [parent] = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  "tags.`sweep.role` = 'parent'")
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(
            parent.info.run_id, "halving/search.json", tmp)).read_text())


def bench_space(name: str, path: Path, workdir: Path, existing: bool) -> dict:
    grid_wall, grid_train, grid_out = sweeps_run(as_grid(path, workdir), workdir, f"{name}-grid",
                                                 existing)
    ranks = reference(grid_out)
    halving_wall, halving_train, halving_out = sweeps_run(path, workdir, f"{name}-halving",
                                                          existing)
    frame = pd.read_parquet(halving_out / "results.parquet")
    epochs = yaml.safe_load(path.read_text())["train"]["epochs"]
    search = halving_search(workdir / f"{name}-halving.db")
    brackets = [f"{b['ranking']}@{b['enters']}: #{ranks[search['picks'][str(i)]]}"
                for i, b in enumerate(search["brackets"]) if str(i) in search["picks"]]
    return {"space": name, "groups": len(ranks), "variants": len(frame),
            "grid_s": grid_wall, "halving_s": halving_wall, "grid_train_s": grid_train,
            "halving_train_s": halving_train,
            "work": float(frame["stopped_epoch"].sum()) / (len(frame) * epochs),
            "pick_rank": ranks[search["pick"]], "pick": search["pick_names"].get(
                next(k for k, g in search["picks"].items() if g == search["pick"])),
            "top5": max(1, int(0.05 * len(ranks))), "brackets": brackets, "ranks": ranks}


# --------------------------------------------------------------------------------------------
# Ray Tune's ASHA, one trial per variant

def _asha_trial(config, variants=None, dataset=None):
    """Tune's function trainable: one variant, one epoch per report of its val_loss. The data
    set comes through Ray's object store (`tune.with_parameters`), built once by the driver."""
    from ray import tune

    import core
    from sweeps.execution.training import _validation_set, build_network, optimizer_spec
    from sweeps.records import Pack
    from sweeps.spec.config import PACK_SHARED

    variant = variants[config["index"]]
    pack = Pack(0, (variant,), variant.data_key, PACK_SHARED)
    settings = variant.settings
    mlp = build_network(pack, dataset)
    Y, _ = dataset.targets(settings["model.output_activation"])
    validation = _validation_set(dataset, settings["model.output_activation"], np.float64)
    state = core.init_params(mlp, [settings["model.init"]], [int(settings["seed"])])
    for epoch in range(1, int(settings["train.epochs"]) + 1):
        trained = core.train(mlp, state, dataset.X_train, Y, loss=settings["train.loss"],
                             optimizer=optimizer_spec(pack), epochs=epoch,
                             batch_size=settings["train.batch_size"], log_every=10 ** 9,
                             data_seed=int(settings["data_seed"]),
                             labels=dataset.labels_train, validation=validation)
        state = trained.state
        tune.report({"val_loss": float(trained.final_validation["loss"][0])})


def bench_asha(path: Path, workdir: Path, ranks: dict[str, int], trials: int | None) -> dict:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from sweeps.spec.sweep import load_sweep

    sweep = load_sweep(path)
    indices = list(range(len(sweep.variants)))[:trials]
    config = yaml.safe_load(path.read_text())
    epochs, search = config["train"]["epochs"], config["search"]
    clock = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}})
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs,
                              grace_period=search["min_epochs"],
                              reduction_factor=search.get("eta", 3))
    (dataset,) = sweep.datasets.values()
    trainable = tune.with_parameters(_asha_trial, variants=list(sweep.variants), dataset=dataset)
    results = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"index": tune.grid_search(indices)},
        tune_config=tune.TuneConfig(scheduler=scheduler, metric="val_loss", mode="min"),
        run_config=tune.RunConfig(storage_path=str(workdir / "tune"), verbose=0),
    ).fit()
    wall = time.perf_counter() - clock
    ray.shutdown()
    best = results.get_best_result(metric="val_loss", mode="min", scope="last")
    variant = sweep.variants[best.config["index"]]
    used = sum(int(r.metrics.get("training_iteration", 0)) for r in results)
    return {"asha_s": wall, "pick_rank": ranks[variant.group],
            "pick": sweep.group_name(variant),
            "work": used / (len(indices) * epochs), "trials": len(indices)}


def print_row(name: str, path: Path, row: dict) -> None:
    print(f"\n{name} ({path}): {row['groups']} configurations, {row['variants']} variants")
    print(f"  grid      {row['grid_s']:7.1f} s, of which training and logging "
          f"{row['grid_train_s']:.1f} s")
    print(f"  halving   {row['halving_s']:7.1f} s = {row['halving_s'] / row['grid_s']:.2f}x "
          f"the grid's wall time; training and logging {row['halving_train_s']:.1f} s = "
          f"{row['halving_train_s'] / row['grid_train_s']:.2f}x; "
          f"{row['work']:.1%} of its variant-epochs")
    fixed = row["grid_s"] - row["grid_train_s"]
    bound = fixed + row["work"] * row["grid_train_s"]
    print(f"  bound     {bound:7.1f} s = {bound / row['grid_s']:.2f}x: a halving with no "
          f"overhead at all (the grid's {fixed:.1f} s outside training and logging, plus "
          f"{row['work']:.0%} of its {row['grid_train_s']:.1f} s)")
    print(f"  pick      {row['pick']}: #{row['pick_rank']} of {row['groups']} in the grid's "
          f"ranking by val_loss (top 5%: #{row['top5']} or better)")
    print(f"  brackets' picks: {', '.join(row['brackets'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-asha", action="store_true")
    parser.add_argument("--asha-trials", type=int, default=None,
                        help="only the first N variants under ASHA (a quick check; the figures "
                             "then do not compare)")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES),
                        help=f"{', '.join(SPACES)} or paths of halving sweep files")
    parser.add_argument("--stores", nargs="+", choices=["new", "existing"],
                        default=["new", "existing"],
                        help="run every command on a store of its own that is new (MLflow "
                             "creates its schema first) and/or that exists already (empty)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-halving-"))
    rows = {}
    for stores in args.stores:
        print(f"\n=== every command on {'a new' if stores == 'new' else 'an existing'} store ===")
        kind_dir = workdir / stores
        kind_dir.mkdir()
        for name in args.spaces:
            path = SPACES.get(name) or Path(name).resolve()
            name = name if name in SPACES else path.stem
            row = rows[name] = bench_space(name, path, kind_dir, stores == "existing")
            print_row(name, path, row)
    if not args.skip_asha and "late" in rows:
        # (against the halving on the last kind of store measured)
        asha = bench_asha(SPACES["late"], workdir, rows["late"]["ranks"], args.asha_trials)
        late = rows["late"]
        print(f"\nASHA (Ray Tune ASHAScheduler, {asha['trials']} trials, one per variant) on "
              f"the late-bloomer space")
        print(f"  wall      {asha['asha_s']:7.1f} s = {asha['asha_s'] / late['halving_s']:.1f}x "
              f"this halving's {late['halving_s']:.1f} s; {asha['work']:.1%} of the grid's "
              f"variant-epochs")
        print(f"  pick      {asha['pick']}: #{asha['pick_rank']} of {late['groups']} "
              f"(halving's: #{late['pick_rank']})")
    print(f"\n(work files in {workdir})")


if __name__ == "__main__":
    main()
