"""`sweeps validate` and `sweeps plan` through the CLI, and a property test: valid files
mutated into invalid ones (wrong types, unknown keys, out-of-range values, broken YAML) always
give exit status 2, a message naming the key (or the line), and no traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sweeps.cli import app
from sweeps.spec.config import SETTING_PATHS, SearchConfig, SweepConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
runner = CliRunner()

BASE = {
    "name": "prop",
    "data": {"source": "article", "test_fraction": 0.0, "scale": "none", "task": "regression"},
    "model": {"hidden": [4], "activation": "sigmoid", "output_activation": "sigmoid",
              "bias": False, "init": "uniform01"},
    "train": {"loss": "half_sse", "optimizer": "sgd", "lr": 0.1, "epochs": 50, "batch_size": None,
              "log_every": 10, "dtype": "float64", "weight_decay": 0.0},
    "seed": 42,
    "data_seed": 0,
    "search": {"method": "grid",
               "parameters": {"train.lr": [0.1, 0.5], "model.hidden": [2, 4], "seed": [0, 1]}},
}

FLOATS = ["data.test_fraction", "data.validation", "train.lr", "train.weight_decay"]
INTS = ["train.epochs", "train.log_every", "train.batch_size", "seed", "data_seed"]
STRINGS = ["name", "data.source", "data.scale", "data.task", "model.activation",
           "model.output_activation", "model.init", "train.loss", "train.optimizer", "train.dtype",
           "search.method"]
BOOLS = ["model.bias"]
MAPPINGS = ["data", "model", "train", "search", "search.parameters"]

YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}
words = st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda w: w not in YAML_WORDS)
lists = st.lists(st.integers(0, 5), min_size=1, max_size=3)
whole = st.integers(-10**6, 10**6)
fractional = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: not float(x).is_integer())

WRONG = {
    "float": st.one_of(words, lists, st.booleans(), st.fixed_dictionaries({"a": whole})),
    "int": st.one_of(words, fractional, lists, st.booleans()),
    "str": st.one_of(whole, fractional, lists, st.booleans()),
    "bool": st.one_of(words, whole, fractional, lists),
    "mapping": st.one_of(words, whole, lists),
    "hidden": st.one_of(words, fractional, st.booleans(), st.lists(words, min_size=1, max_size=2)),
}


def put(data: dict, path: str, value) -> dict:
    """A deep copy of data with the dotted path set (search.parameters keys keep their dots)."""
    out = copy.deepcopy(data)
    if path.startswith("search.parameters."):
        out["search"]["parameters"][path[len("search.parameters."):]] = value
        return out
    *parents, leaf = path.split(".")
    node = out
    for part in parents:
        node = node[part]
    node[leaf] = value
    return out


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mutations") / "sweep.yaml"


def validate(path: Path, text: str):
    path.write_text(text)
    return runner.invoke(app, ["validate", str(path)])


def assert_refused(result, *expected: str) -> None:
    """Exit 2, every expected text in the output, no traceback, no stray exception."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, (text, result.output)


def test_base_file_is_valid(sweep_file):
    result = validate(sweep_file, yaml.safe_dump(BASE, sort_keys=False))
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "8 variants" in result.output


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wrong_types_are_refused_naming_the_key(sweep_file, data):
    kind = data.draw(st.sampled_from(["float", "int", "str", "bool", "mapping", "hidden"]))
    paths = {"float": FLOATS, "int": INTS, "str": STRINGS, "bool": BOOLS, "mapping": MAPPINGS,
             "hidden": ["model.hidden"]}[kind]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(WRONG[kind])
    result = validate(sweep_file, yaml.safe_dump(put(BASE, path, value), sort_keys=False))
    assert_refused(result, f": {path}: ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from([None, "data", "model", "train", "search"]),
       key=st.from_regex(r"[a-z]{2,8}_[a-z]{1,6}", fullmatch=True))
def test_unknown_keys_are_refused_naming_the_key(sweep_file, section, key):
    known = ({p.split(".")[-1] for p in SETTING_PATHS} | set(SweepConfig.model_fields)
             | set(SearchConfig.model_fields))
    if key in known:
        return
    mutated = put(BASE, f"{section}.{key}" if section else key, 1)
    result = validate(sweep_file, yaml.safe_dump(mutated, sort_keys=False))
    assert_refused(result, f": {section + '.' if section else ''}{key}: unknown key")


