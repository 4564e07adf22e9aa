"""Expansion of search spaces: counts, order, determinism, keys, groups and names."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sweeps.execution.plan import describe, make_packs
from sweeps.records import Variant
from sweeps.spec.config import ADDED_LATER, LATER_DEFAULTS, SearchConfig, SweepConfig, hashed_config
from sweeps.methods.brackets import bracket_work, search_work
from sweeps.spec.search import SEARCH_METHODS, Halving, describe_search, method_of
from sweeps.spec.sweep import load_sweep

CONFIGS = Path(__file__).resolve().parents[3] / "configs"

CONTRACT_SETTINGS = {
    "data.source", "data.test_fraction", "data.scale", "data.task", "model.hidden",
    "model.activation", "model.output_activation", "model.bias", "model.init", "train.loss",
    "train.optimizer", "train.lr", "train.momentum", "train.nesterov", "train.beta1",
    "train.beta2", "train.eps", "train.weight_decay", "train.epochs", "train.batch_size",
    "train.log_every", "train.dtype", "seed", "data_seed",
}

GRID = """\
name: g
train: {{epochs: 5}}
search:
  parameters:
    train.lr: [0.01, 0.1, 0.5]
    model.hidden: [2, [4, 4]]
    seed: [0, 1, 2, 3]
{extra}"""

RANDOM = """\
name: r
data: {{source: moons}}
model: {{output_activation: sigmoid}}
train: {{loss: bce, epochs: 5}}
search:
  method: random
  samples: {samples}
  random_seed: {seed}
  parameters:
    train.lr: {{distribution: log_uniform, low: 0.001, high: 1.0}}
    train.weight_decay: {{distribution: uniform, low: 0.0, high: 0.01}}
    train.epochs: {{distribution: int_uniform, low: 3, high: 5}}
    model.init: [xavier_normal, he_normal]
