"""`sweeps run configs/card.yaml` on the native two-node cluster (tests/cluster's stack:
PostgreSQL, an MLflow server, a Ray head and a second node, one CPU each), writing straight
into PostgreSQL: the driver writing every child (SWEEPS_CHILD_WRITERS=driver, today's path)
against the workers writing their packs, alternately, each on a fresh experiment.

Prints each run's wall time and the phases `sweeps run` reports. Asserts nothing.
Usage: python benchmarks/bench_cluster_card.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from tests.cluster.native_stack import BIN, NativeStack

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        workdir = Path(tmp)
        (workdir / "logs").mkdir()
        stack = NativeStack.start(logs=workdir / "logs").ensure_ready()
        try:
            card = yaml.safe_load((REPO / "configs" / "card.yaml").read_text())
            walls: dict[str, list[float]] = {"driver": [], "workers": []}
            for round_ in range(args.rounds):
                for mode in ("driver", "workers"):
                    card["name"] = f"card-{mode}-{round_}"
                    path = workdir / f"{card['name']}.yaml"
                    path.write_text(yaml.safe_dump(card, sort_keys=False))
                    env = dict(stack.driver_env(), SWEEPS_CHILD_WRITERS=mode)
                    clock = time.perf_counter()
                    done = subprocess.run(
                        [str(BIN / "sweeps"), "run", str(path), "--address", stack.ray.address,
                         "--tracking-uri", stack.store_uri, "--no-progress",
                         "--out", str(workdir / card["name"])],
                        cwd=workdir, env=env, capture_output=True, text=True)
                    wall = time.perf_counter() - clock
                    if done.returncode:
                        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
                    walls[mode].append(wall)
                    phases = re.search(r"^Time:.*$", done.stdout, re.M)
                    print(f"{mode:<8} {wall:.1f} s  ({phases.group(0) if phases else ''})",
                          flush=True)
        finally:
            stack.stop()
    best = {mode: min(values) for mode, values in walls.items()}
    print(f"best: driver writes {best['driver']:.1f} s, workers write {best['workers']:.1f} s "
          f"({best['driver'] / best['workers']:.2f}x)")


if __name__ == "__main__":
    main()