def _below(limit):
    return st.floats(max_value=limit, allow_nan=False, allow_infinity=False)


OUT_OF_RANGE = {
    "train.lr": st.one_of(_below(0.0), st.just(float("inf")), st.just(float("nan"))),
    "train.epochs": st.integers(max_value=0),
    "train.log_every": st.integers(max_value=0),
    "train.batch_size": st.integers(max_value=0),
    "train.weight_decay": _below(-1e-12),
    "train.eps": _below(0.0),
    "train.momentum": st.one_of(st.floats(min_value=1.0, allow_nan=False, allow_infinity=False), _below(-1e-12)),
    "train.beta2": st.floats(min_value=1.0, allow_nan=False, allow_infinity=False),
    "data.test_fraction": st.one_of(st.floats(min_value=1.0, allow_nan=False, allow_infinity=False), _below(-1e-12)),
    "data.validation": st.one_of(st.floats(min_value=1.0, allow_nan=False, allow_infinity=False), _below(0.0)),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)),
    "data_seed": st.integers(max_value=-1),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_out_of_range_values_are_refused_naming_the_key(sweep_file, data):
    path = data.draw(st.sampled_from(sorted(OUT_OF_RANGE) + ["search:train.lr", "search:seed", "model.hidden"]))
    if path == "model.hidden":
        layers = data.draw(st.lists(st.integers(max_value=0), min_size=1, max_size=3))
        mutated, expected = put(BASE, path, layers), "model.hidden"
    elif path.startswith("search:"):
        setting = path.split(":")[1]
        values = list(BASE["search"]["parameters"][setting])
        index = data.draw(st.integers(0, len(values)))
        values.insert(index, data.draw(OUT_OF_RANGE[setting]))
        mutated = put(BASE, f"search.parameters.{setting}", values)
        expected = f"search.parameters.{setting}[{index}]"
    else:
        mutated, expected = put(BASE, path, data.draw(OUT_OF_RANGE[path])), path
    result = validate(sweep_file, yaml.safe_dump(mutated, sort_keys=False))
    assert_refused(result, f": {expected}: ")


