"""Ties with the best configuration: the paired t-test over seeds, and its marks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sweeps.report import results, ties


@pytest.mark.parametrize("dof, critical", [(1, 12.7062047), (4, 2.7764451), (9, 2.2621572),
                                           (99, 1.9842169)])
def test_the_p_value_is_alpha_at_the_t_tables_two_sided_critical_value(dof, critical):
    n = dof + 1
    spread = np.random.default_rng(dof).standard_normal(n)
    spread = (spread - spread.mean()) / spread.std(ddof=1)       # mean 0, std 1 exactly
    differences = critical / math.sqrt(n) + spread                # t = critical
    assert ties.paired_t_pvalue(differences) == pytest.approx(0.05, abs=1e-6)
    assert ties.paired_t_pvalue(-differences) == pytest.approx(0.05, abs=1e-6)


def test_degenerate_differences():
    assert ties.paired_t_pvalue(np.zeros(5)) == 1.0
    assert ties.paired_t_pvalue(np.full(5, 0.1)) == 0.0
    assert math.isnan(ties.paired_t_pvalue(np.array([0.3])))
    assert math.isnan(ties.paired_t_pvalue(np.array([0.3, np.nan])))


def seed_frame(shifts: dict[float, float], seeds=range(8), noise=0.01) -> pd.DataFrame:
    """Variants of configurations train.lr = key, test_loss = 1 + shift + a seed effect
    shared by every configuration + noise."""
    rng = np.random.default_rng(0)
    seed_effect = {s: rng.normal(0, 0.5) for s in range(100)}
    rows = []
    for lr, shift in shifts.items():
        for seed in (seeds(lr) if callable(seeds) else seeds):
            rows.append({"run_id": f"{lr}-{seed}", "variant_key": f"{lr}-{seed}",
                         "group_key": f"g{lr}", "status": "ok", "name": f"lr={lr} seed={seed}",
                         "train.lr": lr, "seed": seed,
                         "test_loss": 1 + shift + seed_effect[seed] + rng.normal(0, noise)})
    frame = pd.DataFrame(rows)
    frame.attrs["swept"] = ["train.lr", "seed"]
    return frame


def test_a_configuration_within_the_seeds_noise_of_the_best_is_tied_a_distant_one_is_not():
    # The seed effect (std 0.5) dwarfs both gaps; pairing removes it.
    frame = seed_frame({0.1: 0.0, 0.2: 0.001, 0.3: 0.05})
    marked = ties.mark_ties(frame, results.summarize(frame))
    assert sorted(marked["train.lr"].tolist()[:2]) == [0.1, 0.2]   # within noise: either
    assert marked["tied"].tolist() == [True, True, False]
    assert math.isnan(marked["p_vs_best"].iloc[0]) and marked["p_vs_best"].iloc[2] < 0.05
    text = results.format_summary(marked)
    assert [line.split()[-1] for line in text.splitlines()[1:]] == ["best", "tied", "worse"]


def test_diverged_seeds_are_left_out_of_the_pairs():
    frame = seed_frame({0.1: 0.0, 0.2: 0.05})
    diverged = frame.index[(frame["train.lr"] == 0.2) & (frame["seed"] < 4)]
    frame.loc[diverged, ["status", "test_loss"]] = ["diverged", np.nan]
    marked = ties.mark_ties(frame, results.summarize(frame))
    assert marked["tied"].tolist() == [True, False]            # four pairs remain, far apart
    frame.loc[frame.index[(frame["train.lr"] == 0.2) & (frame["seed"] < 7)], "status"] = \
        "diverged"
    untested = ties.mark_ties(frame, results.summarize(frame))
    assert untested["tied"].isna().tolist() == [False, True]   # one pair: no test


def test_nothing_is_marked_without_the_same_seeds_everywhere():
    frame = seed_frame({0.1: 0.0, 0.2: 0.001}, seeds=lambda lr: range(8) if lr == 0.1
                       else range(1, 9))
    marked = ties.mark_ties(frame, results.summarize(frame))
    assert marked["tied"].isna().all() and marked["p_vs_best"].isna().all()
    assert "vs best" not in results.format_summary(marked)
