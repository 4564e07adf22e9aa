"""Wall time of `sweeps run configs/card.yaml` beside two baselines on the same 480-variant grid.

  ours  the `sweeps run` command on a fresh SQLite store (a subprocess, imports included),
        then another run split into its parts (imports, start-up, training and logging,
        outputs, the rest, interpreter start and exit) that add up to its wall time.
  (a)   plain: one Ray task per variant running the article's algorithm, the driver logging
        each variant as its own MLflow child run (create, one log_batch, terminate).
  writes the same 480 child runs (results computed beforehand) written into fresh stores in
        one process, through MlflowClient (`SweepTracker`) and in bulk (`BulkTracker`, one
        transaction per pack), on SQLite and on a throwaway PostgreSQL server (when installed):
        ms per child and the ratio.
  floor what no design can avoid, measured apart: starting Ray locally, and the bulk writes.
  (b)   Ray Tune's Tuner with MLflowLoggerCallback, the article's algorithm as the trainable
        reporting every 100 epochs; a subset of trials, scaled per trial (said in the output).

Prints times and ratios measured in this run; asserts nothing (machines are shared and noisy).
Usage: python benchmarks/bench_sweep.py [--tune-trials 24] [--skip-tune]
"""

from __future__ import annotations

import argparse
import json
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CARD = REPO / "configs" / "card.yaml"
GRID = {
    "lr": [0.01, 0.1, 0.5, 1.0],
    "hidden": [2, 4, 8, 16],
    "init": ["uniform01", "xavier_normal", "he_normal"],
    "seed": list(range(10)),
}
EPOCHS, LOG_EVERY = 10_000, 100
X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
Y = np.array([[0.2], [0.5], [0.8]])


def grid() -> list[dict]:
    return [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def article_train(lr: float, hidden: int, init: str, seed: int, report=None) -> list[float]:
    """The seed article's algorithm, one variant, plain NumPy; returns the MSE every 100 epochs."""
    rng = np.random.RandomState(seed)
    if init == "uniform01":
        w1, w2 = rng.rand(3, hidden), rng.rand(hidden, 1)
    else:
        gain = (lambda i, o: np.sqrt(2.0 / (i + o))) if init == "xavier_normal" else (lambda i, o: np.sqrt(2.0 / i))
        w1, w2 = rng.normal(0, gain(3, hidden), (3, hidden)), rng.normal(0, gain(hidden, 1), (hidden, 1))
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    losses = []
    for epoch in range(EPOCHS):
        hidden_out = sigmoid(X.dot(w1))
        out = sigmoid(hidden_out.dot(w2))
        if epoch % LOG_EVERY == 0:
            losses.append(float(np.mean((Y - out) ** 2)))
            if report is not None:
                report({"mse": losses[-1], "epoch": epoch})
        d_out = (Y - out) * out * (1 - out)
        d_hidden = d_out.dot(w2.T) * hidden_out * (1 - hidden_out)
        w2 += hidden_out.T.dot(d_out) * lr
        w1 += X.T.dot(d_hidden) * lr
    return losses


SPLIT = """
import json, sys, time
clock = time.perf_counter()
from sweeps.run import run_sweep
imports = time.perf_counter() - clock
clock = time.perf_counter()
o = run_sweep(sys.argv[1], tracking_uri=sys.argv[2], out=sys.argv[3], progress=False)
print(json.dumps({**o.timings, "imports": imports, "run": time.perf_counter() - clock}))
"""


def bench_ours(workdir: Path) -> dict[str, float]:
    """The real command in a subprocess, then the in-process split of a second run (a
    subprocess too, on a second fresh store): every part of that run's wall time."""
    store = f"sqlite:///{workdir / 'ours.db'}"
    clock = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(CARD), "--tracking-uri", store,
         "--out", str(workdir / "ours"), "--no-progress"],
        check=True, cwd=workdir, stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - clock
    clock = time.perf_counter()
    split = subprocess.run(
        [sys.executable, "-c", SPLIT, str(CARD), f"sqlite:///{workdir / 'split.db'}",
         str(workdir / "split")], check=True, cwd=workdir, capture_output=True, text=True,
    )
    split_wall = time.perf_counter() - clock
    parts = json.loads(split.stdout.strip().splitlines()[-1])
    # run_sweep beyond its timed phases: loading the file, the tracker and plot helper
    # objects, and what is left of Ray's shutdown after the outputs.
    parts["rest"] = parts["run"] - parts["startup"] - parts["train_and_log"] - parts["results"]
    parts["process"] = split_wall - parts["imports"] - parts["run"]  # interpreter start + exit
    return {"wall": wall, "split_wall": split_wall, **parts}


