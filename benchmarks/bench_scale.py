"""The bookkeeping ceiling: how many variants per second the sweep pipeline sustains when
training costs nothing, and where the CPU goes per child run.

The real pipeline (`run_sweep`: plan, Ray, tracker, outputs) runs the card's grid with 100
epochs logged every epoch: the same shapes a card child has (101-point curves, predictions,
the same params and tags), trained in ~0.2 ms per variant instead of ~10 ms, so what is left
is plan + Ray + writing the children + reading nothing back. Each measurement is a fresh
driver process on a fresh store (SQLite file; a database on a throwaway PostgreSQL server),
and the modes and stores alternate, so ratios come from the same minutes.

Printed per (store, mode): variants per second over the training-and-logging phase (the
ceiling), and CPU milliseconds per child in that phase for the driver, the Ray workers, the
rest of Ray (raylet, GCS, ...), the plot helper (its matplotlib import: a fixed ~1-2 s) and
the database server (PostgreSQL's backends and background processes: /proc/<pid>/stat of the
postmaster's tree; SQLite runs inside the writer). CPU of a process that exits inside the
phase is not counted (none should).

Modes: `base` (the code at git revision --base, today's: the driver writes every child),
`driver` (this code, the driver writes: COPY on PostgreSQL) and `workers` (each pack's
children written by the Ray worker that trained it; `SWEEPS_CHILD_WRITERS`); --cpus sets the
local Ray instance's worker count (1 or 2 writer processes).

Usage: python benchmarks/bench_scale.py [--seeds 10] [--rounds 2] [--stores sqlite,postgresql]
       [--modes driver,workers] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

EPOCHS = 100            # logged every epoch: 100 points + the final one, as the card's 101

# The driver: run_sweep with the training phase bracketed by CPU snapshots of every process.
DRIVER = r"""
import importlib.util, json, os, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("bench_scale", sys.argv[5])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
cpu_by_group = bench.cpu_by_group
import sweeps.run as run

sweep_file, uri, out, postmaster = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
marks = {}
# The training-and-logging phase: `run_scheduled` (older revisions: `_train_and_log`).
name = "_train_and_log" if hasattr(run, "_train_and_log") else "run_scheduled"
phase = getattr(run, name)
# Ray shuts down once every pack is in, while the driver may still write: held until the
# phase's end snapshot, or the workers' CPU would leave with them.
from sweeps.execution.execute import RayConnection
close_soon = RayConnection.close_soon

def bracketed(*args, **kwargs):
    RayConnection.close_soon = lambda self: None
    marks["start"] = (time.perf_counter(), cpu_by_group(os.getpid(), postmaster))
    try:
        return phase(*args, **kwargs)
    finally:
        marks["end"] = (time.perf_counter(), cpu_by_group(os.getpid(), postmaster))
        RayConnection.close_soon = close_soon

setattr(run, name, bracketed)
cpus = int(os.environ["BENCH_CPUS"])
from sweeps.execution import execute
execute.start_local_ray.__defaults__ = (cpus,)
clock = time.perf_counter()
outcome = run.run_sweep(sweep_file, tracking_uri=uri, out=out, progress=False)
wall = time.perf_counter() - clock
(t0, c0), (t1, c1) = marks["start"], marks["end"]
cpu = {}
for pid, (group, seconds) in c1.items():       # processes alive at the end, from their start
    cpu[group] = cpu.get(group, 0.0) + seconds - c0.get(pid, (group, 0.0))[1]
print(json.dumps({"variants": outcome.trained, "phase": t1 - t0, "wall": wall, "cpu": cpu,
                  "timings": outcome.timings}))
