"""Fixtures for the results tests: fresh SQLite MLflow stores that start in milliseconds.

MLflow builds a new store's schema with its migrations (seconds); every store here is a copy
of one store built once per session, so each test still gets its own empty store.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()   # creates the schema
    return path


@pytest.fixture
def tracking_uri(_empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty SQLite store (and artifact root) inside the test's temp dir."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(_empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
