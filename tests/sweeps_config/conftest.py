"""Helpers for the sweep-file tests: write a YAML file, collect the problems it gives."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sweeps.problems import ConfigError
from sweeps.sweep import load_sweep



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
