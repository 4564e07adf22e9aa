"""A variant trained alone gives the same numbers as inside a population of 1000."""
import numpy as np
import pytest


import core
from core.network import BROADCAST_MAX_N

core_train = core.loop   # the training loop module (core.train is the function)
K = 1000
PICK = [0, 437, 998]
INITS = sorted(core.INITIALIZERS)


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    Y = 0.5 + 0.35 * np.tanh(X @ rng.normal(size=(3, 2)))
    return X, Y


def _hyper(kind, nesterov, decay):
    """Per-variant constants, all different across the population."""
    rng = np.random.default_rng(7)
    kw = dict(kind=kind, nesterov=nesterov,
              lr=10 ** rng.uniform(-2.5, -0.5 if kind == "adam" else 0.0, K),
              momentum=rng.uniform(0.5, 0.95, K), beta1=rng.uniform(0.8, 0.95, K),
              beta2=rng.uniform(0.95, 0.999, K), eps=10 ** rng.uniform(-9, -7, K),
              weight_decay=rng.uniform(0, 1e-2, K) if decay else 0.0)
    return kw


def _spec(kw, idx):
    return core.OptimizerSpec(**{k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in kw.items()})


def _train(mlp, inits, seeds, spec, X, Y, **kw):
    params = core.init_params(mlp, inits, seeds)
    return core.train(mlp, params, X, Y, loss="mse", optimizer=spec, log_every=10, **kw)


def _assert_same(alone, pop, k, mlp, X_test):
    for a, b in ((alone.loss[0], pop.loss[k]), (alone.mse[0], pop.mse[k]),
                 (alone.final_loss[:1], pop.final_loss[k:k + 1])):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=0)
    pa = core.predict(mlp, alone.params, X_test)[0]
    b = None if pop.params.b is None else tuple(x[k:k + 1] for x in pop.params.b)
    pb = core.predict(mlp, core.Params(tuple(w[k:k + 1] for w in pop.params.W), b), X_test)[0]
    np.testing.assert_allclose(pa, pb, rtol=1e-10, atol=0)


OPTIMIZERS = [("sgd", False, False), ("momentum", False, False), ("momentum", True, False),
              ("adam", False, False), ("sgd", False, True), ("momentum", True, True), ("adam", False, True)]


@pytest.mark.parametrize("batch_size", [None, 5])
@pytest.mark.parametrize("kind,nesterov,decay", OPTIMIZERS)
def test_variant_alone_equals_variant_in_population_of_1000(kind, nesterov, decay, batch_size):
    X, Y = _data(12)
    mlp = core.MLP(3, (5,), 2, activation="tanh", output_activation="sigmoid", bias=True)
    kw = _hyper(kind, nesterov, decay)
    inits = [INITS[k % len(INITS)] for k in range(K)]
    seeds = list(range(100, 100 + K))
    pop = _train(mlp, inits, seeds, core.OptimizerSpec(**kw), X, Y, epochs=40,
                 batch_size=batch_size, data_seed=3)
    assert pop.loss.shape == (K, 4)
    assert np.isfinite(pop.loss[PICK]).all()
    X_test = _data(6, seed=1)[0]
    for k in PICK:
        alone = _train(mlp, inits[k], [seeds[k]], _spec(kw, k), X, Y, epochs=40,
                       batch_size=batch_size, data_seed=3)
        _assert_same(alone, pop, k, mlp, X_test)
    # the population really differs between members (so the test compares something)
    assert np.unique(np.round(pop.final_loss[PICK], 12)).size == len(PICK)


def test_chunked_population_equals_one_chunk(monkeypatch):
    X, Y = _data(12)
    mlp = core.MLP(3, (4, 3), 2, activation="relu", output_activation="identity", bias=True)
    kw = _hyper("momentum", True, True)
    inits, seeds = [INITS[k % len(INITS)] for k in range(K)], list(range(K))
    whole = _train(mlp, inits, seeds, core.OptimizerSpec(**kw), X, Y, epochs=30)
    monkeypatch.setattr(core_train, "CHUNK_ELEMENTS", 12 * 4 * 7)          # chunks of 7 variants
    chunked = _train(mlp, inits, seeds, core.OptimizerSpec(**kw), X, Y, epochs=30)
    np.testing.assert_allclose(chunked.loss, whole.loss, rtol=1e-10, atol=0)
    for a, b in zip(chunked.params.W, whole.params.W):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_population_equivalence_on_the_large_batch_code_path():
    n = BROADCAST_MAX_N + 16
    X, Y = _data(n)
    mlp = core.MLP(3, (6, 1, 4), 2, activation="sigmoid", output_activation="sigmoid")
    K_large = 12
    lrs = np.geomspace(1e-3, 1e-1, K_large) / n
    inits, seeds = [INITS[k % len(INITS)] for k in range(K_large)], list(range(K_large))
    pop = _train(mlp, inits, seeds, core.OptimizerSpec(lr=lrs), X, Y, epochs=20)
    for k in (3, 10):
        alone = _train(mlp, inits[k], [seeds[k]], core.OptimizerSpec(lr=lrs[k]), X, Y, epochs=20)
        _assert_same(alone, pop, k, mlp, X[:5])


def test_every_float_constant_of_the_optimizer_spec_may_differ_per_variant():
    """`per_variant` reads OptimizerSpec's own fields: a float constant added to the spec is
    one value per variant without a second list to update."""
    from dataclasses import fields

    floats = [f.name for f in fields(core.OptimizerSpec) if isinstance(f.default, float)]
    values = {name: [0.1 * (i + 1), 0.2 * (i + 1), 0.3 * (i + 1)] for i, name in enumerate(floats)}
    hp = core.OptimizerSpec(kind="adam", **values).per_variant(3)
    assert set(hp) == set(floats) and "nesterov" not in hp and "kind" not in hp
    for name in floats:
        np.testing.assert_array_equal(hp[name], values[name])
        with pytest.raises(ValueError, match=name):
            core.OptimizerSpec(**{name: [0.1, 0.2]}).per_variant(3)
