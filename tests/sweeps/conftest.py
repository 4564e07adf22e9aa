"""Fixtures of the sweeps tests: a YAML file written on demand and the problems it gives; one
small real sweep (serial executor, SQLite store) shared by the best / verify / retrain tests.

That sweep's sine data set is scaled (``data.scale: standard``), so the logged model has to
apply the training split's scaling to raw inputs. Each hidden size is its own pack of one
variant.
"""

from __future__ import annotations

import sqlite3
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from sweeps.spec.problems import ConfigError
from sweeps.spec.sweep import load_sweep



@pytest.fixture
def write(tmp_path: Path):
    """write(text, name="sweep.yaml") -> path of a file holding the dedented text."""

    def _write(text: str, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return _write


def problems_of(path: Path) -> list[str]:
    """The ConfigError problems of a file; fails the test if the file loads."""
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    assert caught.value.problems, "a ConfigError must carry at least one problem"
    return caught.value.problems


@pytest.fixture
def problems(write):
    """problems(text) -> the problem lines of a sweep file with that text."""

    def _problems(text: str) -> list[str]:
        return problems_of(write(text))

    return _problems


SWEEP = """\
name: best-sine
data:
  source: sine
model:
  hidden: [4]
  activation: tanh
  output_activation: identity
  bias: true
  init: xavier_normal
train:
  loss: mse
  optimizer: adam
  lr: 0.02
  epochs: 150
  log_every: 50
seed: 3
search:
  parameters:
    model.hidden: [2, 3, 5]
"""


@dataclass(frozen=True)
class SmallSweep:
    directory: Path
    file: Path
    tracking_uri: str
    db: Path


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory) -> SmallSweep:
    from sweeps.run import run_sweep

    directory = tmp_path_factory.mktemp("best-sweep")
    file = directory / "best-sine.yaml"
    file.write_text(SWEEP)
    db = directory / "mlflow.db"
    uri = f"sqlite:///{db}"
    outcome = run_sweep(file, tracking_uri=uri, executor="serial", out=directory / "results",
                        progress=False)
    assert not outcome.failed
    return SmallSweep(directory, file, uri, db)


def copy_store(sweep: SmallSweep, directory: Path) -> str:
    """A copy of the sweep's SQLite store (WAL-safe backup); artifacts stay shared."""
    target = directory / "mlflow.db"
    with sqlite3.connect(sweep.db) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return f"sqlite:///{target}"