def bytecode_note() -> str:
    """Whether the installed packages are compiled: where PYTHONDONTWRITEBYTECODE is set and
    they are not, every process compiles MLflow, Ray and pandas at each start (~1.7x slower)."""
    import importlib.util

    import mlflow
    import ray

    missing = [m.__name__ for m in (mlflow, ray)
               if not Path(importlib.util.cache_from_source(m.__file__)).exists()]
    if not missing:
        return "installed packages compiled to bytecode"
    return (f"NOT compiled to bytecode: {', '.join(missing)} (figures inflated; "
            f"`make venv` compiles them)")


WRITES = """
import json, sys, time
clock = time.perf_counter()
import mlflow, sqlalchemy                       # paid once, by the first tracker's start
imports = time.perf_counter() - clock
from sweeps.execution.plan import make_packs
from sweeps.spec.sweep import load_sweep
from sweeps.tracking.bulk import BulkTracker
from sweeps.tracking.track import SweepTracker
from sweeps.execution.training import train_pack

sweep = load_sweep(sys.argv[1])
by_key = {variant.key: variant for variant in sweep.variants}
packs = [[(by_key[r.key], r) for r in train_pack(pack, sweep.datasets[pack.data_key])]
         for pack in make_packs(sweep, workers=2)]
out = {}
for name, uri in zip(sys.argv[2::2], sys.argv[3::2]):
    writer = BulkTracker if name.startswith("bulk") else SweepTracker
    clock = time.perf_counter()
    tracker = writer(sweep, tracking_uri=uri)
    tracker.start()                  # creates the store, as `sweeps run` does
    store = time.perf_counter() - clock
    assert getattr(tracker, "bulk", True), "the bulk writer fell back to the client path"
    clock = time.perf_counter()
    for batch in packs:              # one batch per finished pack, as `sweeps run` logs them
        tracker.log_variants(batch)
    writes = time.perf_counter() - clock
    tracker.finish()
    out[name] = {"store": store, "writes": writes, "children": sum(map(len, packs)),
                 "imports": imports}
print(json.dumps(out))
"""

FLOOR_RAY = """
import json, os, time
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
clock = time.perf_counter()
from sweeps.execution.execute import start_local_ray, worker_count
start_local_ray()
print(json.dumps({"ray": time.perf_counter() - clock, "cpus": worker_count("ray")}))
"""


def _run(workdir: Path, code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=workdir,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_writers(workdir: Path, postgres_uri: str | None) -> dict[str, dict]:
    """The card's 480 child runs (trained beforehand), written into fresh stores, in one
    process: the client path and the bulk path on SQLite, and on PostgreSQL when given."""
    stores = ["client-sqlite", f"sqlite:///{workdir / 'client.db'}",
              "bulk-sqlite", f"sqlite:///{workdir / 'bulk.db'}"]
    if postgres_uri:
        stores += ["client-postgresql", postgres_uri + "_client",
                   "bulk-postgresql", postgres_uri + "_bulk"]
    return _run(workdir, WRITES, str(CARD), *stores)


def bench_floor(workdir: Path, writes: dict) -> dict[str, float]:
    """The two costs no writer can hide: starting Ray, and writing the runs (bulk, SQLite)."""
    floor = dict(writes["bulk-sqlite"])
    floor["store"] += floor["imports"]         # `sweeps run` imports MLflow in its start too
    floor.update(_run(workdir, FLOOR_RAY))
    # In `sweeps run` the store is created while Ray starts; the writes follow.
    floor["best"] = max(floor["store"], floor["ray"]) + floor["writes"]
    return floor


class _Postgres:
    """A throwaway PostgreSQL server (tests/cluster's) with two empty databases, or None."""

    def __enter__(self) -> str | None:
        import shutil
        sys.path.insert(0, str(REPO))
        from tests.cluster.native_stack import Postgres, postgres_bindir
        try:
            postgres_bindir()
        except RuntimeError as error:
            print(f"PostgreSQL: skipped ({error})")
            return None
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.root.chmod(0o755)
        (self.root / "pg").mkdir()
        self.server = Postgres.create(self.root / "pg")
        self.server.start()
        self.server.wait_ready()
        conn = self.server.connect()
        conn.autocommit = True
        with conn.cursor() as cursor:
            for suffix in ("_client", "_bulk"):
                cursor.execute(f'CREATE DATABASE "{self.server.database}{suffix}"')
        conn.close()
        os.environ["PGPASSWORD"] = self.server.password
        self._shutil = shutil
        return self.server.store_uri

    def __exit__(self, *exc) -> None:
        if getattr(self, "server", None) is not None:
            self.server.stop()
            self._shutil.rmtree(self.root, ignore_errors=True)


def bench_plain_ray(workdir: Path) -> dict[str, float]:
    """Baseline (a): one Ray task per variant, one MLflow child run per variant."""
    import ray
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    clock = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    train = ray.remote(article_train)
    client = MlflowClient(f"sqlite:///{workdir / 'plain.db'}")
    experiment = client.create_experiment("plain")
    parent = client.create_run(experiment).info.run_id
    startup = time.perf_counter() - clock

    variants = grid()
    pending = {train.remote(**v): v for v in variants}
    logging = 0.0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        variant, losses = pending.pop(done[0]), ray.get(done[0])
        tick = time.perf_counter()
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent})
        now = int(time.time() * 1000)
        metrics = [Metric("mse", loss, now, step * LOG_EVERY) for step, loss in enumerate(losses)]
        params = [Param(name, str(value)) for name, value in variant.items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id)
        logging += time.perf_counter() - tick
    client.set_terminated(parent)
    wall = time.perf_counter() - clock
    ray.shutdown()
    return {"wall": wall, "startup": startup, "logging": logging, "training": wall - startup - logging}


