"""Schema validation: every kind of mistake gives one line naming the file and the key path."""

from __future__ import annotations

import os

import pytest

import core
from sweeps.spec.config import SweepConfig
from sweeps.spec.problems import ConfigError
from sweeps.spec.sweep import load_sweep

VALID = """\
name: t
data:
  source: article
model:
  hidden: [4]
train:
  lr: 0.1
  epochs: 10
"""


def one(lines: list[str], path: str) -> str:
    """The single problem line about `path` (the part after the file name)."""
    found = [line for line in lines if line.split(": ")[1] == path]
    assert len(found) == 1, f"expected one problem at {path}, got {lines}"
    return found[0]


def test_valid_file_loads_and_fills_defaults(write):
    sweep = load_sweep(write(VALID))
    assert isinstance(sweep.config, SweepConfig)
    (variant,) = sweep.variants
    assert variant.settings["train.optimizer"] == "sgd"
    assert variant.settings["train.batch_size"] is None
    assert variant.settings["model.hidden"] == (4,)
    assert variant.settings["data.task"] == "regression"


def test_each_problem_line_names_file_and_key_path(write):
    path = write(VALID.replace("lr: 0.1", "lr: -0.1"))
    line = one(load_problems(path), "train.lr")
    assert line.startswith(f"{path}: train.lr: ")
    assert "greater than 0" in line and "-0.1" in line
    assert line.endswith("(line 7)")


def load_problems(path):
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    return caught.value.problems


def test_unknown_keys_suggest_the_closest_name(problems):
    lines = problems(VALID.replace("hidden:", "hiden:").replace("data:", "dta:"))
    assert "did you mean 'hidden'?" in one(lines, "model.hiden")
    assert "did you mean 'data'?" in one(lines, "dta")


def test_setting_in_the_wrong_section_points_to_its_path(problems):
    lines = problems(VALID + "lr: 0.5\n")
    assert "did you mean 'train.lr'?" in one(lines, "lr")


@pytest.mark.parametrize(
    "old, new, path, words",
    [
        ("lr: 0.1", 'lr: "0.1"', "train.lr", "valid number"),
        ("epochs: 10", "epochs: 10.5", "train.epochs", "valid integer"),
        ("hidden: [4]", "hidden: four", "model.hidden", "layer size"),
        ("hidden: [4]", "hidden: [4, 0]", "model.hidden", "layer size"),
        ("epochs: 10", "epochs: 10\n  batch_size: [1]", "train.batch_size", "valid integer"),
        ("source: article", "source: article\n  scale: log", "data.scale", "'standard'"),
        ("hidden: [4]", "hidden: [4]\n  bias: 'no'", "model.bias", "boolean"),
    ],
)
def test_wrong_types_are_reported_at_their_key(problems, old, new, path, words):
    assert words in one(problems(VALID.replace(old, new)), path)


def test_a_section_that_is_not_a_mapping(problems):
    assert "expected a mapping" in one(problems(VALID + "search: 3\n"), "search")


@pytest.mark.parametrize(
    "old, new, path",
    [
        ("lr: 0.1", "lr: 0", "train.lr"),
        ("lr: 0.1", "lr: -1.0e-3", "train.lr"),
        ("epochs: 10", "epochs: 0", "train.epochs"),
        ("epochs: 10", "epochs: -5", "train.epochs"),
        ("epochs: 10", "epochs: 10\n  momentum: 1.5\n  optimizer: momentum", "train.momentum"),
        ("source: article", "source: iris\n  test_fraction: 1.0", "data.test_fraction"),
        ("name: t", "name: t\nseed: -1", "seed"),
        ("lr: 0.1", "lr: .inf", "train.lr"),
    ],
)
def test_out_of_range_values(problems, old, new, path):
    one(problems(VALID.replace(old, new)), path)


def test_unknown_names_come_from_the_core_registries(problems):
    lines = problems(VALID.replace("hidden: [4]", "hidden: [4]\n  init: xavier_normall"))
    line = one(lines, "model.init")
    assert "did you mean 'xavier_normal'?" in line
    for name in core.INITIALIZERS:
        assert name in line


def test_softmax_is_not_a_hidden_activation(problems):
    one(problems(VALID.replace("hidden: [4]", "hidden: [4]\n  activation: softmax")), "model.activation")