"""


def test_card_expands_to_480_variants_in_file_order():
    sweep = load_sweep(CONFIGS / "card.yaml")
    assert len(sweep.variants) == 480
    assert sweep.swept == ("train.lr", "model.hidden", "model.init", "seed")
    assert [v.index for v in sweep.variants] == list(range(480))
    first, second, last = sweep.variants[0], sweep.variants[1], sweep.variants[-1]
    # the first parameter varies slowest, the last fastest
    assert (first.settings["train.lr"], first.settings["model.hidden"], first.settings["seed"]) == (0.01, (2,), 0)
    assert second.settings["seed"] == 1 and second.settings["train.lr"] == 0.01
    assert (last.settings["train.lr"], last.settings["model.hidden"], last.settings["model.init"],
            last.settings["seed"]) == (1.0, (16,), "he_normal", 9)


def test_grid_count_is_the_product_of_the_lists(write):
    sweep = load_sweep(write(GRID.format(extra="    model.init: [uniform01, normal]\n")))
    assert len(sweep.variants) == 3 * 2 * 4 * 2


def test_every_setting_is_resolved_to_a_plain_json_value():
    sweep = load_sweep(CONFIGS / "iris.yaml")
    for variant in sweep.variants:
        assert CONTRACT_SETTINGS <= set(variant.settings)
        assert None not in (variant.settings["data.test_fraction"], variant.settings["data.scale"],
                            variant.settings["data.task"])
        json.dumps(variant.settings)
    assert sweep.variants[0].settings["data.task"] == "classification"


def test_same_file_gives_same_variants_order_and_keys(write):
    path = write(GRID.format(extra=""))
    a, b = load_sweep(path), load_sweep(path)
    assert [(v.key, v.group, v.name, dict(v.settings)) for v in a.variants] == \
           [(v.key, v.group, v.name, dict(v.settings)) for v in b.variants]
    assert a.config_hash == b.config_hash


def test_keys_are_stable_across_processes(tmp_path):
    code = ("from sweeps.spec.sweep import load_sweep; import sys; "
            f"s = load_sweep({str(CONFIGS / 'random_search.yaml')!r}); "
            "print(s.config_hash, *[v.key for v in s.variants])")
    here = load_sweep(CONFIGS / "random_search.yaml")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PYTHONHASHSEED": "123", "PATH": "", "PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.split() == [here.config_hash] + [v.key for v in here.variants]


def test_comments_and_layout_do_not_change_keys(write):
    plain = load_sweep(write(GRID.format(extra=""), "a.yaml"))
    commented = load_sweep(write("# a comment\n" + GRID.format(extra="").replace(
        "train: {epochs: 5}", "train:\n  epochs: 5   # short"), "b.yaml"))
    assert [v.key for v in plain.variants] == [v.key for v in commented.variants]
    assert plain.config_hash == commented.config_hash


def test_keys_are_distinct_and_change_with_any_setting(write):
    base = load_sweep(write(GRID.format(extra=""), "a.yaml"))
    assert len({v.key for v in base.variants}) == len(base.variants)
    longer = load_sweep(write(GRID.format(extra="").replace("epochs: 5", "epochs: 6"), "b.yaml"))
    assert not {v.key for v in base.variants} & {v.key for v in longer.variants}
    assert base.config_hash != longer.config_hash


def test_keys_change_with_the_data(write):
    write("a,y\n1,0.1\n2,0.2\n3,0.3\n4,0.4\n5,0.5\n", "d.csv")
    path = write("data: {source: d.csv, test_fraction: 0.2}\nmodel: {output_activation: identity}\n")
    first = load_sweep(path).variants[0]
    write("a,y\n1,0.1\n2,0.2\n3,0.3\n4,0.4\n5,0.6\n", "d.csv")
    changed = load_sweep(path).variants[0]
    assert first.data_key != changed.data_key and first.key != changed.key
    assert first.settings == changed.settings


def test_groups_gather_the_seeds_of_one_configuration():
    sweep = load_sweep(CONFIGS / "card.yaml")
    groups = Counter(v.group for v in sweep.variants)
    assert len(groups) == 48 and set(groups.values()) == {10}
    for group in groups:
        members = [v for v in sweep.variants if v.group == group]
        without_seed = {json.dumps({k: v for k, v in m.settings.items() if k != "seed"}, sort_keys=True)
                        for m in members}
        assert len(without_seed) == 1
        assert sorted(m.settings["seed"] for m in members) == list(range(10))


def test_names_show_the_swept_values_briefly():
    sweep = load_sweep(CONFIGS / "card.yaml")
    assert sweep.variants[0].name == "lr=0.01 hidden=2 init=uniform01 seed=0"
    assert len({v.name for v in sweep.variants}) == 480


def test_name_of_a_two_layer_network(write):
    sweep = load_sweep(write(GRID.format(extra="")))
    assert "hidden=4x4" in sweep.variants[-1].name


def test_unswept_file_is_one_variant_named_after_the_sweep():
    sweep = load_sweep(CONFIGS / "article.yaml")
    (variant,) = sweep.variants
    assert variant.name == "article" and sweep.swept == ()


def test_name_defaults_to_the_file_stem(write):
    assert load_sweep(write("train: {epochs: 3}\n", "my-sweep.yaml")).name == "my-sweep"


@pytest.mark.parametrize("samples", [1, 7, 40])
def test_random_search_draws_the_requested_samples(write, samples):
    sweep = load_sweep(write(RANDOM.format(samples=samples, seed=0)))
    assert len(sweep.variants) == samples
    assert len({v.key for v in sweep.variants}) == samples


def test_random_search_ranges_and_choices(write):
    sweep = load_sweep(write(RANDOM.format(samples=200, seed=1)))
    lrs = [v.settings["train.lr"] for v in sweep.variants]
    assert all(0.001 <= lr <= 1.0 for lr in lrs)
    # log-uniform: about as many draws below 0.0316 (the log-midpoint) as above
    below = sum(lr < math.sqrt(0.001) for lr in lrs)
    assert 60 < below < 140
    assert all(lr == float(f"{lr:.6g}") for lr in lrs)
    assert {v.settings["train.epochs"] for v in sweep.variants} == {3, 4, 5}
    assert {v.settings["model.init"] for v in sweep.variants} == {"xavier_normal", "he_normal"}
    assert all(0.0 <= v.settings["train.weight_decay"] <= 0.01 for v in sweep.variants)


def test_random_search_is_deterministic_per_random_seed(write):
    a = load_sweep(write(RANDOM.format(samples=10, seed=5), "a.yaml"))
    b = load_sweep(write(RANDOM.format(samples=10, seed=5), "b.yaml"))
    c = load_sweep(write(RANDOM.format(samples=10, seed=6), "c.yaml"))
    assert [v.key for v in a.variants] == [v.key for v in b.variants]
    assert [v.settings["train.lr"] for v in a.variants] != [v.settings["train.lr"] for v in c.variants]


def test_random_search_over_choices_gives_distinct_variants(write):
    text = ("train: {epochs: 3}\nsearch:\n  method: random\n  samples: 6\n  parameters:\n"
            "    seed: [0, 1, 2]\n    train.lr: [0.1, 0.2]\n")
    sweep = load_sweep(write(text))
    assert len({(v.settings["seed"], v.settings["train.lr"]) for v in sweep.variants}) == 6


def test_variants_are_frozen_hashable_and_picklable():
    variant = load_sweep(CONFIGS / "card.yaml").variants[5]
    with pytest.raises(TypeError):
        variant.settings["train.lr"] = 3.0
    with pytest.raises(AttributeError):
        variant.key = "x"
    copy = pickle.loads(pickle.dumps(variant))
    assert isinstance(copy, Variant) and copy == variant and hash(copy) == hash(variant)
    assert dict(copy.settings) == dict(variant.settings)


def test_defaults_filled_in_make_a_duplicate_variant(problems):
    text = "data: {source: iris}\nsearch:\n  parameters:\n    data.test_fraction: [0.2, null]\n"
    assert any("same once defaults are filled in" in line for line in problems(text))


def test_random_hidden_size_is_a_tuple_like_any_hidden_setting(write):
    text = ("train: {epochs: 3}\nsearch:\n  method: random\n  samples: 4\n  parameters:\n"
            "    model.hidden: {distribution: int_uniform, low: 2, high: 9}\n")
    sweep = load_sweep(write(text))
    assert all(isinstance(v.settings["model.hidden"], tuple) for v in sweep.variants)
    assert all(2 <= v.settings["model.hidden"][0] <= 9 for v in sweep.variants)


# ---------------------------------------------------------------------------------------------
# Resume compatibility: hashes of files written before the later settings existed

# main's values at commit 4974a0e (computed there with `load_sweep`, before data.validation and
# halving existed): (config_hash, data fingerprint, first three (key, group), sha256 prefix of
# every key joined by spaces, in order). Resuming an MLflow store finds the parent run by the
# config hash and the finished children by their keys: a change to any of these breaks resume.
MAIN_4974A0E = {
    "card.yaml": ("2b4d8c1f5c6ea0c2", "e5979d824a72cace",
                  [("b4e1eb3a3461aaf1", "e9028dd70c3dca3d"), ("fdd27ac91414358f", "e9028dd70c3dca3d"),
                   ("55563f00a19ec647", "e9028dd70c3dca3d")], "1b079362b7dc1d7e"),
    "iris.yaml": ("235fd6179585a0c4", "10682ffbd98a573f",
                  [("403a0976ffcdf93d", "0e19c7ec7fb56370"), ("f322be4840f6a36b", "0e19c7ec7fb56370"),
                   ("01516528848b573d", "0e19c7ec7fb56370")], "f3502354fddfcbdb"),
    "random_search.yaml": ("bcb3ecbb8c40a517", "cf65760bccb26822",
                           [("b89aa81259d790ce", "b7585f13a0319996"),
                            ("4aa5fe40668c6c6e", "0e3c6fe6e1ca636a"),
                            ("05056c565eb6e40e", "1fbbb499ef1739d1")], "f7d70a8824ac4f3d"),
    "article.yaml": ("6e1187a8b3837126", "e5979d824a72cace",
                     [("3b4fff1df7c504d6", "a48addd09c24ebe4")], "fd98eb827306ba7a"),
}


def _all_keys_digest(sweep) -> str:
    return hashlib.sha256(" ".join(v.key for v in sweep.variants).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(MAIN_4974A0E))
def test_files_from_before_the_later_settings_keep_mains_hashes_and_keys(name):
    config_hash, data_key, first, digest = MAIN_4974A0E[name]
    sweep = load_sweep(CONFIGS / name)
    assert sweep.config_hash == config_hash
    assert list(sweep.datasets) == [data_key]
    assert [(v.key, v.group) for v in sweep.variants[:len(first)]] == first
    assert _all_keys_digest(sweep) == digest      # grid and random: same points, same order


def test_later_settings_at_their_defaults_are_not_hashed_and_set_ones_are(write):
    text = (CONFIGS / "iris.yaml").read_text()
    plain = load_sweep(write(text, "a.yaml"))
    spelled = load_sweep(write(text.replace("  scale: standard", "  scale: standard\n  validation: null"),
                               "b.yaml"))
    split = load_sweep(write(text.replace("  scale: standard", "  scale: standard\n  validation: 0.2"),
                             "c.yaml"))
    assert spelled.config_hash == plain.config_hash
    assert [v.key for v in spelled.variants] == [v.key for v in plain.variants]
    assert split.config_hash != plain.config_hash
    assert not {v.key for v in split.variants} & {v.key for v in plain.variants}
    assert split.variants[0].settings["data.validation"] == 0.2


def test_every_later_setting_is_in_the_schema_with_a_default():
    assert set(LATER_DEFAULTS) == set(ADDED_LATER)
    search = SearchConfig()
    for path, default in LATER_DEFAULTS.items():
        section, field = path.split(".")
        owner = search if section == "search" else getattr(SweepConfig(), section)
        assert getattr(owner, field) == default, path
    assert set(hashed_config(SweepConfig(search=SearchConfig()))["search"]) == {
        "method", "parameters", "samples", "random_seed"}


# ---------------------------------------------------------------------------------------------
# The table of search methods

# A valid file for every method in the table, and one setting of its own it refuses.
METHOD_FILES = {
    "grid": ("search:\n  method: grid\n  parameters:\n    train.lr: [0.1, 0.2]\n    seed: [0, 1]\n",
             ("    seed: [0, 1]\n", "    seed: {distribution: int_uniform, low: 0, high: 1}\n"),
             "search.parameters.seed"),
    "random": ("search:\n  method: random\n  samples: 3\n  parameters:\n"
               "    train.lr: {distribution: log_uniform, low: 0.01, high: 1.0}\n",
               ("  samples: 3\n", ""), "search.samples"),
    "halving": ("search:\n  method: halving\n  min_epochs: 5\n  parameters:\n"
                "    train.lr: [0.1, 0.2, 0.3]\n    seed: [0, 1]\n",
                ("  min_epochs: 5\n", "  min_epochs: 5\n  eta: 1\n"), "search.eta"),
    "tpe": ("search:\n  method: tpe\n  trials: 4\n  parameters:\n"
            "    train.lr: {distribution: log_uniform, low: 0.01, high: 1.0}\n"
            "    model.init: [xavier_normal, he_normal]\n    seed: [0, 1]\n",
            ("  trials: 4\n", ""), "search.trials"),
    "gp": ("search:\n  method: gp\n  trials: 4\n  parameters:\n"
           "    train.lr: {distribution: log_uniform, low: 0.01, high: 1.0}\n    seed: [0, 1]\n",
           ("    seed: [0, 1]\n", "    seed: {distribution: int_uniform, low: 0, high: 1}\n"),
           "search.parameters.seed"),
}
METHOD_BASE = ("data: {source: moons, validation: 0.2}\nmodel: {output_activation: sigmoid}\n"
               "train: {loss: bce, epochs: 40}\n")


def test_every_method_in_the_table_has_an_example_here():
    assert set(METHOD_FILES) == set(SEARCH_METHODS)


@pytest.mark.parametrize("name", sorted(SEARCH_METHODS))
def test_every_method_validates_produces_points_and_describes_itself(write, problems, name):
    if name == "gp":
        pytest.importorskip("torch", reason="method: gp needs PyTorch (the gp extra)")
    good, (old, new), key = METHOD_FILES[name]
    sweep = load_sweep(write(METHOD_BASE + good, "good.yaml"))
    method = method_of(sweep.config)
    assert type(method) is SEARCH_METHODS[name] and method.name == name
    points = method.points()
    assert points and all(set(p) == set(sweep.swept) for p in points)
    assert [{p: v.settings[p] for p in sweep.swept} for v in sweep.variants] == points
    line = describe_search(sweep.config, sweep.swept)
    assert line == method.describe() and line
    assert f"variants: {len(points)} ({line})" in describe(sweep, make_packs(sweep))
    lines = problems(METHOD_BASE + good.replace(old, new))
    assert len(lines) == 1 and f": {key}: " in lines[0], lines


def test_descriptions_of_grid_and_random_are_as_before():
    card, rand = load_sweep(CONFIGS / "card.yaml"), load_sweep(CONFIGS / "random_search.yaml")
    assert describe_search(card.config, card.swept) == "grid over 4 parameters"
    assert describe_search(rand.config, rand.swept) == "random search, 24 samples, random_seed 0"
    article = load_sweep(CONFIGS / "article.yaml")
    assert describe_search(article.config, article.swept) == "no search: one variant"


def test_halving_draws_the_points_its_sampler_draws(write):
    grid = load_sweep(write(METHOD_BASE + METHOD_FILES["grid"][0], "g.yaml"))
    halving = load_sweep(write(METHOD_BASE + METHOD_FILES["grid"][0].replace(
        "method: grid", "method: halving\n  min_epochs: 5"), "h.yaml"))
    assert [dict(v.settings) for v in halving.variants] == [dict(v.settings) for v in grid.variants]
    random = load_sweep(write(METHOD_BASE + METHOD_FILES["random"][0], "r.yaml"))
    sampled = load_sweep(write(METHOD_BASE + METHOD_FILES["random"][0].replace(
        "method: random", "method: halving\n  sampler: random\n  min_epochs: 5"), "s.yaml"))
    assert [dict(v.settings) for v in sampled.variants] == [dict(v.settings) for v in random.variants]
    assert "sampler: random search, 3 samples" in method_of(sampled.config).describe()


# ---------------------------------------------------------------------------------------------
# Halving: rungs and brackets


def halving(min_epochs: int, eta: int = 3, brackets="auto", epochs: int = 300,
            groups: int = 1, ranking: str = "both") -> Halving:
    """A halving search over `groups` learning rates (one group without parameters)."""
    parameters = {"train.lr": [0.001 * (i + 1) for i in range(groups)]} if groups > 1 else {}
    config = SweepConfig.model_validate({"train": {"epochs": epochs}, "search": {
        "method": "halving", "min_epochs": min_epochs, "eta": eta, "brackets": brackets,
        "ranking": ranking, "parameters": parameters}})
    return Halving(config)


@pytest.mark.parametrize("epochs, min_epochs, eta, rungs", [
    (300, 10, 3, (10, 30, 90, 270, 300)),
    (270, 10, 3, (10, 30, 90, 270)),
    (271, 10, 3, (10, 30, 90, 270, 271)),
    (11, 10, 3, (10, 11)),
    (10, 1, 2, (1, 2, 4, 8, 10)),
    (8, 1, 2, (1, 2, 4, 8)),
    (100, 1, 10, (1, 10, 100)),
    (1000, 5, 4, (5, 20, 80, 320, 1000)),
])
def test_rungs_end_at_min_epochs_times_eta_powers_then_at_the_last_epoch(epochs, min_epochs, eta, rungs):
    assert halving(min_epochs, eta).rungs(epochs) == rungs


@pytest.mark.parametrize("min_epochs, epochs", [(10, 10), (20, 10)])
def test_rungs_need_min_epochs_below_the_epochs(min_epochs, epochs):
    with pytest.raises(ValueError, match="min_epochs"):
        halving(min_epochs).rungs(epochs)


@pytest.mark.parametrize("epochs, min_epochs, ranking, starts", [
    (300, 3, "both", (0, 1, 2)),    # rungs 3 9 27 81 243 300: 22% to 46% of the grid
    (300, 3, "value", (0, 1, 2)),   # one ranking: 22% to 28%; entering at 81 too: 47% to 57%
    (300, 10, "both", (0, 1)),      # rungs 10 30 90 270 300
    (270, 10, "both", (0, 1)),      # rungs 10 30 90 270: 26% to 51%, 38% expected
    (11, 10, "both", (0,)),         # rungs 10 11: one entry, even over the budget
])
def test_auto_brackets_enter_as_late_as_half_the_grids_work_allows(epochs, min_epochs, ranking,
                                                                   starts):
    method = halving(min_epochs, epochs=epochs, groups=81, ranking=ranking)
    rungs = method.rungs(epochs)
    assert method.bracket_starts(rungs) == starts
    grid, rankings = 81 * epochs, len(method.rankings)
    expected = lambda starts: sum(search_work(rungs, 3, starts, 81, rankings)) / 2  # noqa: E731
    assert starts == (0,) or expected(starts) <= grid / 2
    if len(starts) < len(rungs):
        assert expected(range(len(starts) + 1)) > grid / 2


def test_search_work_is_the_last_entry_for_all_then_the_brackets_survivors():
    # rungs 10 30 90 120, 27 groups, brackets entering at 10 and 30: all 27 to 30, then
    # beyond 30 the first keeps 3 (to 90) and 1 (to 120), the second 9 and 3
    least, most = search_work((10, 30, 90, 120), 3, (0, 1), 27)
    assert least == 27 * 30 + 9 * 60 + 3 * 30
    assert most == 27 * 30 + (3 * 60 + 1 * 30) + (9 * 60 + 3 * 30)
    assert search_work((10, 30, 90, 120), 3, (0, 1), 27, rankings=2)[1] == \
        27 * 30 + 2 * (3 * 60 + 1 * 30 + 9 * 60 + 3 * 30)


def test_a_bracket_trains_every_group_to_its_entry_then_the_kept_on():
    # 27 groups entering at 10: 27 x 10, then 9 x 20, 3 x 60, 1 x 30
    assert bracket_work((10, 30, 90, 120), 3, 0, 27) == 270 + 180 + 180 + 30
    assert bracket_work((10, 30, 90, 120), 3, 1, 27) == 27 * 30 + 9 * 60 + 3 * 30
    assert bracket_work((10, 30, 90, 120), 3, 0, 27, beyond=30) == 3 * 60 + 1 * 30


def test_a_number_of_brackets_means_the_most_aggressive_ones():
    rungs = halving(10).rungs(300)
    assert halving(10, brackets=1).bracket_starts(rungs) == (0,)
    assert halving(10, brackets=5).bracket_starts(rungs) == (0, 1, 2, 3, 4)
    with pytest.raises(ValueError, match="6 brackets"):
        halving(10, brackets=6).bracket_starts(rungs)


def test_halving_defaults_and_resolved_mode():
    method = halving(10)
    assert (method.eta, method.metric, method.mode, method.brackets) == (3, "val_loss", "min", "auto")
    assert method.sampler.name == "grid" and method.schedule().rungs[0] == 10
    accuracy = SweepConfig.model_validate({"search": {"method": "halving", "min_epochs": 3,
                                                      "metric": "val_accuracy"}})
    assert Halving(accuracy).mode == "max"
