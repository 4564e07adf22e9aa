"""Packing: packs hold variants that can train as one population, and keep workers busy."""

from __future__ import annotations

from pathlib import Path

import pytest

import numpy as np
from pydantic import BaseModel

from sweeps.spec import config
from sweeps.spec.config import PACK_SHARED, SETTING_PATHS, SETTING_ROLES
from sweeps.execution.plan import MAX_PACK, describe, make_packs, pack_variants, pack_work
from sweeps.records import Pack
from sweeps.execution.training import train_pack
from sweeps.spec.sweep import load_sweep

CONFIGS = Path(__file__).resolve().parents[3] / "configs"

MIXED = """\
name: mixed
data: {source: xor}
train: {epochs: 20}
search:
  parameters:
    model.hidden: [2, [3, 3]]
    model.activation: [sigmoid, tanh]
    train.optimizer: [sgd, adam]
    train.lr: [0.1, 0.2, 0.3]
    seed: [0, 1, 2, 3, 4, 5, 6]
"""


SETTING_DEFAULTS = {"model.init": "xavier_uniform", "train.lr": 0.1, "train.momentum": 0.9,
                    "train.beta1": 0.9, "train.beta2": 0.999, "train.eps": 1e-8,
                    "train.weight_decay": 0.0, "seed": 42}


@pytest.fixture(scope="module")
def card():
    return load_sweep(CONFIGS / "card.yaml")


def assert_valid_packing(sweep, packs, skip=()):
    keys = [v.key for p in packs for v in p.variants]
    assert sorted(keys) == sorted(v.key for v in sweep.variants if v.key not in set(skip))
    assert [p.index for p in packs] == list(range(len(packs)))
    for pack in packs:
        assert 1 <= len(pack.variants) <= MAX_PACK
        first = pack.variants[0].settings
        for variant in pack.variants:
            assert variant.data_key == pack.data_key
            for path in PACK_SHARED:
                assert variant.settings[path] == first[path], path


def test_every_setting_has_exactly_one_role():
    assert set(SETTING_ROLES) == set(SETTING_PATHS)
    assert set(SETTING_ROLES.values()) == {"data", "pack", "variant"}


def test_derived_tables_pick_up_a_new_data_setting():
    """data.validation was added with its role only; every derived table follows from it."""
    assert SETTING_ROLES["data.validation"] == "data"
    assert "data.validation" in config.DATA_SETTINGS and "data.validation" in PACK_SHARED
    assert config.NUMBER_KINDS["data.validation"] is float
    assert "data.validation" not in config.TEXT_SETTINGS


def test_a_setting_without_a_role_is_refused():
    class Unmarked(BaseModel):
        lr: float = 0.1

    with pytest.raises(TypeError, match="setting lr declares 0 roles"):
        config._role("lr", Unmarked.model_fields["lr"])


# A value other than the default for every variant-role setting, and the optimizer that reads it.
OTHER_VALUE = {"model.init": ("xavier_normal", "sgd"), "train.lr": (0.3, "sgd"),
               "train.momentum": (0.5, "momentum"), "train.beta1": (0.8, "adam"),
               "train.beta2": (0.99, "adam"), "train.eps": (1e-3, "adam"),
               "train.weight_decay": (0.01, "sgd"), "seed": (7, "sgd")}


def test_every_variant_role_setting_is_covered_by_the_case_table():
    assert set(OTHER_VALUE) == {p for p, r in SETTING_ROLES.items() if r == "variant"}


@pytest.mark.parametrize("path", sorted(OTHER_VALUE))
def test_a_variant_role_setting_reaches_each_variant_of_a_pack(write, path):
    """Two variants differing only in `path` share a pack and train as if each were alone."""
    value, optimizer = OTHER_VALUE[path]
    sweep = load_sweep(write(f"data: {{source: xor}}\nmodel: {{init: xavier_uniform}}\n"
                             f"train: {{epochs: 30, log_every: 10, optimizer: {optimizer}}}\n"
                             f"search:\n  parameters:\n    {path}: [{SETTING_DEFAULTS[path]}, {value}]\n"))
    first, second = sweep.variants
    assert all(first.settings[p] == second.settings[p] for p in PACK_SHARED)  # may share a pack
    pack = Pack(0, sweep.variants, first.data_key, PACK_SHARED)
    dataset = sweep.datasets[pack.data_key]
    together = train_pack(pack, dataset)
    alone = [train_pack(Pack(0, (v,), pack.data_key, pack.shared_paths), dataset)[0]
             for v in pack.variants]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a.curves["train_loss"], b.curves["train_loss"], rtol=1e-10)
    assert together[0].metrics["train_loss"] != together[1].metrics["train_loss"]


@pytest.mark.parametrize("workers", [1, 2, 3, 8, 64])
def test_card_packs_cover_every_variant_once_and_share_shapes(card, workers):
    packs = make_packs(card, workers=workers)
    assert_valid_packing(card, packs)


def test_enough_packs_to_keep_every_worker_busy(card):
    for workers in (1, 2, 4, 8):
        assert len(make_packs(card, workers=workers)) >= 4 * workers


def test_fewer_packs_per_worker_make_larger_packs_of_the_same_variants(card):
    todo = list(card.variants)
    for workers in (2, 8):        # the card has 8 shapes: at least a pack each
        coarse = pack_variants(todo, card.datasets, workers, per_worker=1)
        fine = pack_variants(todo, card.datasets, workers)
        assert len(coarse) < len(fine)
        assert sorted(v.key for p in coarse for v in p.variants) == sorted(v.key for v in todo)


