"""Model-based search (`sweeps.methods.model_based`): the space, batches asked and told in
asking order, replay from the store, failed and warm-started trials, and the file's checks.

The "training" here is a formula of a configuration's settings (its validation loss), so the
scheduler is tested alone; tests/integration/test_model_based.py trains on real Ray.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sweeps.methods import model_based
from sweeps.methods.model_based import HISTORY_TABLE, Space
from sweeps.scheduling import _packs
from sweeps.spec.config import Distribution
from sweeps.spec.search import scheduler_of
from sweeps.spec.sweep import load_sweep
from tests.sweeps.conftest import problems_of

BASE = """\
data: {source: moons, validation: 0.2}
model: {output_activation: sigmoid}
train: {loss: bce, epochs: 20}
search:
  method: METHOD
  trials: 10
  batch: 4
  parameters:
    train.lr: {distribution: log_uniform, low: 0.001, high: 1.0}
    model.hidden: [2, 8, [4, 4]]
    seed: [0, 1]
"""


def _sweep(write, method="tpe", text=BASE):
    return load_sweep(write(text.replace("METHOD", method)))


def _loss(variant) -> float:
    """A made-up validation loss: best at lr 0.1 and hidden 8, a little noise per seed."""
    s = variant.settings
    return (abs(math.log10(s["train.lr"]) + 1) + (0 if s["model.hidden"] == (8,) else 0.5)
            + 0.01 * s["seed"])


def _result(variant, diverged=False):
    metrics = {"val_loss": _loss(variant), "train_loss": 0.0}
    return SimpleNamespace(key=variant.key, metrics=metrics, epoch=20,
                           status="diverged" if diverged else "ok")


def _run(scheduler, reverse=False, diverge=()):
    """Ask and tell until the search is over; results told in finishing order (reversed when
    asked). Returns the variants trained, in the order asked."""
    trained = []
    while (work := scheduler.ask()) is not None:
        variants = [request.variant for request in work.work]
        trained += variants
        results = {v.key: _result(v, v.settings["train.lr"] in diverge) for v in variants}
        if reverse:
            results = dict(reversed(list(results.items())))
        scheduler.tell(results)
    return trained


def test_the_space_maps_settings_to_trial_params_and_back():
    space = Space({"train.lr": Distribution(distribution="log_uniform", low=0.001, high=1.0),
                   "model.hidden": [(2,), (8,), (4, 4)], "train.optimizer": ["sgd", "adam"],
                   "seed": [0, 1]})
    assert space.paths == ["train.lr", "model.hidden", "train.optimizer"]
    settings = {"train.lr": 0.05, "model.hidden": (4, 4), "train.optimizer": "adam", "seed": 1}
    params = space.params(settings)
    assert params == {"train.lr": 0.05, "model.hidden": "4x4", "train.optimizer": "adam"}
    assert space.point(params) == {k: v for k, v in settings.items() if k != "seed"}
    assert space.params({**settings, "train.lr": 2.0}) is None          # outside the range
    assert space.params({**settings, "model.hidden": (16,)}) is None    # not a listed value


def test_an_unseen_configuration_is_drawn_where_one_is_left():
    lists = Space({"train.lr": [0.01, 0.1], "model.hidden": [(2,), (8,), (4, 4)]})
    every = [{"train.lr": lr, "model.hidden": h} for lr in (0.01, 0.1) for h in [(2,), (8,), (4, 4)]]
    seen = {model_based._configuration(p) for p in every[:5]}
    assert lists.unseen(seen, np.random.default_rng(0)) == every[5]
    everything = seen | {model_based._configuration(every[5])}
    assert lists.unseen(everything, np.random.default_rng(0)) is None
    ranges = Space({"train.lr": Distribution(distribution="log_uniform", low=0.001, high=1.0),
                    "model.hidden": Distribution(distribution="int_uniform", low=2, high=4)})
    drawn = [ranges.unseen(set(), np.random.default_rng(seed)) for seed in range(20)]
    assert all(ranges.params(point) is not None for point in drawn)      # inside the ranges
    assert drawn == [ranges.unseen(set(), np.random.default_rng(seed)) for seed in range(20)]
    assert len({model_based._configuration(point) for point in drawn}) == 20


def test_a_list_of_ordered_numbers_is_a_scale_the_sampler_sees_in_order():
    from optuna.distributions import CategoricalDistribution, IntDistribution
    space = Space({"train.lr": [0.001, 0.01, 0.1, 1.0], "model.hidden": [(2,), (8,), (32,)],
                   "train.momentum": [0.9, 0.5, 0.99]})
    assert isinstance(space.distributions["train.lr"], IntDistribution)
    assert isinstance(space.distributions["model.hidden"], IntDistribution)
    assert isinstance(space.distributions["train.momentum"], CategoricalDistribution)
    settings = {"train.lr": 0.1, "model.hidden": (32,), "train.momentum": 0.5}
    assert space.params(settings) == {"train.lr": 2, "model.hidden": 2, "train.momentum": 0.5}
    assert space.point(space.params(settings)) == settings


def test_each_round_asks_a_batch_and_trains_every_seed_of_each_configuration(write):
    sweep = _sweep(write)
    scheduler = scheduler_of(sweep, {})
    first = scheduler.ask()
    variants = [r.variant for r in first.work]
    assert len(variants) == 4 * 2 and first.final and not first.last
    assert {v.settings["seed"] for v in variants} == {0, 1}
    assert len({v.group for v in variants}) == 4
    assert all(v.key == sweep.variant_at({p: v.settings[p] for p in sweep.swept}, 0).key
               for v in variants)


def test_a_round_packs_its_configurations_into_one_pack_per_worker_and_shape(write):
    sweep = _sweep(write, text=BASE.replace("model.hidden: [2, 8, [4, 4]]", "model.hidden: [8]"))
    work = scheduler_of(sweep, {}).ask()
    packs = _packs(work, {r.variant.key: r.variant for r in work.work}, {}, sweep.datasets, 2)
    assert len(packs) == 2 and sum(len(p.variants) for p in packs) == 4 * 2


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_the_same_file_asks_the_same_configurations_whatever_the_finishing_order(write, method):
    if method == "gp":
        pytest.importorskip("torch", reason="method: gp needs PyTorch (the gp extra)")
    sweep = _sweep(write, method)
    one = _run(scheduler_of(sweep, {}))
    two = _run(scheduler_of(sweep, {}), reverse=True)
    assert [v.key for v in one] == [v.key for v in two]
    assert len({v.group for v in one}) >= 8          # 10 trials; a repeat trains once


def test_a_run_again_replays_the_study_from_the_store_and_trains_only_what_is_missing(write):
    sweep = _sweep(write)
    scheduler = scheduler_of(sweep, {})
    trained = _run(scheduler)
    logged = {v.key: _result(v).metrics for v in trained}
    again = scheduler_of(sweep, logged)
    assert again.ask() is None                       # everything replayed, nothing to train
    assert again.history == scheduler.history
    first_round = dict(list(logged.items())[:8])     # killed after the first round
    resumed = scheduler_of(sweep, first_round)
    assert [v.key for v in _run(resumed)] == [v.key for v in trained[8:]]
    assert resumed.tables()[HISTORY_TABLE] == scheduler.tables()[HISTORY_TABLE]


LISTS = BASE.replace("{distribution: log_uniform, low: 0.001, high: 1.0}",
                     "[0.001, 0.01, 0.1, 1.0]")      # 4 x 3 = 12 configurations


def _needs(method):
    if method == "gp":
        pytest.importorskip("torch", reason="method: gp needs PyTorch (the gp extra)")


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_a_sampler_repeating_a_configuration_is_asked_again(write, method):
    _needs(method)
    sweep = _sweep(write, method, text=LISTS)
    scheduler = scheduler_of(sweep, {})
    trained = _run(scheduler)
    assert len({v.group for v in trained}) == 10 and len(trained) == 10 * 2
    repeats = len(scheduler.study.trials) - 10        # told FAIL and asked again
    assert repeats > 0 and len(scheduler.history) == 10
    assert len({row["configuration"] for row in scheduler.history}) == 10


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_none_of_the_configurations_warm_started_with_is_asked(write, method):
    _needs(method)
    sweep = _sweep(write, method, text=LISTS.replace("trials: 10", "trials: 2"))
    base = dict(sweep.variants[0].settings)
    grid = [{**base, "train.lr": lr, "model.hidden": hidden}
            for lr in (0.001, 0.01, 0.1, 1.0) for hidden in ((2,), (8,), (4, 4))]
    warm = [(s, {"val_loss": _loss(SimpleNamespace(settings=s))})
            for s in ({**settings, "seed": 0} for settings in grid[:10])]
    scheduler = scheduler_of(sweep, {}).method.scheduler(sweep, {}, earlier=warm)
    trained = _run(scheduler)
    left = {(g["train.lr"], g["model.hidden"]) for g in grid[10:]}
    assert {(v.settings["train.lr"], v.settings["model.hidden"]) for v in trained} == left


def test_where_no_unseen_configuration_is_found_the_repeat_stands(write, monkeypatch):
    monkeypatch.setattr(model_based.Space, "unseen", lambda self, seen, rng: None)
    monkeypatch.setattr(model_based.TPE, "reasks", 2)     # the sampler insists soon
    sweep = _sweep(write, text=LISTS)
    scheduler = scheduler_of(sweep, {})
    trained = _run(scheduler)                        # every trial told once, none twice
    assert len(scheduler.history) == 10
    assert len({v.group for v in trained}) < 10      # a repeat stood (and trained once)


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_a_space_with_nothing_left_unseen_repeats_instead_of_asking_on(write, method):
    _needs(method)
    sweep = _sweep(write, method, text=LISTS.replace("trials: 10", "trials: 16"))
    scheduler = scheduler_of(sweep, {})
    trained = _run(scheduler)
    assert len({v.group for v in trained}) == 12 == scheduler.space.size
    assert len(scheduler.history) == 16
    assert len(scheduler.study.trials) <= 16 + 12 * scheduler.method.reasks


def test_a_configuration_with_a_diverged_seed_is_a_failed_trial(write):
    sweep = _sweep(write)
    scheduler = scheduler_of(sweep, {})
    work = scheduler.ask()
    lr = work.work[0].variant.settings["train.lr"]
    scheduler.tell({r.variant.key: _result(r.variant, r.variant.settings["train.lr"] == lr)
                    for r in work.work})
    states = [row["state"] for row in scheduler.history]
    assert states[0] == "FAIL" and states[1:] == ["COMPLETE"] * 3
    assert scheduler.history[0]["value"] is None


def test_configurations_of_earlier_sweeps_inside_the_space_warm_start_the_study(write):
    sweep = _sweep(write)
    base = dict(sweep.variants[0].settings)
    inside = [({**base, "train.lr": 0.1, "model.hidden": (8,), "seed": s}, {"val_loss": 0.2})
              for s in (0, 1)]
    outside = [({**base, "train.lr": 5.0, "seed": 0}, {"val_loss": 0.1}),
               ({**base, "train.lr": 0.1, "train.epochs": 99, "seed": 0}, {"val_loss": 0.1})]
    method = scheduler_of(sweep, {}).method
    scheduler = method.scheduler(sweep, {}, earlier=inside + outside)
    assert scheduler.history == [{"round": 0, "trial": 0, "value": 0.2, "state": "WARM",
                                  "configuration": "train.lr=0.1 model.hidden=8"}]
    assert len(scheduler.study.trials) == 1
    assert scheduler.ask() is not None and scheduler.study.trials[1].number == 1


@pytest.mark.parametrize("change, key", [
    (("  trials: 10\n", ""), "search.trials"),
    (("    seed: [0, 1]\n", "    seed: {distribution: int_uniform, low: 0, high: 3}\n"),
     "search.parameters.seed"),
    (("    seed: [0, 1]\n", "    data.validation: {distribution: uniform, low: 0.1, high: 0.3}\n"),
     "search.parameters.data.validation"),
    (("  batch: 4\n", "  batch: 4\n  metric: val_accuracy\n  mode: min\n"), "search.mode"),
    (("data: {source: moons, validation: 0.2}", "data: {source: moons}"), "data.validation"),
    (("  batch: 4\n", "  batch: 4\n  samples: 3\n"), "search.samples"),
])
def test_a_model_based_file_names_what_is_wrong(write, change, key):
    lines = problems_of(write(BASE.replace("METHOD", "tpe").replace(*change)))
    assert len(lines) == 1 and f": {key}: " in lines[0], lines


def test_gp_without_pytorch_is_a_problem_of_the_file_naming_the_extra(write, monkeypatch):
    """Wherever torch is installed or not: the file fails validation, saying what to install."""
    find_spec = model_based.importlib.util.find_spec
    monkeypatch.setattr(model_based.importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else find_spec(name, *rest))
    lines = problems_of(write(BASE.replace("METHOD", "gp")))
    assert len(lines) == 1 and ": search.method: " in lines[0], lines
    assert "PyTorch" in lines[0] and "[gp]" in lines[0] and "method: tpe" in lines[0]
