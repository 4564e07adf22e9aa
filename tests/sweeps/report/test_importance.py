"""Which settings explain the ranking metric (`sweeps.report.importance`): Optuna's evaluators
on configuration means, from a summary of any sweep."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from sweeps.report import results
from sweeps.report.importance import EVALUATORS, format_importances, importances


def _summary(lrs=(0.001, 0.01, 0.1, 1.0), hidden=(2, 8), inits=("he_normal", "xavier_normal"),
             seeds=(0, 1), rung=None):
    """A summary whose val_loss depends on the learning rate (strongly) and the width (a
    little), not on the initializer."""
    rows = []
    rng = np.random.default_rng(0)
    for i, (lr, h, init, seed) in enumerate(itertools.product(lrs, hidden, inits, seeds)):
        group = f"{lr}-{h}-{init}"
        rows.append({"run_id": f"r{i}", "variant_key": f"v{i}", "group_key": group,
                     "status": "ok", "name": group, "train.lr": lr, "model.hidden": h,
                     "model.init": init, "seed": seed,
                     "val_loss": abs(np.log10(lr) + 2) + 0.1 * (h == 2)
                     + 0.001 * rng.normal(), "train_loss": 0.0})
        if rung is not None:
            rows[-1].update(rung=rung(lr), stopped_epoch=10 * (rung(lr) + 1))
    frame = pd.DataFrame(rows)
    frame.attrs["swept"] = ["train.lr", "model.hidden", "model.init", "seed"]
    return results.summarize(frame, metric="val_loss")


@pytest.mark.parametrize("evaluator", sorted(EVALUATORS))
def test_the_setting_the_metric_depends_on_comes_first(evaluator):
    table = importances(_summary(), evaluator=evaluator)
    assert list(table["setting"])[0] == "train.lr"
    assert set(table["setting"]) == {"train.lr", "model.hidden", "model.init"}
    assert table["importance"].sum() == pytest.approx(1.0)
    text = format_importances(table, "val_loss", evaluator)
    assert text.splitlines()[1].split()[0] == "train.lr"


def test_the_same_summary_gives_the_same_importances():
    assert importances(_summary()).equals(importances(_summary()))


def test_too_few_configurations_or_one_varying_setting_give_none():
    assert importances(_summary(lrs=(0.01, 0.1), hidden=(4,), inits=("he_normal",))).empty
    assert importances(_summary(hidden=(4,), inits=("he_normal",))).empty   # only lr varies
    assert "needs at least" in format_importances(
        importances(_summary(hidden=(4,), inits=("he_normal",))), "val_loss")


def test_under_halving_only_configurations_of_the_last_rung_count():
    # the lr that never reached the last rung would otherwise carry the importance
    summary = _summary(lrs=(0.001, 0.01, 0.1, 1.0, 3.0), rung=lambda lr: 0 if lr == 3.0 else 2)
    table = importances(summary)
    assert table.equals(importances(_summary(rung=lambda lr: 2)))
    with pytest.raises(ValueError, match="unknown evaluator"):
        importances(summary, evaluator="nope")
    with pytest.raises(ValueError, match="no metric"):
        importances(summary, metric="val_accuracy")
