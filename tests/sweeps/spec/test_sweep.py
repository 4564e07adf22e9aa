"""The shipped sweep files load, say what the issue asks of them, and teach the format."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sweeps.spec.data import BUILTINS
from sweeps.spec.sweep import load_sweep

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
FILES = sorted(CONFIGS.glob("*.yaml"))


def test_the_four_files_exist():
    assert {"article.yaml", "card.yaml", "iris.yaml", "random_search.yaml"} <= {f.name for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_shipped_file_validates_and_is_commented(path):
    sweep = load_sweep(path)
    assert sweep.variants
    comments = [line for line in path.read_text().splitlines() if "#" in line]
    assert len(comments) >= 8, "a shipped sweep file teaches the format through its comments"


def test_article_file_is_the_article_exactly():
    sweep = load_sweep(CONFIGS / "article.yaml")
    assert sweep.config.search is None
    (variant,) = sweep.variants
    expected = {
        "data.source": "article", "data.test_fraction": 0.0, "data.scale": "none",
        "data.task": "regression", "model.hidden": (4,), "model.activation": "sigmoid",
        "model.output_activation": "sigmoid", "model.bias": False, "model.init": "uniform01",
        "train.loss": "half_sse", "train.optimizer": "sgd", "train.lr": 0.1,
        "train.epochs": 10000, "train.batch_size": None, "seed": 42,
    }
    assert {k: variant.settings[k] for k in expected} == expected
    assert variant.settings["train.log_every"] in (100, 1000)
    (data,) = sweep.datasets.values()
    assert data.X_train.shape == (3, 3) and data.X_test.tolist() == [[0.2, 0.4, 0.6]]


def test_card_file_is_the_issues_sweep():
    sweep = load_sweep(CONFIGS / "card.yaml")
    assert len(sweep.variants) == 480
    assert sweep.config.search.parameters == {
        "train.lr": [0.01, 0.1, 0.5, 1.0],
        "model.hidden": [(2,), (4,), (8,), (16,)],
        "model.init": ["uniform01", "xavier_normal", "he_normal"],
        "seed": list(range(10)),
    }
    assert {v.settings["data.source"] for v in sweep.variants} == {"article"}


def test_iris_file_is_softmax_cross_entropy_classification():
    sweep = load_sweep(CONFIGS / "iris.yaml")
    for variant in sweep.variants:
        assert variant.settings["model.output_activation"] == "softmax"
        assert variant.settings["train.loss"] == "cross_entropy"
        assert variant.settings["data.task"] == "classification"
    assert sweep.config.search.method == "grid"


def test_random_search_file_draws_log_uniform_learning_rates_on_a_builtin_set():
    sweep = load_sweep(CONFIGS / "random_search.yaml")
    search = sweep.config.search
    assert search.method == "random"
    assert search.parameters["train.lr"].distribution == "log_uniform"
    assert sweep.config.data.source in BUILTINS
    assert len(sweep.variants) == search.samples


def test_halving_file_is_a_real_search_with_a_validation_split():
    sweep = load_sweep(CONFIGS / "halving.yaml")
    search = sweep.config.search
    assert search.method == "halving" and sweep.config.data.source in ("moons", "breast_cancer")
    assert {"train.lr", "model.hidden", "model.init", "train.optimizer", "seed"} <= set(search.parameters)
    assert len(search.parameters["seed"]) == 10
    assert all(len(values) >= 2 for values in search.parameters.values())
    assert sweep.config.data.validation == 0.2
    (dataset,) = sweep.datasets.values()
    assert dataset.X_val is not None and dataset.labels_val is not None
    assert len(sweep.variants) == math.prod(len(v) for v in search.parameters.values())
