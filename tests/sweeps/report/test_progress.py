"""The progress bar counts every variant once, trained, diverged or failed, and shows the best
value of the metric the sweep ranks on."""

from __future__ import annotations

import math

from sweeps.report.progress import SweepProgress


def test_counts_reach_the_total_when_a_pack_fails(capsys):
    with SweepProgress(5, "demo") as bar:      # not a terminal here: plain lines on stderr
        bar.advance(losses(0.5, math.nan), diverged=1)
        bar.advance([], failed=3)
    assert (bar.done, bar.diverged, bar.failed) == (5, 1, 3)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("demo: 5/5 variants") and "diverged 1, failed 3" in last


def losses(*values: float) -> list[dict[str, float]]:
    """Final metrics of trained variants with these training losses (no validation split)."""
    return [{"train_loss": value, "test_loss": 1.0} for value in values]


def test_best_loss_ignores_non_finite_losses():
    bar = SweepProgress(3, "demo", enabled=False, metric="train_loss")
    bar.advance(losses(math.inf, 0.25, math.nan))
    bar.advance(losses(0.5))
    assert bar.best == 0.25 and bar.done == 4


def test_without_a_metric_the_first_default_ranking_metric_a_variant_has(capsys):
    with SweepProgress(2, "demo") as bar:
        bar.advance([{"train_loss": 0.1, "val_loss": 0.4}, {"train_loss": 0.2, "val_loss": 0.3}])
    assert (bar.metric, bar.best) == ("val_loss", 0.3)
    assert "best val_loss 0.3," in capsys.readouterr().err


def test_a_metric_where_higher_is_better_shows_its_highest(capsys):
    with SweepProgress(3, "demo", metric="val_accuracy") as bar:
        bar.advance([{"train_loss": 0.1, "val_loss": 0.2, "val_accuracy": 0.75},
                     {"train_loss": 0.3, "val_loss": 0.1, "val_accuracy": 0.9},
                     {"train_loss": 0.2, "val_loss": math.nan, "val_accuracy": math.nan}],
                    diverged=1)
    assert bar.best == 0.9
    assert "best val_accuracy 0.9," in capsys.readouterr().err


def test_disabled_bar_prints_nothing(capsys):
    with SweepProgress(2, "demo", enabled=False) as bar:
        bar.advance(losses(0.1, 0.2))
    assert capsys.readouterr().err == ""


def test_the_line_says_reused_only_when_some_were(capsys):
    with SweepProgress(4, "trained") as bar:
        bar.advance(losses(0.5, 0.25))
    with SweepProgress(6, "grown") as bar:
        bar.advance_reused(4)
        bar.advance(losses(0.5))
    with SweepProgress(3, "copied") as bar:
        bar.advance_reused(3)
    last = {line.split(":")[0]: line for line in capsys.readouterr().err.strip().splitlines()}
    first, grown, copied = last["trained"], last["grown"], last["copied"]
    assert first.startswith("trained: 2/4 variants, ") and "reused" not in first
    assert grown.startswith("grown: 5/6 variants: 4 reused, 1 trained, ")
    assert copied.startswith("copied: 3/3 variants: 3 reused, ")