def test_packs_are_near_equal_in_cost_and_the_longest_come_first(card):
    packs = make_packs(card, workers=2)
    costs = [pack_work(p, card.datasets[p.data_key])["seconds"] for p in packs]
    assert costs == sorted(costs, reverse=True)
    assert max(costs) <= 1.3 * min(costs)
    # within a group of equal shapes, counts differ by at most one
    by_shape: dict = {}
    for pack in packs:
        by_shape.setdefault(pack.shared["model.hidden"], []).append(len(pack.variants))
    assert all(max(sizes) - min(sizes) <= 1 for sizes in by_shape.values())
    # the card's 16-wide networks cost about twice its 2-wide ones: smaller packs of them
    assert max(by_shape[(16,)]) < min(by_shape[(2,)])


def test_settings_that_change_the_loop_never_share_a_pack(write):
    sweep = load_sweep(write(MIXED))
    packs = make_packs(sweep, workers=1)
    assert_valid_packing(sweep, packs)
    kinds = {(p.variants[0].settings["model.hidden"], p.variants[0].settings["model.activation"],
              p.variants[0].settings["train.optimizer"]) for p in packs}
    assert len(kinds) == 8
    # learning rate and seed vary inside a pack
    assert any(len({v.settings["train.lr"] for v in p.variants}) > 1 for p in packs)


@pytest.mark.parametrize("swept", ["data_seed: [0, 1]", "data.validation: [null, 0.2]"])
def test_data_settings_split_packs(write, swept):
    sweep = load_sweep(write("data: {source: moons}\nmodel: {output_activation: sigmoid}\n"
                             "train: {loss: bce, epochs: 5}\nsearch:\n  parameters:\n"
                             f"    {swept}\n    seed: [0, 1, 2]\n"))
    packs = make_packs(sweep, workers=1)
    assert_valid_packing(sweep, packs)
    assert len(sweep.datasets) == 2 and len({p.data_key for p in packs}) == 2


def test_skip_leaves_finished_variants_out(card):
    done = {v.key for v in card.variants[::3]}
    packs = make_packs(card, workers=2, skip=done)
    assert_valid_packing(card, packs, skip=done)
    assert make_packs(card, workers=2, skip={v.key for v in card.variants}) == []


def test_packing_is_deterministic(card):
    a = [[v.key for v in p.variants] for p in make_packs(card, workers=3)]
    b = [[v.key for v in p.variants] for p in make_packs(card, workers=3)]
    assert a == b


def test_pack_shared_settings(card):
    pack = make_packs(card, workers=2)[0]
    assert pack.shared["model.hidden"] == pack.variants[0].settings["model.hidden"]
    assert "train.lr" not in pack.shared and "data.source" in pack.shared


def test_work_of_the_article_network():
    sweep = load_sweep(CONFIGS / "article.yaml")
    (pack,) = make_packs(sweep)
    work = pack_work(pack, sweep.datasets[pack.data_key])
    # 3 rows x (3*4 + 4*1) weights, forward once and backward twice, 10000 epochs
    assert work["multiply_adds"] == 3 * 3 * 16 * 10000
    assert work["variant_epochs"] == 10000 and work["steps"] == 10000
    assert work["seconds"] > 0


def test_mini_batches_count_steps():
    sweep = load_sweep(CONFIGS / "iris.yaml")
    pack = make_packs(sweep)[0]
    assert pack_work(pack, sweep.datasets[pack.data_key])["steps"] == 500 * 4  # 120 rows / 32


def test_describe_lists_variants_packs_swept_and_work(card):
    text = describe(card, make_packs(card, workers=2))
    assert "variants: 480 (grid over 4 parameters)" in text
    assert "packs: 10 (4 of 60, 6 of 40 variants)" in text   # hidden 8 and 16 cost more
    for path in card.swept:
        assert path in text
    assert "4,800,000 variant-epochs" in text and "multiply-adds" in text
    assert "article: 3 train / 1 test rows" in text


def test_describe_shows_what_is_left_to_run(card):
    packs = make_packs(card, workers=2, skip={v.key for v in card.variants[:80]})
    assert "to run: 400 (80 already finished)" in describe(card, packs)


def test_describe_random_search():
    sweep = load_sweep(CONFIGS / "random_search.yaml")
    text = describe(sweep, make_packs(sweep))
    assert "random search, 24 samples" in text and "log_uniform from 0.001 to 1" in text


def test_describe_halving_shows_its_brackets_rounds_and_work_against_the_grid(tmp_path):
    from tests.sweep_files import write_halving_sweep

    # 8 groups x 2 seeds, rungs 5 10 20 40, brackets entering at 5 and 10
    sweep = load_sweep(write_halving_sweep(tmp_path, ranking="value"))
    text = describe(sweep, make_packs(sweep), workers=2)
    assert "rungs: epochs 5, 10, 20, 40 (keep the best 1/2 of each bracket's groups by " \
           "val_loss, min)" in text
    assert "bracket 0 enters at epoch 5, ranks by value: 8 -> 4 -> 2 -> 1 groups" in text
    assert "bracket 1 enters at epoch 10, ranks by value: 8 -> 4 -> 2 groups" in text
    assert "bracket 2" not in text
    assert "rounds: 3, ending at epochs 10, 20, 40" in text
    # everything to 10, then 4 (+ up to 2 more) groups to 20, 2 (+1) to 40: of 8 x 40
    least, most = (8 * 10 + 4 * 10 + 2 * 20) / 320, (8 * 10 + 6 * 10 + 3 * 20) / 320
    assert f"work: {least:.0%} to {most:.0%} of the plain grid's 640 variant-epochs" in text

    both = describe(load_sweep(write_halving_sweep(tmp_path, name="both")), [])
    assert "bracket 3 enters at epoch 10, ranks by trend: 8 -> 4 -> 2 groups" in both
