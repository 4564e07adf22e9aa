"""matplotlib for every plot of `sweeps.report`: imported on the first figure (Agg, no display),
and a figure written as a PNG file the one way all plots write it (`write_png`).

Below `plots` and `rung_plot` (both draw through it), so neither imports the other's privates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (a helper process has no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def write_png(fig: Any, path: Path) -> bool:
    """Lay the figure out, write it as a PNG (100 dpi) and free it; True (it was drawn)."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return True
