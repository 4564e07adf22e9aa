"""Every backquoted `core.*` / `sweeps.*` name in the sources' docstrings and comments, the
README and docs/DESIGN.md names something that exists, and so does every test file they name:
a docstring that sends a reader to a class or a test that moved fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "DESIGN.md",
             *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "sweeps").rglob("*.py"))]
# `sweeps.spec.search.Halving`, ``core.losses.SUPPORTED_PAIRS``, `core.train()`
REFERENCE = re.compile(r"`+((?:core|sweeps)(?:\.\w+)+)(?:\(\))?`+")


def references(path: Path) -> list[str]:
    return sorted(set(REFERENCE.findall(path.read_text(encoding="utf-8"))))


def resolves(name: str) -> bool:
    """The longest importable module prefix of `name`, then attributes for the rest. A class or
    function named through a plain module must be defined there (one it merely imports has
    moved); a package (`core`, `sweeps`) may name what it re-exports."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        package = hasattr(target, "__path__")
        for depth, attribute in enumerate(parts[cut:]):
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
            defined_in = getattr(target, "__module__", module_name)
            if depth == 0 and not package and callable(target) and defined_in != module_name:
                return False
        return True
    return False


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_backquoted_name_resolves(path):
    stale = [name for name in references(path) if not resolves(name)]
    assert not stale, f"{path.relative_to(ROOT)} names what does not exist: {', '.join(stale)}"


def test_a_moved_name_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see `sweeps.spec.search.Halving` and ``core.train()``")
    assert references(page) == ["core.train", "sweeps.spec.search.Halving"]
    assert resolves("core.train") and not resolves("sweeps.spec.search.Halving")


# tests/tracking/test_contract.py, `tests/core/test_continuation.py`
TEST_FILE = re.compile(r"\btests/[\w/]+\.py\b")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_file_named_exists(path):
    named = set(TEST_FILE.findall(path.read_text(encoding="utf-8")))
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, f"{path.relative_to(ROOT)} names test files that do not exist: {missing}"


def test_a_moved_test_file_is_caught():
    named = TEST_FILE.findall("see tests/sweeps/test_plan.py (`tests/core/test_train.py`)")
    assert named == ["tests/sweeps/test_plan.py", "tests/core/test_train.py"]
    assert not (ROOT / named[0]).is_file() and (ROOT / named[1]).is_file()


def layout_block(path: Path) -> str:
    """The code block under the page's "## Layout" heading."""
    text = path.read_text(encoding="utf-8")
    return text.split("## Layout", 1)[1].split("```")[1]


@pytest.mark.parametrize("page", ["README.md", "docs/DESIGN.md"])
def test_the_layout_block_names_every_module(page):
    block = layout_block(ROOT / page)
    modules = [p for folder in ("core", "sweeps") for p in (ROOT / folder).rglob("*.py")
               if not p.name.startswith("__")]
    missing = [str(p.relative_to(ROOT)) for p in modules
               if not re.search(rf"\b{p.stem}\b", block)]
    assert not missing, f"{page}'s layout block misses {', '.join(missing)}"
