"""backprop sweeps: YAML sweep files -> Ray tasks -> MLflow runs -> pandas tables.

The DataFrame API, imported on first use so that `import sweeps` (and the light CLI
commands) stay free of Ray, MLflow and pandas:

    sweeps.run_sweep(path, ...)         train and log a sweep; returns its tables
    sweeps.load_runs(experiment, ...)   one row per variant, read back from MLflow
    sweeps.summarize(frame, over="seed") one row per group, seeds aggregated
    sweeps.load_curves(experiment, ...) loss curves, long format
    sweeps.best_model(experiment, ...)  the best variant, re-trained, as an MLflow pyfunc model
    sweeps.verify(experiment, ...)      re-train variants from their logged params, compare
"""

from importlib import import_module

_LAZY = {
    "run_sweep": "sweeps.run",
    "load_sweep": "sweeps.spec.sweep",
    "load_runs": "sweeps.report.results",
    "load_curves": "sweeps.report.results",
    "summarize": "sweeps.report.results",
    "best_model": "sweeps.best",
    "verify": "sweeps.verification",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
