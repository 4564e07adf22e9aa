"""core against XLA (JAX) and PyTorch on the population workloads, before and after a change.

For each workload of ``population_workloads.WORKLOADS`` and each dtype: core of this checkout
("after"), core of another git revision ("before", loaded from ``git archive REV core`` as the
module ``core_before``), JAX and PyTorch when installed (``pip install '.[bench]'``). The
engines alternate within every repeat, so a change in machine load hits all of them; the
figure kept is each engine's least CPU time over the repeats (process time: what the machine
gave us, not what others took; wall time under the load of a shared machine mostly measures
the others). Without JAX the table uses the figures stored in ``xla_figures.json`` (written by
``--record``, with the date, machine and versions), and says so.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

import core
import reference_engines as ref
from population_workloads import WORKLOADS, core_inputs, train_core

FIGURES = Path(__file__).with_name("xla_figures.json")
DTYPES = (np.float64, np.float32)


def load_core_at(rev: str):
    """``core`` as it is at git revision ``rev``, imported as the module ``core_before``."""
    root = Path(__file__).resolve().parents[1]
    tar = subprocess.run(["git", "archive", rev, "core"], cwd=root, check=True,
                         capture_output=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="core-before-"))
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(folder, filter="data")
    spec = importlib.util.spec_from_file_location(
        "core_before", folder / "core" / "__init__.py",
        submodule_search_locations=[str(folder / "core")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["core_before"] = module
    spec.loader.exec_module(module)
    return module


def _time_core(engine, wl, dtype):
    with ref.Clock() as clock:
        train_core(engine, wl, dtype)
    return clock.cpu


def _time_reference(timer, wl, dtype):
    total = 0.0
    for pop in wl.populations():
        _, params, _ = core_inputs(core, pop, dtype)
        total += timer(wl, pop, params, dtype)[0].cpu
    return total


def measure(engines: dict, workloads, repeats: int) -> dict:
    """{(workload, dtype name): {engine: least CPU seconds over the repeats}}."""
    table = {}
    for wl in workloads:
        for dtype in DTYPES:
            best = {}
            for _ in range(repeats):
                for name, run in engines.items():
                    best[name] = min(best.get(name, np.inf), run(wl, dtype))
            table[wl.name, np.dtype(dtype).name] = best
            print(f"  measured {wl.name} {np.dtype(dtype).name}: " + ", ".join(
                f"{k} {v:.3f} s" for k, v in best.items()), flush=True)
    return table


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cpus, {platform.system()}"


def stored_figures() -> dict:
    """({(workload, dtype): {engine: seconds}}, the record's description), from FIGURES."""
    data = json.loads(FIGURES.read_text())
    figures = {(r["workload"], r["dtype"]): r["seconds"] for r in data["figures"]}
    return figures, f"stored {data['date']} on {data['machine']} ({data['versions']})"


def record(table: dict, engines=("jax", "torch")):
    rows = [{"workload": w, "dtype": d, "seconds": {e: round(s[e], 4) for e in engines if e in s}}
            for (w, d), s in table.items()]
    versions = ", ".join(f"{m} {ref.version(m)}" for m in ("jax", "torch") if ref.available(m))
    FIGURES.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "versions": f"{versions}, numpy {np.__version__}",
        "how": "least CPU seconds of 3 alternating repeats, taskset -c 0, one thread",
        "figures": rows}, indent=1) + "\n")


def print_table(table: dict, stored: dict | None):
    """One row per workload and dtype: seconds and ratios; then the medians."""
    def measured_or_stored(key, s, engine):
        return s.get(engine, (stored or {}).get(key, {}).get(engine, np.nan))

    head = (f"  {'workload':<13}{'dtype':<8}{'before':>8}{'after':>8}{'XLA':>8}{'torch':>8}"
            f"{'before/XLA':>11}{'after/XLA':>10}{'after/torch':>12}{'speed-up':>9}")
    print(head)
    ratios = {"before": [], "after": []}
    for key, s in table.items():
        x, t = measured_or_stored(key, s, "jax"), measured_or_stored(key, s, "torch")
        b = s.get("before", np.nan)
        ratios["before"].append(b / x)
        ratios["after"].append(s["after"] / x)
        print(f"  {key[0]:<13}{key[1]:<8}{b:8.3f}{s['after']:8.3f}{x:8.3f}{t:8.3f}"
              f"{b / x:11.2f}{s['after'] / x:10.2f}{s['after'] / t:12.2f}{b / s['after']:9.2f}")
    for name, r in ratios.items():
        r = np.array(r)
        if np.isfinite(r).any():
            print(f"  median {name}/XLA {np.nanmedian(r):.2f} (float64 "
                  f"{np.nanmedian(r[0::2]):.2f}, float32 {np.nanmedian(r[1::2]):.2f}), "
                  f"worst {np.nanmax(r):.2f}")


def run(before: str | None, repeats: int, names=None, write=False):
    workloads = [w for w in WORKLOADS if names is None or w.name in names]
    engines = {"after": lambda wl, dt: _time_core(core, wl, dt)}
    if before:
        old = load_core_at(before)
        engines["before"] = lambda wl, dt: _time_core(old, wl, dt)
    if ref.available("jax"):
        engines["jax"] = lambda wl, dt: _time_reference(ref.time_jax, wl, dt)
    if ref.available("torch"):
        engines["torch"] = lambda wl, dt: _time_reference(ref.time_torch, wl, dt)
    stored, note = None, "JAX measured in this run"
    if not ("jax" in engines and "torch" in engines):      # what is missing, from the record
        stored, where = stored_figures()
        note = note if "jax" in engines else where
    print(f"== core vs XLA and PyTorch: {len(workloads)} workloads x float64/float32, "
          f"least CPU time of {repeats} alternating repeats; before = core at {before or '-'}; "
          f"XLA: {note}; load average {os.getloadavg()[0]:.1f}")
    table = measure(engines, workloads, repeats)
    print_table(table, stored)
    if write:
        record(table)
        print(f"  JAX/PyTorch figures written to {FIGURES.name}")