# Each is a syntax error wherever it lands: the ": " also ends a plain scalar it would continue.
BREAKERS = ['x: "unclosed', "x: a: b", "x: [1, 2", "x: {a: 1", "x: 'it''s", "x: ]", "x: @at"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_broken_yaml_is_refused_with_line_and_column(sweep_file, data):
    lines = yaml.safe_dump(BASE, sort_keys=False).splitlines()
    at = data.draw(st.integers(0, len(lines)))
    breaker = data.draw(st.sampled_from(BREAKERS))
    indent = data.draw(st.sampled_from(["", "  ", "    "]))
    lines.insert(at, indent + breaker)
    result = validate(sweep_file, "\n".join(lines) + "\n")
    assert_refused(result, "invalid YAML", "line ", "column ")
    assert len(result.output.strip().splitlines()) == 1


def test_validate_ok_on_the_shipped_files():
    for path in sorted(CONFIGS.glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("ok")


def test_plan_prints_variants_packs_and_work():
    result = runner.invoke(app, ["plan", str(CONFIGS / "card.yaml"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "variants: 480" in result.output and "packs: 10 (4 of 60, 6 of 40 variants)" \
        in result.output
    assert "variant-epochs" in result.output


def test_every_problem_one_line_each(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {lr: -1, epochs: 0, lrr: 2}\nmodel: {init: zeros}\n")
    for command in ("validate", "plan"):
        result = runner.invoke(app, [command, str(path)])
        assert_refused(result)
        lines = result.output.strip().splitlines()
        assert len(lines) == 4
        assert all(line.startswith(f"{path}: ") for line in lines)


def test_missing_file(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert_refused(result, "no such file")


def test_light_commands_import_neither_ray_nor_mlflow(tmp_path):
    """validate and plan stay fast: no Ray, MLflow or pandas behind them (halving included).
    On a generated set: scikit-learn's sets import pandas themselves."""
    import subprocess
    import sys

    from tests.sweep_files import write_halving_sweep

    path = write_halving_sweep(tmp_path)
    code = ("import sys; from sweeps.cli import app\n"
            "for command in ('validate', 'plan'):\n"
            f"    app([command, {str(path)!r}], standalone_mode=False)\n"
            "print(sorted(m for m in ('ray', 'mlflow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "variants: 16 (halving on val_loss (min)" in out.stdout


# ---------------------------------------------------------------------------------------------
# search.method: halving, rule by rule: one line naming the key, exit 2

HALVING = """\
name: h
data: {source: moons, validation: 0.2}
model: {output_activation: sigmoid}
train: {loss: bce, epochs: 300}
search:
  method: halving
  min_epochs: 10
  parameters:
    train.lr: [0.1, 0.3]
    seed: [0, 1]
"""


def halving_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "halving.yaml"
    path.write_text(text)
    return path


def test_halving_file_is_valid_and_planned(tmp_path):
    path = halving_file(tmp_path, HALVING)
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    result = runner.invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    # two groups: a bracket keeps 1 of them at each rung, and one bracket already costs 52% of
    # the grid, over the half that brackets: auto spends
    assert ("variants: 4 (halving on val_loss (min), eta 3: 5 rungs ending at epochs 10, 30, 90, "
            "270, 300, 1 bracket ranked by value and by trend; sampler: grid over 2 parameters)"
            ) in result.output
    assert "128 train / 32 val / 40 test rows" in result.output


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


SEARCH_KEYS = "  min_epochs: 10\n"
HALVING_RULES = [
    # (what the file says, the key blamed, words of the message)
    ((SEARCH_KEYS, ""), "search.min_epochs", ["required for method: halving"]),
    ((SEARCH_KEYS, "  min_epochs: 0\n"), "search.min_epochs", ["greater than or equal to 1"]),
    ((SEARCH_KEYS, "  min_epochs: 300\n"), "search.min_epochs", ["below train.epochs (300)"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  eta: 1\n"), "search.eta", ["greater than or equal to 2"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  eta: 2.5\n"), "search.eta", ["valid integer"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  metric: val_los\n"), "search.metric", ["did you mean 'val_loss'?"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  metric: val_mse\n"), "search.metric",
     ["val_mse needs a regression data set", "'moons' is classification", "val_accuracy"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  mode: max\n"), "search.mode", ["mode max", "metric val_loss"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  metric: val_accuracy\n  mode: min\n"), "search.mode",
     ["mode min", "metric val_accuracy"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  mode: up\n"), "search.mode", ["'min' or 'max'"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  brackets: 0\n"), "search.brackets", ["auto or a number"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  brackets: some\n"), "search.brackets", ["auto or a number"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  brackets: 6\n"), "search.brackets",
     ["6 brackets", "5 rungs (10, 30, 90, 270, 300)"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  sampler: randm\n"), "search.sampler", ["did you mean 'random'?"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  sampler: random\n"), "search.samples", ["required for sampler: random"]),
    ((SEARCH_KEYS, SEARCH_KEYS + "  samples: 3\n"), "search.samples",
     ["only used by method: random", "sampler: random"]),
    (("    seed: [0, 1]\n", "    seed: [0, 1]\n    train.epochs: [100, 300]\n"),
     "search.parameters.train.epochs", ["cannot be swept", "rungs are derived from train.epochs"]),
    (("    train.lr: [0.1, 0.3]\n", "    train.lr: {distribution: log_uniform, low: 0.01, high: 1.0}\n"),
     "search.parameters.train.lr", ["sampler: random"]),
    (("data: {source: moons, validation: 0.2}", "data: {source: moons}"), "data.validation",
     ["validation metric, never on the test set", "data.validation: 0.2"]),
    (("    seed: [0, 1]\n", "    seed: [0, 1]\n    data.validation: [0.2, null]\n"),
     "search.parameters.data.validation[1]", ["never on the test set"]),
    (("data: {source: moons, validation: 0.2}", "data: {source: moons, validation: 0.995}"),
     "data.validation", ["leaves none for training"]),
]


@pytest.mark.parametrize("change, key, words", HALVING_RULES,
                         ids=[f"{key}:{words[0][:24]}" for _, key, words in HALVING_RULES])
def test_each_halving_rule_is_one_line_naming_its_key(tmp_path, change, key, words):
    result = runner.invoke(app, ["validate", str(halving_file(tmp_path, edit(HALVING, *change)))])
    assert_refused(result, *words)
    (line,) = result.output.strip().splitlines()
    assert f": {key}: " in line


@pytest.mark.parametrize("method", ["grid", "random"])
@pytest.mark.parametrize("key, value", [("sampler", "grid"), ("min_epochs", 10), ("eta", 3),
                                        ("brackets", "auto")])
def test_halving_keys_under_another_method(tmp_path, method, key, value):
    text = edit(HALVING, "  method: halving\n  min_epochs: 10\n",
                f"  method: {method}\n  {key}: {value}\n" + ("  samples: 2\n" if method == "random" else ""))
    result = runner.invoke(app, ["validate", str(halving_file(tmp_path, text))])
    assert_refused(result, f": search.{key}: only used by method: halving")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("method", ["grid", "random"])
def test_grid_and_random_rank_on_one_named_validation_metric(tmp_path, method):
    """search.metric under grid or random names what the outputs rank on: a validation metric
    of the data set's task, with a validation split, its mode never against it."""
    base = edit(HALVING, "  method: halving\n  min_epochs: 10\n", f"  method: {method}\n"
                + ("  samples: 2\n" if method == "random" else "") + "  metric: val_accuracy\n")
    path = halving_file(tmp_path, base)
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    assert "  ranked on: val_accuracy (search.metric)\n" in runner.invoke(
        app, ["plan", str(path)]).output
    for change, key, words in [
            (("metric: val_accuracy", "metric: test_accuracy"), "search.metric",
             ["unknown metric 'test_accuracy'", "val_accuracy"]),
            (("metric: val_accuracy", "metric: val_mse"), "search.metric",
             ["val_mse needs a regression data set"]),
            (("metric: val_accuracy\n", "metric: val_accuracy\n  mode: min\n"), "search.mode",
             ["mode min contradicts metric val_accuracy"]),
            (("validation: 0.2", "validation: null"), "data.validation",
             [f"method: {method} ranks variants on a validation metric"])]:
        result = runner.invoke(app, ["validate", str(halving_file(tmp_path, edit(base, *change)))])
        assert_refused(result, *words)
        (line,) = result.output.strip().splitlines()
        assert f": {key}: " in line


def test_unknown_method_names_it_and_the_closest(tmp_path):
    result = runner.invoke(app, ["validate", str(halving_file(tmp_path, edit(
        HALVING, "method: halving", "method: halfing")))])
    assert_refused(result, ": search.method: unknown search method 'halfing'",
                   "did you mean 'halving'?", "grid, random, halving")


def WORDS_NOT(*valid: str):
    """Words, except the valid names among them."""
    return words.filter(lambda w: w not in valid)


# Values a halving key never takes.
HALVING_WRONG = {
    "min_epochs": st.one_of(st.integers(max_value=0), st.integers(min_value=300), WORDS_NOT(), fractional),
    "eta": st.one_of(st.integers(max_value=1), WORDS_NOT(), fractional, st.booleans()),
    "brackets": st.one_of(st.integers(max_value=0), st.integers(min_value=6), WORDS_NOT("auto"), fractional),
    "metric": st.one_of(WORDS_NOT(), whole, lists),
    "mode": st.one_of(WORDS_NOT("min", "max"), whole, st.just("max")),   # max contradicts val_loss
    "sampler": st.one_of(WORDS_NOT("grid", "random"), whole, lists),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wrong_halving_values_are_refused_naming_the_key(sweep_file, data):
    key = data.draw(st.sampled_from(sorted(HALVING_WRONG)))
    mutated = yaml.safe_load(HALVING)
    mutated["search"][key] = data.draw(HALVING_WRONG[key])
    result = validate(sweep_file, yaml.safe_dump(mutated, sort_keys=False))
    assert_refused(result, f": search.{key}: ")


def test_summary_importance_says_when_it_cannot_tell_and_refuses_an_unknown_evaluator(small_sweep):
    args = ["summary", str(small_sweep.file), "--tracking-uri", small_sweep.tracking_uri,
            "--importance"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "needs at least 4 configurations with a value and two settings" in result.output
    bad = runner.invoke(app, args + ["--evaluator", "nope"])
    assert bad.exit_code == 2 and "unknown evaluator 'nope'" in bad.output
