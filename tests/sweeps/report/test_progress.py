"""The progress bar counts every variant once, trained, diverged or failed."""

from __future__ import annotations

import math

from sweeps.report.progress import SweepProgress


def test_counts_reach_the_total_when_a_pack_fails(capsys):
    with SweepProgress(5, "demo") as bar:      # not a terminal here: plain lines on stderr
        bar.advance([0.5, math.nan], diverged=1)
        bar.advance([], failed=3)
    assert (bar.done, bar.diverged, bar.failed) == (5, 1, 3)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("demo: 5/5 variants") and "diverged 1, failed 3" in last


def test_best_loss_ignores_non_finite_losses():
    bar = SweepProgress(3, "demo", enabled=False)
    bar.advance([math.inf, 0.25, math.nan])
    bar.advance([0.5])
    assert bar.best == 0.25 and bar.done == 4


def test_disabled_bar_prints_nothing(capsys):
    with SweepProgress(2, "demo", enabled=False) as bar:
        bar.advance([0.1, 0.2])
    assert capsys.readouterr().err == ""


def test_the_line_says_reused_only_when_some_were(capsys):
    with SweepProgress(4, "trained") as bar:
        bar.advance([0.5, 0.25])
    with SweepProgress(6, "grown") as bar:
        bar.advance_reused(4)
        bar.advance([0.5])
    with SweepProgress(3, "copied") as bar:
        bar.advance_reused(3)
    last = {line.split(":")[0]: line for line in capsys.readouterr().err.strip().splitlines()}
    first, grown, copied = last["trained"], last["grown"], last["copied"]
    assert first.startswith("trained: 2/4 variants, ") and "reused" not in first
    assert grown.startswith("grown: 5/6 variants: 4 reused, 1 trained, ")
    assert copied.startswith("copied: 3/3 variants: 3 reused, ")
