"""sweeps.vocabulary.direction: the one lookup of which way a metric is better, and every
path that ranks (one metric, several, validation) reading it."""

from __future__ import annotations

import pytest

from sweeps.methods.validation import (OBJECTIVES, VAL_METRICS, metric_problems, mode_of,
                                       objectives)
from sweeps.vocabulary import METRICS, direction


def test_every_metric_has_its_tables_direction_and_an_unknown_one_none():
    assert {name: direction(name) for name in METRICS} == \
        {name: metric.mode for name, metric in METRICS.items()}
    assert direction("val_accuracy") == "max" and direction("val_loss") == "min"
    with pytest.raises(ValueError, match="no direction known for metric 'val_acc'"):
        direction("val_acc")


def test_one_metric_and_a_list_of_metrics_give_each_metric_the_same_direction():
    for name in OBJECTIVES:
        assert objectives(name, None) == [(name, direction(name))]
        assert mode_of(name, None) == direction(name)
    listed = objectives(list(OBJECTIVES), None)
    assert listed == [(name, direction(name)) for name in OBJECTIVES]
    assert objectives(["val_loss", "n_params"], ["min", "max"]) == \
        [("val_loss", "min"), ("n_params", "max")]           # a mode given is kept


def test_an_unknown_metric_is_a_problem_in_validation_and_an_error_past_it():
    [problem] = metric_problems("val_acc", None)
    assert "unknown metric 'val_acc'" in problem.message and "val_accuracy" in problem.message
    # Validation reports it first; a caller that skipped validation gets no guessed "min".
    with pytest.raises(ValueError, match="no direction known"):
        objectives(["val_loss", "val_acc"], None)
    with pytest.raises(ValueError, match="no direction known"):
        mode_of("val_acc", None)


def test_a_mode_against_the_metrics_direction_is_reported():
    for name in VAL_METRICS:
        other = "max" if direction(name) == "min" else "min"
        [problem] = metric_problems(name, other)
        assert f"use mode: {direction(name)}" in problem.message
        assert metric_problems(name, direction(name)) == []