def test_search_value_validated_like_the_setting_and_located_by_index(problems):
    text = VALID + "search:\n  parameters:\n    train.lr: [0.1, 0.5, -0.1]\n    train.epochs: [5, '7']\n"
    lines = problems(text)
    assert "greater than 0" in one(lines, "search.parameters.train.lr[2]")
    assert "valid integer" in one(lines, "search.parameters.train.epochs[1]")
    assert len(lines) == 2


def test_search_path_that_names_no_setting(problems):
    text = VALID + "search:\n  parameters:\n    train.lrr: [0.1]\n    model: [1]\n"
    lines = problems(text)
    assert "did you mean 'train.lr'?" in one(lines, "search.parameters.train.lrr")
    assert "section" in one(lines, "search.parameters.model")


def test_empty_and_duplicate_value_lists(problems):
    text = VALID + "search:\n  parameters:\n    seed: []\n    model.hidden: [4, [4]]\n"
    lines = problems(text)
    assert "empty" in one(lines, "search.parameters.seed")
    assert "duplicate" in one(lines, "search.parameters.model.hidden[1]")


def test_search_method_rules(problems):
    grid = problems(VALID + "search:\n  samples: 4\n  parameters:\n"
                    "    train.lr: {distribution: log_uniform, low: 0.01, high: 1.0}\n")
    assert "method: random" in one(grid, "search.parameters.train.lr")
    assert "only used by method: random" in one(grid, "search.samples")
    rand = problems(VALID + "search:\n  method: random\n  parameters:\n"
                    "    train.lr: {distribution: log_uniform, low: 0, high: 1.0}\n"
                    "    train.epochs: {distribution: uniform, low: 1, high: 9}\n"
                    "    model.init: {distribution: uniform, low: 1, high: 9}\n")
    assert "low > 0" in one(rand, "search.parameters.train.lr")
    assert "int_uniform" in one(rand, "search.parameters.train.epochs.distribution")
    assert "numeric" in one(rand, "search.parameters.model.init")
    assert "required" in one(rand, "search.samples")


def test_random_search_asking_for_more_samples_than_exist(problems):
    lines = problems(VALID + "search:\n  method: random\n  samples: 5\n  parameters:\n    seed: [1, 2]\n")
    assert "only 2 distinct" in one(lines, "search.samples")


def unsupported_pair() -> tuple[str, str]:
    """An output activation and loss that core does not train together."""
    pairs = sorted((a, l) for a in core.ACTIVATIONS for l in core.LOSSES
                   if (a, l) not in core.SUPPORTED_PAIRS)
    assert pairs, "core supports every pair; nothing to reject"
    return pairs[0]


def test_output_activation_and_loss_that_do_not_fit(problems):
    out, loss = unsupported_pair()
    text = VALID.replace("source: article", "source: xor").replace(
        "hidden: [4]", f"hidden: [4]\n  output_activation: {out}").replace("lr: 0.1", f"lr: 0.1\n  loss: {loss}")
    line = one(problems(text), "model.output_activation")
    assert out in line and loss in line


def test_unfitting_pair_reached_through_the_search_points_at_the_value(problems):
    out, loss = unsupported_pair()
    supported = sorted(l for a, l in core.SUPPORTED_PAIRS if a == out)
    text = VALID.replace("source: article", "source: xor").replace(
        "hidden: [4]", f"hidden: [4]\n  output_activation: {out}")
    text += f"search:\n  parameters:\n    train.loss: [{', '.join(supported + [loss])}]\n"
    lines = problems(text)
    assert one(lines, f"search.parameters.train.loss[{len(supported)}]")


def test_classification_loss_on_a_regression_target(problems):
    text = VALID.replace("lr: 0.1", "lr: 0.1\n  loss: bce")
    line = one(problems(text), "train.loss")
    assert "classification loss" in line and "regression" in line


def test_softmax_output_on_a_regression_target(problems):
    text = VALID.replace("hidden: [4]", "hidden: [4]\n  output_activation: softmax").replace(
        "lr: 0.1", "lr: 0.1\n  loss: cross_entropy")
    assert any("softmax needs a classification target" in line for line in problems(text))


def test_sigmoid_output_cannot_reach_the_targets(problems):
    text = VALID.replace("source: article", "source: sine")
    line = one(problems(text), "model.output_activation")
    assert "target_scale" in line


def test_target_scale_makes_them_reachable(write):
    text = VALID.replace("source: article", "source: sine\n  target_scale: minmax")
    sweep = load_sweep(write(text))
    (dataset,) = sweep.datasets.values()
    assert dataset.Y_train.min() == 0.0 and dataset.Y_train.max() == 1.0