def bench_tune(workdir: Path, trials: int) -> dict[str, float]:
    """Baseline (b): Ray Tune with MLflowLoggerCallback on `trials` points spread over the grid."""
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    points = grid()[:: max(1, len(grid()) // trials)][:trials]

    def trainable(config):
        article_train(**points[config["i"]], report=tune.report)

    clock = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(len(points))))},
        run_config=tune.RunConfig(
            storage_path=str(workdir / "tune"), verbose=0,
            callbacks=[MLflowLoggerCallback(
                tracking_uri=f"sqlite:///{workdir / 'tune.db'}", experiment_name="tune")],
        ),
    ).fit()
    wall = time.perf_counter() - clock
    ray.shutdown()
    return {"wall": wall, "trials": len(points), "per_trial": wall / len(points)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune-trials", type=int, default=24)
    parser.add_argument("--skip-tune", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    n = len(grid())
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"venv   {bytecode_note()}")
        ours = bench_ours(workdir)
        print(f"ours   `sweeps run configs/card.yaml`: {ours['wall']:.1f} s for {n} variants")
        print(f"       split of another run ({ours['split_wall']:.1f} s): imports "
              f"{ours['imports']:.1f} s, start-up (Ray beside the tracker) {ours['startup']:.1f} s, "
              f"training+logging {ours['train_and_log']:.1f} s of which driver logging "
              f"{ours['logging']:.1f} s, tables+plots+artifacts {ours['results']:.1f} s, "
              f"the rest of run_sweep {ours['rest']:.1f} s, interpreter start+exit "
              f"{ours['process']:.1f} s")
        with _Postgres() as postgres_uri:
            writes = bench_writers(workdir, postgres_uri)
        per_child = {name: 1000 * w["writes"] / w["children"] for name, w in writes.items()}
        for backend in ("sqlite", "postgresql"):
            if f"bulk-{backend}" in per_child:
                client, bulk = per_child[f"client-{backend}"], per_child[f"bulk-{backend}"]
                print(f"writes {backend}: {client:.1f} ms per child through MlflowClient, "
                      f"{bulk:.1f} ms in bulk (one transaction per pack): {client / bulk:.1f}x "
                      f"lower (target {'8' if backend == 'sqlite' else '5'}x)")
        floor = bench_floor(workdir, writes)
        print(f"floor  Ray start-up {floor['ray']:.1f} s; MLflow import + new store "
              f"{floor['imports']:.1f} + {floor['store'] - floor['imports']:.1f} s; writing "
              f"the {floor['children']} child runs alone (bulk) {floor['writes']:.1f} s")
        print(f"       no design finishes before max(start-up, store) + writes = "
              f"{floor['best']:.1f} s; ours spends {ours['wall'] - floor['best']:.1f} s more "
              f"(imports, first pack, tables, plots, exit)")
        plain = bench_plain_ray(workdir)
        print(f"(a)    one Ray task + one MLflow child per variant: {plain['wall']:.1f} s "
              f"(start-up {plain['startup']:.1f} s, training {plain['training']:.1f} s, "
              f"logging {plain['logging']:.1f} s)")
        print(f"       ratio (a) / ours: {plain['wall'] / ours['wall']:.1f}x")
        if not args.skip_tune:
            tune_run = bench_tune(workdir, args.tune_trials)
            scaled = tune_run["per_trial"] * n
            print(f"(b)    Ray Tune + MLflowLoggerCallback: {tune_run['wall']:.1f} s for "
                  f"{tune_run['trials']} trials = {tune_run['per_trial']:.2f} s/trial; "
                  f"scaled to {n} trials: {scaled:.0f} s (a subset, scaled per trial)")
            print(f"       ratio (b) / ours: {scaled / ours['wall']:.0f}x")


if __name__ == "__main__":
    main()
