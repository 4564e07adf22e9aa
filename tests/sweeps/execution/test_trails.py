"""A variant's rounds joined into one run (`Trail`), and the search's checkpoint round trip."""
import numpy as np
import pytest

import core
from sweeps.execution.trails import Trail, dump, load
from sweeps.methods.brackets import Schedule, Search, search_from_state, search_state
from sweeps.execution.training import VariantResult

X = np.random.default_rng(1).normal(size=(12, 2))
Y = (X[:, :1] > 0).astype(float)
SCHEDULE = Schedule(rungs=(4, 12), starts=(0,), eta=2, metric="train_loss", mode="min")


def _round(mlp, start, stop, key, spec):
    """One round of one variant, as a worker hands it back (state kept)."""
    trained = core.train(mlp, start, X, Y, loss="bce", optimizer=spec, epochs=stop, log_every=2)
    return VariantResult(key=key, status="ok", log_epochs=trained.log_epochs,
                         curves={"train_loss": trained.loss[0]},
                         metrics={"train_loss": float(trained.final_loss[0]), "train_seconds": 1.0},
                         predictions=np.zeros((1, 1)), epoch=stop, state=trained.state), trained


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_checkpointed_trails_continue_as_if_never_stopped(kind):
    spec = core.OptimizerSpec(kind, lr=0.05)
    nets = {"a": core.MLP(2, (3,), 1, bias=True), "b": core.MLP(2, (5, 2), 1)}
    trails, straight = {}, {}
    for key, mlp in nets.items():
        params = core.init_params(mlp, "xavier_normal", [7])
        result, _ = _round(mlp, params, 4, key, spec)
        trails[key] = Trail.first(result)
        straight[key] = core.train(mlp, params, X, Y, loss="bce", optimizer=spec, epochs=12,
                                   log_every=2)
    search = Search.begin(SCHEDULE, [("a", "ga"), ("b", "gb")])
    search.record("a", 0, trails["a"].metrics["train_loss"])
    search.record("b", 0, np.nan)
    search.decide((0,))

    state, restored = load(dump(search_state(search), trails))
    restored_search = search_from_state(state, SCHEDULE)
    for name in ("groups", "alive", "done", "stopped", "table", "picks", "schedule"):
        assert getattr(restored_search, name) == getattr(search, name), name
    assert restored_search.values["a"] == search.values["a"]
    assert np.isnan(restored_search.values["b"][0])
    for key, mlp in nets.items():
        result, trained = _round(mlp, restored[key].state, 12, key, spec)
        joined = restored[key].extend(result)
        for got, want in zip(trained.params.W, straight[key].params.W):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(joined.log_epochs, straight[key].log_epochs)
        np.testing.assert_array_equal(joined.curves["train_loss"], straight[key].loss[0])
        assert joined.metrics["train_seconds"] == 2.0
        run = joined.result("pruned", 1)
        assert run.status == "pruned" and run.rung == 1 and run.epoch == 12 and run.state is None


def test_a_checkpoint_of_another_search_or_a_broken_file_is_refused():
    mlp = core.MLP(2, (3,), 1)
    result, _ = _round(mlp, core.init_params(mlp, "uniform01", [0]), 4, "a",
                       core.OptimizerSpec("sgd", lr=0.1))
    data = dump(search_state(Search.begin(SCHEDULE, [("a", "ga")])), {"a": Trail.first(result)})
    other = Schedule(rungs=(4, 12), starts=(0,), eta=3, metric="train_loss", mode="min")
    with pytest.raises(ValueError, match="another search"):
        search_from_state(load(data)[0], other)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load(data[: len(data) // 2])
    with pytest.raises(ValueError, match="no round's result"):
        load(data)[1]["a"].result("ok", 1)
