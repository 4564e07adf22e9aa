"""Packing: packs hold variants that can train as one population, and keep workers busy."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.plan import MAX_PACK, PACK_SHARED, describe, make_packs, pack_work, shared_paths
from sweeps.sweep import load_sweep

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

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
            for path in shared_paths(first):
                assert variant.settings[path] == first[path], path


def test_pack_shared_is_the_contracts():
    assert PACK_SHARED == ('data.*', 'model.hidden', 'model.activation', 'model.output_activation',
                           'model.bias', 'train.loss', 'train.optimizer', 'train.nesterov',
                           'train.epochs', 'train.batch_size', 'train.log_every', 'train.dtype',
                           'data_seed')


@pytest.mark.parametrize("workers", [1, 2, 3, 8, 64])
def test_card_packs_cover_every_variant_once_and_share_shapes(card, workers):
    packs = make_packs(card, workers=workers)
    assert_valid_packing(card, packs)


def test_enough_packs_to_keep_every_worker_busy(card):
    for workers in (1, 2, 4, 8):
        assert len(make_packs(card, workers=workers)) >= 4 * workers


def test_packs_are_near_equal_in_size(card):
    sizes = [len(p.variants) for p in make_packs(card, workers=2)]
    assert max(sizes) - min(sizes) <= 1


def test_settings_that_change_the_loop_never_share_a_pack(write):
    sweep = load_sweep(write(MIXED))
    packs = make_packs(sweep, workers=1)
    assert_valid_packing(sweep, packs)
    kinds = {(p.variants[0].settings["model.hidden"], p.variants[0].settings["model.activation"],
              p.variants[0].settings["train.optimizer"]) for p in packs}
    assert len(kinds) == 8
    # learning rate and seed vary inside a pack
    assert any(len({v.settings["train.lr"] for v in p.variants}) > 1 for p in packs)


def test_data_seed_splits_packs(write):
    sweep = load_sweep(write("data: {source: moons}\nmodel: {output_activation: sigmoid}\n"
                             "train: {loss: bce, epochs: 5}\nsearch:\n  parameters:\n"
                             "    data_seed: [0, 1]\n    seed: [0, 1, 2]\n"))
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
    assert "packs: 8 (8 of 60 variants)" in text
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
