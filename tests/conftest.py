"""Session-wide fixtures: one local Ray instance per test session, fresh MLflow stores."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance (2 CPUs) shared by every test that needs Ray.

    Starting Ray costs seconds, so tests share it; `sweeps.execution.execute` reuses an initialized
    Ray instead of starting its own.
    """
    import ray

    from sweeps.execution.execute import start_local_ray

    if not ray.is_initialized():
        start_local_ray(num_cpus=2)   # on the loopback, as `sweeps run` starts its own
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory) -> Path:
    """An empty SQLite MLflow store, built once: MLflow's schema migrations take seconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()   # creates the schema
    return path


@pytest.fixture
def tracking_uri(_empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty SQLite store (a copy of the template; artifacts beside it) in the test's
    temp dir, which is also the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(_empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session", autouse=True)
def _quiet_environment():
    """Keep MLflow and Ray from printing banners or phoning home during tests."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield
