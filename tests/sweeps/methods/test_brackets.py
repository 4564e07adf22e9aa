"""Successive halving's bookkeeping (`sweeps.methods.brackets`): ranking, brackets, rounds."""
import itertools
import math

import numpy as np
import pytest

from sweeps.methods.brackets import Schedule, Search, rank

NAN = math.nan


def test_groups_rank_by_their_mean_over_seeds_and_a_diverged_seed_ranks_after():
    values = {"a": [0.3, 0.1], "b": [0.2, 0.21], "c": [0.01, NAN], "d": [NAN, NAN], "e": [0.2, 0.21]}
    assert rank(values, "min") == ["a", "b", "e", "c"]          # d: every seed diverged
    assert rank({"a": [0.9, 0.7], "b": [0.85, 0.85]}, "max") == ["b", "a"]


def test_rounds_train_everything_to_the_last_brackets_entry_then_one_rung_each():
    schedule = Schedule(rungs=(3, 9, 27, 81, 243, 300), starts=(0, 1, 2, 3), eta=3,
                        metric="val_loss", mode="min")
    assert schedule.rounds() == [(0, 1, 2, 3), (4,), (5,)]
    assert Schedule((10, 30), (0,), 3, "val_loss", "min").rounds() == [(0,), (1,)]
    with pytest.raises(ValueError):
        Schedule((10, 30), (0, 2), 3, "val_loss", "min")


def _simulate(schedule: Schedule, curves: dict[str, dict[str, np.ndarray]]):
    """Run a Search over groups whose seeds have the metric `curves[group][seed][epoch]`;
    returns (search, {variant: furthest epoch trained})."""
    pairs = [(f"{g}/{s}", g) for g, seeds in curves.items() for s in seeds]
    search = Search.begin(schedule, pairs)
    reached = {}
    for rungs in schedule.rounds():
        for key in search.training():
            g, s = key.split("/")
            for k in rungs:
                search.record(key, k, curves[g][s][schedule.rungs[k]])
            reached[key] = schedule.rungs[rungs[-1]]
        search.decide(rungs)
    return search, reached


def _brute_force(schedule: Schedule, score):
    """Each bracket alone, by the book: {bracket: groups alive at each of its rungs}."""
    out = {}
    for b, start in enumerate(schedule.starts):
        alive, per_rung = sorted(score), {}
        for k in range(start, len(schedule.rungs)):
            per_rung[k] = alive
            ranked = sorted(alive, key=lambda g: (score[g][k], g))
            alive = ranked[:max(1, len(alive) // schedule.eta)]
        out[b] = per_rung
    return out


def test_shared_brackets_train_the_union_of_what_each_bracket_alone_would_train():
    rng = np.random.default_rng(0)
    schedule = Schedule(rungs=(2, 6, 18, 54, 60), starts=(0, 1, 2), eta=3, metric="m", mode="min")
    groups = [f"g{i:02d}" for i in range(30)]
    # crossing curves: each group's loss decays at its own rate from its own start
    a, r = rng.uniform(0.5, 2, len(groups)), rng.uniform(0.005, 0.1, len(groups))
    curves = {g: {s: a[i] * np.exp(-r[i] * np.arange(61)) * (1 + 0.01 * int(s))
                  for s in ("0", "1")} for i, g in enumerate(groups)}
    search, reached = _simulate(schedule, curves)

    score = {g: [np.mean([curves[g][s][e] for s in ("0", "1")]) for e in schedule.rungs]
             for g in groups}
    by_book = _brute_force(schedule, score)
    for g in groups:
        furthest = max(schedule.rungs[k] for per_rung in by_book.values()
                       for k, alive in per_rung.items() if g in alive)
        assert reached[f"{g}/0"] == reached[f"{g}/1"] == furthest, g
    # every variant trains to the last bracket's entry; the work lies between the bounds
    assert min(reached.values()) == 18
    least, most = schedule.work(len(groups))
    assert least <= sum(reached.values()) / 2 <= most
    # the pick is the best finalist of every bracket, at the last rung
    finalists = {alive[0] for per_rung in by_book.values() for alive in [per_rung[4]]}
    assert search.pick() == min(finalists, key=lambda g: score[g][4])
    assert {b: search.picks[b] for b in search.picks} == {
        b: sorted(per_rung[4], key=lambda g: score[g][4])[0] for b, per_rung in by_book.items()}
    # the rung table: one row per bracket and rung it holds
    assert len(search.table) == sum(len(per_rung) for per_rung in by_book.values())
    row = next(r for r in search.table if r["bracket"] == 0 and r["rung"] == 0)
    assert row == {"bracket": 0, "ranking": "value", "rung": 0, "epoch": 2, "groups_in": 30,
                   "groups_kept": 10, "variants_in": 60, "variants_kept": 20}


def test_a_diverging_variant_is_dropped_not_ranked_and_its_group_ranks_last():
    schedule = Schedule(rungs=(10, 30), starts=(0,), eta=2, metric="val_loss", mode="min")
    search = Search.begin(schedule, [("a0", "a"), ("a1", "a"), ("b0", "b"), ("b1", "b"),
                                     ("c0", "c"), ("c1", "c"), ("d0", "d"), ("d1", "d")])
    values = {"a0": NAN, "a1": 0.01, "b0": 0.3, "b1": 0.3, "c0": 0.2, "c1": 0.2,
              "d0": 0.5, "d1": 0.5}
    for key, value in values.items():
        search.record(key, 0, value)
    decision = search.decide((0,))
    # a has the lowest mean of what is left, but a diverged seed: it ranks after b, c and d
    assert search.alive[0] == ["c", "b"]
    assert decision.train == ["b0", "b1", "c0", "c1"]
    assert decision.stopped == {"a0": 0, "a1": 0, "d0": 0, "d1": 0}
    for key in decision.train:
        search.record(key, 1, {"b0": 0.1, "b1": 0.1, "c0": 0.15, "c1": NAN}[key])
    final = search.decide((1,))
    assert final.train == [] and final.stopped == {k: 1 for k in decision.train}
    assert search.pick() == "b"


@pytest.mark.parametrize("eta,groups", list(itertools.product((2, 3, 4), (1, 2, 7, 84))))
def test_work_bounds_hold_for_any_ranking(eta, groups):
    schedule = Schedule(rungs=(1, 3, 9, 27, 30), starts=(0, 1, 2), eta=eta, metric="m", mode="min")
    rng = np.random.default_rng(eta * 100 + groups)
    curves = {f"g{i}": {"0": rng.permutation(31).astype(float)} for i in range(groups)}
    _, reached = _simulate(schedule, curves)
    least, most = schedule.work(groups)
    assert least <= sum(reached.values()) <= most


@pytest.mark.parametrize("rankings, pick", [(("value",), "early"), (("value", "trend"), "late")])
def test_a_trend_bracket_keeps_a_late_bloomer_that_a_value_bracket_prunes(rankings, pick):
    # at epoch 30 "early" leads (0.30, flat since 10), "late" is second but falling fast
    # (0.9 -> 0.45); trend (one eta-fold left): 0.30 + w * (0.30 - 0.31) against
    # 0.45 + w * (0.45 - 0.9), lower for late whenever w > 0.34 (TREND_WEIGHT is 0.75)
    curves = {"early": (0.31, 0.30, 0.29), "late": (0.9, 0.45, 0.1), "bad": (0.9, 0.8, 0.7)}
    schedule = Schedule(rungs=(10, 30, 90), starts=(1,), eta=3, metric="m", mode="min",
                        rankings=rankings)
    search = Search.begin(schedule, [(g, g) for g in curves])
    for rungs in schedule.rounds():
        for key in search.training():
            for k in rungs:
                search.record(key, k, curves[key][k])
        search.decide(rungs)
    assert search.pick() == pick
    assert [row["ranking"] for row in search.table if row["rung"] == 1] == list(rankings)