def test_batch_size_larger_than_the_training_set(problems):
    line = one(problems(VALID.replace("epochs: 10", "epochs: 10\n  batch_size: 4")), "train.batch_size")
    assert "3 training rows" in line


def test_optimizer_constant_that_no_optimizer_reads(problems):
    assert "has no effect" in one(problems(VALID.replace("lr: 0.1", "lr: 0.1\n  beta1: 0.8")), "train.beta1")
    lines = problems(VALID + "search:\n  parameters:\n    train.momentum: [0.5, 0.9]\n")
    assert "has no effect" in one(lines, "search.parameters.train.momentum")


def test_missing_csv(problems):
    line = one(problems(VALID.replace("source: article", "source: nothere.csv")), "data.source")
    assert "nothere.csv" in line and "does not exist" in line


def test_misspelled_builtin_suggests_it(problems):
    assert "did you mean 'iris'?" in one(problems(VALID.replace("source: article", "source: irs")), "data.source")


def test_csv_with_nan_and_text_names_row_and_column(write, problems):
    write("a,b,y\n1,2,0.5\n3,,0.1\n4,x,0.2\n5,6,0.3\n6,7,inf\n", name="cells.csv")
    line = one(problems(VALID.replace("source: article", "source: cells.csv")), "data.source")
    assert "row 2 (line 3), column 'b': missing value (NaN)" in line
    assert "row 3 (line 4), column 'b': 'x' is not a finite number" in line
    assert "row 5 (line 6), column 'y': 'inf' is not a finite number" in line


def test_csv_too_small_for_its_test_split(write, problems):
    write("a,y\n1,0.5\n", name="tiny.csv")
    line = one(problems(VALID.replace("source: article", "source: tiny.csv")), "data.test_fraction")
    assert "1 row" in line


def test_article_has_its_own_test_row(problems):
    one(problems(VALID.replace("source: article", "source: article\n  test_fraction: 0.5")), "data.test_fraction")


def test_yaml_syntax_error_gives_line_and_column(problems):
    (line,) = problems("name: t\nmodel:\n  hidden: [4\ntrain: {}\n")
    assert "line 3, column" in line or "line 4, column" in line
    assert "invalid YAML" in line


def test_duplicate_keys_are_problems_not_silently_overwritten(problems):
    lines = problems(VALID + "seed: 1\nseed: 2\n")
    assert "duplicate key" in one(lines, "seed")


def test_yaml_tags_cannot_build_objects(problems):
    (line,) = problems("name: !!python/object/apply:os.system ['true']\n")
    assert "could not determine a constructor" in line


def test_exponent_without_a_dot_is_a_number(write):
    sweep = load_sweep(write(VALID.replace("lr: 0.1", "lr: 1e-3")))
    assert sweep.config.train.lr == pytest.approx(1e-3)


def test_every_problem_is_reported_at_once(problems):
    text = """\
    name: t
    data: {source: missing.csv}
    model: {hidden: [4], activaton: relu}
    train: {lr: -1, epochs: 0}
    search: {parameters: {train.lr: [0.1, -0.2]}}
    """
    lines = problems(text)
    paths = {line.split(": ")[1] for line in lines}
    assert {"data.source", "model.activaton", "train.lr", "train.epochs",
            "search.parameters.train.lr[1]"} <= paths


def test_empty_file_and_non_mapping(problems):
    (empty,) = problems("")
    assert "empty" in empty
    (listed,) = problems("- 1\n- 2\n")
    assert "mapping" in listed


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_sweep(tmp_path / "none.yaml")
    assert caught.value.problems == [f"{tmp_path / 'none.yaml'}: (file): no such file"]


def test_validation_writes_nothing(write, tmp_path, monkeypatch):
    write("a,y\n1,0.5\n2,0.7\n3,0.2\n4,0.9\n5,0.1\n", name="ok.csv")
    good = write(VALID.replace("source: article", "source: ok.csv").replace("sigmoid", "identity"), "good.yaml")
    bad = write(VALID.replace("lr: 0.1", "lr: -1"), "bad.yaml")
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    load_sweep(good)
    with pytest.raises(ConfigError):
        load_sweep(bad)
    assert sorted(os.listdir(tmp_path)) == before


def test_nested_aliases_are_refused_without_expanding_them(problems):
    levels = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    text = "\n".join(levels) + "\ntrain: {lr: *i}\n"  # 9**9 leaves if anything walked them
    lines = problems(text)
    assert "valid number" in one(lines, "train.lr")
    assert "unknown key" in one(lines, "i")
