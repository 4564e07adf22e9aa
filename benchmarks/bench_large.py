"""Large sweeps stay flat: the card's grid with 100 and with 1,000 seeds (4,800 and 48,000
variants) end to end, the plan of the largest sweep a file may hold (100,000 variants), and
`load_runs` of both sweeps.

Printed: run_sweep's wall time and the driver's peak RSS (VmHWM) per size and their ratios,
`load_runs` per size, and `load_sweep` + `make_packs` + `describe` of 99,984 variants (what
`sweeps plan` does), CPU and wall. Each measurement is a fresh process on a fresh store, so
imports are excluded only where said. --epochs trains the card's network for fewer epochs
(logged every epoch/100, the card's 101-point curves either way): the bookkeeping, which is
what must stay flat, is the same, and the training it saves scales linearly by construction.

Usage: python benchmarks/bench_large.py [--seeds 100,1000] [--epochs 10000]
       [--tracking sqlite|postgresql] [--skip-plan]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PLAN_SEEDS = 2083            # 48 x 2083 = 99,984 variants, under the 100,000 cap

RUN = r"""
import json, sys, threading, time
from pathlib import Path
clock = time.perf_counter()
import sweeps.run as run

def peak_mib():
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024

# Where the peak is: the resident size sampled every 20 ms with the innermost `sweeps`
# function the main thread is in; the highest sample per function is kept.
PAGE_MIB = 4096 / 2**20
main, by_phase, stop = threading.main_thread().ident, {}, threading.Event()

def sample():
    while not stop.wait(0.02):
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_MIB
        frame, label = sys._current_frames().get(main), "other"
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if name.startswith("sweeps."):
                label = f"{name}.{frame.f_code.co_name}"
                break
            frame = frame.f_back
        by_phase[label] = max(rss, by_phase.get(label, 0.0))

threading.Thread(target=sample, daemon=True).start()
marks = {}
# The training-and-logging phase: `run_scheduled` (older revisions: `_train_and_log`).
name = "_train_and_log" if hasattr(run, "_train_and_log") else "run_scheduled"
phase = getattr(run, name)

def marked(*args, **kwargs):                  # the peak so far, once training is over
    try:
        return phase(*args, **kwargs)
    finally:
        marks["trained_peak_mib"] = peak_mib()

setattr(run, name, marked)
outcome = run.run_sweep(sys.argv[1], tracking_uri=sys.argv[2], out=sys.argv[3], progress=False)
wall = time.perf_counter() - clock
stop.set()
top = dict(sorted(by_phase.items(), key=lambda item: -item[1])[:6])
print(json.dumps({"wall": wall, "peak_mib": peak_mib(), "trained": outcome.trained,
                  "timings": outcome.timings, "rss_by_phase": top, **marks}))
"""

LOAD = r"""
import json, sys, time
import mlflow                                  # imports excluded
from sweeps.report.results import load_runs
clock = time.perf_counter()
frame = load_runs(sys.argv[1], tracking_uri=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - clock, "rows": len(frame)}))
"""

PLAN = r"""
import json, resource, sys, time
clock, cpu = time.perf_counter(), time.process_time()
from sweeps.spec.sweep import load_sweep
from sweeps.execution.plan import describe, make_packs
sweep = load_sweep(sys.argv[1])
text = describe(sweep, make_packs(sweep, workers=2), workers=2)
print(json.dumps({"wall": time.perf_counter() - clock, "cpu": time.process_time() - cpu,
                  "variants": len(sweep.variants),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def card(directory: Path, seeds: int, epochs: int) -> tuple[Path, str]:
    import yaml

    config = yaml.safe_load((REPO / "configs" / "card.yaml").read_text())
    config["name"] = f"card-{seeds}-seeds"
    config["train"].update(epochs=epochs, log_every=max(1, epochs // 100))
    config["search"]["parameters"]["seed"] = list(range(seeds))
    path = directory / f"card-{seeds}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, config["name"]


def _json(code: str, *args: str, cwd: Path) -> dict:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="100,1000")
    parser.add_argument("--epochs", type=int, default=10_000)
    parser.add_argument("--tracking", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--skip-plan", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        workdir = Path(tmp)
        if not args.skip_plan:
            path, _ = card(workdir, PLAN_SEEDS, args.epochs)
            plan = _json(PLAN, str(path), cwd=workdir)
            print(f"plan  {plan['variants']:,} variants: {plan['wall']:.1f} s wall, "
                  f"{plan['cpu']:.1f} s CPU (imports included), peak RSS "
                  f"{plan['peak_mib']:.0f} MiB", flush=True)
        postgres = None
        if args.tracking == "postgresql":
            from benchmarks.bench_scale import Postgres
            postgres = Postgres().__enter__()
        try:
            runs, loads = {}, {}
            for seeds in sizes:
                path, name = card(workdir, seeds, args.epochs)
                run_dir = workdir / f"run-{seeds}"
                run_dir.mkdir()
                uri = (postgres.new_database() if postgres is not None
                       else f"sqlite:///{run_dir / 'mlflow.db'}")
                runs[seeds] = _json(RUN, str(path), uri, str(run_dir / "out"), cwd=run_dir)
                loads[seeds] = _json(LOAD, name, uri, cwd=run_dir)
                got = runs[seeds]
                print(f"run   {got['trained']:,} variants: {got['wall']:.1f} s, driver peak "
                      f"RSS {got['peak_mib']:.0f} MiB ({got['trained_peak_mib']:.0f} MiB by "
                      f"the end of training); " + ", ".join(
                          f"{k} {v:.1f} s" for k, v in got["timings"].items())
                      + f"; load_runs {loads[seeds]['seconds']:.1f} s", flush=True)
                print("      highest RSS by phase (MiB): " + ", ".join(
                    f"{k.removeprefix('sweeps.')} {v:.0f}"
                    for k, v in got["rss_by_phase"].items()), flush=True)
        finally:
            if postgres is not None:
                postgres.__exit__(None, None, None)
    if len(sizes) == 2:
        small, large = sizes
        print(f"ratios {large // small}x the variants: run_sweep "
              f"{runs[large]['wall'] / runs[small]['wall']:.1f}x (target <= 11x), load_runs "
              f"{loads[large]['seconds'] / loads[small]['seconds']:.1f}x (target <= 10x); "
              f"driver peak RSS {runs[large]['peak_mib']:.0f} MiB (target <= 1024)")


if __name__ == "__main__":
    main()
