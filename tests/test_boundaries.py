"""The import boundaries docs/DESIGN.md draws, read from the source (no imports run):
MLflow only inside sweeps/tracking/, and no module outside it handling MLflow's clients,
runs or artifact repositories itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
TRACKING = SWEEPS / "tracking"
# What hands out MLflow objects (clients, runs, artifact repositories).
MLFLOW_HANDLES = {"make_client", "search_all", "artifact_repository", "locate_parent",
                  "find_parent", "write_artifact"}


def imports(path: Path) -> list[tuple[str, set[str]]]:
    """(module, names imported from it) of every import in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, set()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, {alias.name for alias in node.names}))
    return found


OUTSIDE = sorted(p for p in SWEEPS.rglob("*.py") if TRACKING not in p.parents)


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(SWEEPS)))
def test_only_the_tracking_package_reaches_mlflow(path):
    for module, names in imports(path):
        assert module.split(".")[0] != "mlflow", f"{path.name} imports {module}"
        if module.startswith("sweeps.tracking"):
            assert not names & MLFLOW_HANDLES, f"{path.name} takes {names & MLFLOW_HANDLES}"


def test_the_check_sees_an_mlflow_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from sweeps.tracking.store import make_client\n"
                     "    import mlflow.tracking\n")
    assert ("mlflow.tracking", set()) in imports(probe)
    assert ("sweeps.tracking.store", {"make_client"}) in imports(probe)


# The tracker's own modules: the only ones that may touch its private members.
TRACKER_OWN = {TRACKING / "track.py", TRACKING / "bulk.py"}


def private_uses(path: Path, name: str) -> list[str]:
    """`name._x` attribute uses in the file (a private member of what `name` holds)."""
    return sorted({node.attr for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                   and not node.attr.startswith("__")
                   and isinstance(node.value, ast.Name) and node.value.id == name})


@pytest.mark.parametrize("path", sorted(set(SWEEPS.rglob("*.py")) - TRACKER_OWN),
                         ids=lambda p: str(p.relative_to(SWEEPS)))
def test_other_modules_use_only_the_trackers_public_methods(path):
    assert not private_uses(path, "tracker"), f"{path.name} reaches into the tracker"


def test_the_check_sees_a_private_tracker_member(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f(tracker):\n    tracker._retry('x', f)\n    tracker.__class__\n")
    assert private_uses(probe, "tracker") == ["_retry"]
