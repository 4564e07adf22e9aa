"""Reading a 4,800-variant sweep back from MLflow: the SQL reader beside the client reader.

  load_runs    the per-variant table (`results.load_runs`: records -> frame)
  summary      load_runs + seed summary + its text, as `sweeps summary` prints it
  load_curves  every curve, long format (484,800 points for configs/card_4800.yaml)
  cli summary  `sweeps summary` in a subprocess, imports included (the SQL reader)

Each is timed with the SQL reader (database stores' default) and the MlflowClient reader
(the path for http(s) servers), interleaved, best of --rounds; on the store as the writer
left it and on a copy after SQLite's ANALYZE (the query planner's statistics). In-process
times exclude importing MLflow (done once before). Prints times and ratios measured in this
run; asserts nothing (machines are shared and noisy). A first read of each store (MLflow's
schema check, ~1 s) is left out of the in-process times; `cli summary` includes it.

The store comes from `sweeps run configs/card_4800.yaml` (minutes); --store reuses one.
Usage: python benchmarks/bench_read.py [--store /tmp/read4800/mlflow.db] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CARD_4800 = REPO / "configs" / "card_4800.yaml"
EXPERIMENT = "card-sweep-4800"


def build_store(workdir: Path) -> Path:
    store = workdir / "mlflow.db"
    subprocess.run([sys.executable, "-m", "sweeps", "run", str(CARD_4800), "--tracking-uri",
                    f"sqlite:///{store}", "--out", str(workdir / "results"), "--no-progress"],
                   check=True, cwd=workdir, stdout=subprocess.DEVNULL)
    return store


def copies(store: Path, workdir: Path) -> dict[str, str]:
    """{label: tracking URI}: the store without planner statistics, and after ANALYZE."""
    out = {}
    for label, analyze in (("no ANALYZE", False), ("ANALYZE", True)):
        path = workdir / f"{'analyzed' if analyze else 'plain'}.db"
        source = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        target = sqlite3.connect(path)
        source.backup(target)                       # a consistent copy, WAL included
        source.close()
        tables = {r[0] for r in target.execute("SELECT name FROM sqlite_master")}
        if "sqlite_stat1" in tables:
            target.execute("DELETE FROM sqlite_stat1")
        if analyze:
            target.execute("ANALYZE")
        target.commit()
        target.close()
        out[label] = f"sqlite:///{path}"
    return out


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, fn())."""
    clock, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - clock, time.process_time() - cpu, value


def measure(uri: str, reader: str) -> dict[str, float]:
    from sweeps.report import results
    from sweeps.tracking.readback import read_sweep

    def frame():
        read = read_sweep(EXPERIMENT, uri, reader=reader)
        return results.frame_from_records(read.records, swept=read.swept)

    def summary():
        return results.format_summary(results.summarize(frame()))

    def curves():
        return results.curves_from_records(
            read_sweep(EXPERIMENT, uri, histories=True, reader=reader).records)

    out = {}
    for name, fn in (("load_runs", frame), ("summary", summary), ("load_curves", curves)):
        out[name], out[f"{name} cpu"], value = timed(fn)
        if name == "load_curves":
            out["points"] = len(value)
    return out


def cli_summary(uri: str) -> dict[str, float]:
    """Wall and CPU seconds (user + system of the child) of `sweeps summary`."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, _, _ = timed(lambda: subprocess.run(
        [sys.executable, "-m", "sweeps", "summary", "--experiment", EXPERIMENT,
         "--tracking-uri", uri], check=True, stdout=subprocess.DEVNULL))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"cli summary": wall, "cli summary cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="an SQLite store holding card_4800")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import mlflow  # noqa: F401 - imported once, outside the timings

    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        workdir = Path(tmp)
        store = args.store or build_store(workdir)
        stores = copies(store, workdir)
        from sweeps.tracking.readback import read_sweep

        for label, uri in stores.items():
            read_sweep(EXPERIMENT, uri)       # untimed: MLflow opens (and checks) the store once
            best: dict[str, dict[str, float]] = {"sql": {}, "client": {}}
            for _ in range(args.rounds):
                for reader in ("sql", "client"):
                    for name, seconds in measure(uri, reader).items():
                        best[reader][name] = min(seconds, best[reader].get(name, seconds))
                for name, seconds in cli_summary(uri).items():
                    best["sql"][name] = min(seconds, best["sql"].get(name, seconds))
            points = int(best["sql"].pop("points"))
            best["client"].pop("points")
            print(f"\n{label} ({points:,} curve points), best of {args.rounds}, seconds "
                  f"(wall; CPU of the reading process, what a quiet machine's wall would be):")
            print(f"  {'':12} {'sql':>8} {'client':>8} {'ratio':>7}   {'sql cpu':>8} "
                  f"{'client cpu':>10} {'ratio':>7}")
            for name in ("load_runs", "summary", "load_curves"):
                fast, slow = best["sql"][name], best["client"][name]
                fast_cpu, slow_cpu = best["sql"][f"{name} cpu"], best["client"][f"{name} cpu"]
                print(f"  {name:12} {fast:8.2f} {slow:8.2f} {slow / fast:6.1f}x   "
                      f"{fast_cpu:8.2f} {slow_cpu:10.2f} {slow_cpu / fast_cpu:6.1f}x")
            print(f"  {'cli summary':12} {best['sql']['cli summary']:8.2f} {'':8} {'':7}   "
                  f"{best['sql']['cli summary cpu']:8.2f}   (imports included)")


if __name__ == "__main__":
    main()