"""


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _ticks()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def cpu_by_group(driver: int, postmaster: int) -> dict[int, tuple[str, float]]:
    """pid -> (group, CPU seconds so far) of: the driver, its Ray workers, the plot helper
    (it imports matplotlib while the packs train: a fixed cost, not a child's), the rest of
    its process tree (Ray's own processes) and the PostgreSQL server's tree."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)

    def tree(root: int) -> list[int]:
        found, todo = [], list(children.get(root, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    out = {driver: ("driver", stats[driver][1])}
    for pid in tree(driver):
        command = _cmdline(pid)
        group = ("ray workers" if command.startswith("ray::") else
                 "plot helper" if "sweeps.report.outputs" in command else "ray other")
        out[pid] = (group, stats[pid][1])
    if postmaster in stats:
        for pid in [postmaster, *tree(postmaster)]:
            out[pid] = ("database server", stats[pid][1])
    return out


def write_card(directory: Path, seeds: int) -> Path:
    """The card's grid (4 lr x 4 hidden x 3 init x `seeds` seeds), EPOCHS epochs logged every
    epoch."""
    import yaml

    card = yaml.safe_load((REPO / "configs" / "card.yaml").read_text())
    card["name"] = f"scale-{seeds}"
    card["train"].update(epochs=EPOCHS, log_every=1)
    card["search"]["parameters"]["seed"] = list(range(seeds))
    path = directory / f"scale-{seeds}.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


class Postgres:
    """A throwaway PostgreSQL server (tests/cluster's), a fresh database per measurement."""

    def __enter__(self) -> "Postgres":
        from tests.cluster.native_stack import Postgres as Server

        self.root = Path(tempfile.mkdtemp(prefix="bench-scale-pg-"))
        self.root.chmod(0o755)
        (self.root / "pg").mkdir()
        self.server = Server.create(self.root / "pg")
        self.server.start()
        self.server.wait_ready()
        os.environ["PGPASSWORD"] = self.server.password
        self.count = 0
        return self

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def new_database(self) -> str:
        self.count += 1
        name = f"scale{self.count}"
        conn = self.server.connect()
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.server.store_uri.rsplit("/", 1)[0] + f"/{name}"

    def __exit__(self, *exc) -> None:
        import shutil

        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def checkout(rev: str, directory: Path) -> Path:
    """The repository's files at `rev` (git archive), to run "today's" code beside ours."""
    directory.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def measure(sweep: Path, uri: str, workdir: Path, postmaster: int, mode: str,
            cpus: int, base: Path | None = None) -> dict:
    """One run_sweep in a fresh driver: our code (mode driver | workers), or the code of
    `base` (mode "base": its driver writes; PYTHONPATH puts its `sweeps` first)."""
    env = dict(os.environ, SWEEPS_CHILD_WRITERS="driver" if mode == "base" else mode,
               BENCH_CPUS=str(cpus), RAY_USAGE_STATS_ENABLED="0", OPENBLAS_NUM_THREADS="1")
    if mode == "base":
        env["PYTHONPATH"] = str(base)
    done = subprocess.run([sys.executable, "-c", DRIVER, str(sweep), uri, str(workdir / "out"),
                           str(postmaster), str(Path(__file__).resolve())], cwd=workdir, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the driver failed ({mode}, {uri}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


INSERTS = r"""
import importlib.util, json, os, sys, tempfile, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("bench_scale", sys.argv[3])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
from sweeps.execution.plan import make_packs
from sweeps.execution.training import train_pack
from sweeps.spec.sweep import load_sweep
from sweeps.tracking import pack_writer
from sweeps.tracking.bulk import BulkTracker
from sweeps.tracking.child import child_run

sweep = load_sweep(sys.argv[1])
uris = sys.argv[4:]
cpu = time.process_time()
packs = [(p, train_pack(p, sweep.datasets[p.data_key])) for p in make_packs(sweep, workers=2)]
train = (time.process_time() - cpu) * 1000 / len(sweep.variants)
out = []
for uri, method in zip(uris, [m for _ in uris for m in ("copy", "values")]):
    tracker = BulkTracker(sweep, uri)
    tracker.start()
    writer = tracker.pack_writer()
    connection = writer._connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    connection.commit()
    children = [[child_run(sweep, v, r, tracker.parent_run_id, tracker.kinds) for v, r in
                 zip(p.variants, results)] for p, results in packs]
    pack_writer.PG_INSERT = method
    server, cpu, clock = bench._stat(backend)[1], time.process_time(), time.perf_counter()
    for batch in children:
        pack_writer.write_children(connection, batch, writer.experiment_id, writer.parent_run_id,
                                   writer.artifact_location, writer._put)
    n = sum(map(len, children))
    out.append({"method": method, "train": train, "wall": (time.perf_counter() - clock) * 1000 / n,
                "client": (time.process_time() - cpu) * 1000 / n,
                "server": (bench._stat(backend)[1] - server) * 1000 / n})
    tracker.finish()
print(json.dumps(out))
"""


def write_realistic(directory: Path) -> Path:
    """breast_cancer (validation split, minibatches of 64), 300 epochs logged every 3 (four
    101-point curves), widths 4 to 64, adam: 4 widths x 3 lr x 5 seeds = 60 variants."""
    import yaml

    config = yaml.safe_load((REPO / "configs" / "halving.yaml").read_text())
    config.update(name="realistic", search={"method": "grid", "parameters": {
        "model.hidden": [4, 16, 32, 64], "train.lr": [0.001, 0.01, 0.1], "seed": list(range(5))}})
    config["train"].update(optimizer="adam", epochs=300, log_every=3)
    path = directory / "realistic.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def bench_inserts(workdir: Path, postgres: "Postgres", rounds: int, workload: str) -> None:
    """COPY against multi-row INSERTs: the same children (trained beforehand, one process:
    training ms per variant on one core) written pack by pack with
    `pack_writer.write_children`, alternating, fresh databases."""
    sweep = write_card(workdir, 10) if workload == "card" else write_realistic(workdir)
    uris = [postgres.new_database() for _ in range(2 * rounds)]
    done = subprocess.run([sys.executable, "-c", INSERTS, str(sweep), "", str(Path(__file__)
                           .resolve()), *uris], cwd=workdir, capture_output=True, text=True,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n{workload}: training {runs[0]['train']:.2f} ms per variant on one core; rows into "
          f"PostgreSQL, ms per child (best of {rounds}): wall, writer CPU, server CPU")
    for method in ("copy", "values"):
        mine = [r for r in runs if r["method"] == method]
        print(f"  {method:<7} " + ", ".join(f"{k} {min(r[k] for r in mine):.2f}"
                                            for k in ("wall", "client", "server")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40, help="48 variants per seed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--modes", default="base,driver,workers",
                        help="base (the code at --base), driver, workers")
    parser.add_argument("--base", default="e4c8799",
                        help="git revision of today's code (mode base)")
    parser.add_argument("--cpus", default="2", help="Ray worker counts, e.g. 1,2")
    parser.add_argument("--inserts", action="store_true",
                        help="only COPY against multi-row INSERTs (PostgreSQL)")
    parser.add_argument("--workload", choices=("card", "realistic"), default="card",
                        help="--inserts: the card (100 epochs) or breast_cancer, 300 epochs")
    args = parser.parse_args()
    stores = args.stores.split(",")
    modes = args.modes.split(",")
    cpu_counts = [int(c) for c in args.cpus.split(",")]
    results: dict[tuple, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        sweep = write_card(workdir, args.seeds)
        base = checkout(args.base, workdir / "base") if "base" in modes else None
        postgres = Postgres().__enter__() if "postgresql" in stores or args.inserts else None
        try:
            if args.inserts:
                bench_inserts(workdir, postgres, args.rounds, args.workload)
                return
            count = 0
            for _ in range(args.rounds):
                for store in stores:
                    for mode in modes:
                        if store == "sqlite" and mode == "workers":
                            continue                # SQLite keeps one writer
                        for cpus in cpu_counts:
                            count += 1
                            run_dir = workdir / f"run{count}"
                            run_dir.mkdir()
                            uri = (postgres.new_database() if store == "postgresql"
                                   else f"sqlite:///{run_dir / 'mlflow.db'}")
                            pid = postgres.pid if store == "postgresql" else 0
                            got = measure(sweep, uri, run_dir, pid, mode, cpus, base)
                            results.setdefault((store, mode, cpus), []).append(got)
                            print(f"  {store:<10} {mode:<7} cpus={cpus}: "
                                  f"{got['variants'] / got['phase']:.0f} variants/s "
                                  f"({got['variants']} in {got['phase']:.2f} s; run_sweep "
                                  f"{got['wall']:.1f} s)", flush=True)
        finally:
            if postgres is not None:
                postgres.__exit__(None, None, None)
    print(f"\nceiling over the training-and-logging phase (best of {args.rounds}), CPU ms per "
          f"child in that phase (median):")
    best = {}
    for (store, mode, cpus), runs in results.items():
        rate = max(r["variants"] / r["phase"] for r in runs)
        best[(store, mode, cpus)] = rate
        groups = ("driver", "ray workers", "ray other", "plot helper", "database server")
        cpu = {g: sorted(1000 * r["cpu"].get(g, 0.0) / r["variants"]
                         for r in runs)[len(runs) // 2] for g in groups}
        print(f"{store:<10} {mode:<7} cpus={cpus}: {rate:6.0f} variants/s   "
              + ", ".join(f"{g} {ms:.2f}" for g, ms in cpu.items()))
    for store in stores:
        for cpus in cpu_counts:
            for a, b in (("driver", "base"), ("workers", "base"), ("workers", "driver")):
                if (store, a, cpus) in best and (store, b, cpus) in best:
                    print(f"{store} cpus={cpus}: {a} / {b} = "
                          f"{best[(store, a, cpus)] / best[(store, b, cpus)]:.2f}x")
        for mode in modes:
            if len(cpu_counts) > 1 and (store, mode, 1) in best and (store, mode, 2) in best:
                print(f"{store} {mode}: 2 writers / 1 = "
                      f"{best[(store, mode, 2)] / best[(store, mode, 1)]:.2f}x")


if __name__ == "__main__":
    main()
