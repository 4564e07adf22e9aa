"""A variant's numbers are bit-identical alone (K = 1) and inside any pack, at any position.

Compared with ``np.array_equal`` (no tolerance): the loss (and MSE or accuracy) curve, the
final metrics, the final parameters, and the predictions the pack's forward pass gives
the variant against its own forward pass alone.
"""
import numpy as np
import pytest

import core

ARTICLE_X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
ARTICLE_Y = np.array([[0.2], [0.5], [0.8]])
MATE_INITS = ("uniform01", "xavier_normal", "he_normal", "normal")


def _pack(mlp, target, K, pos, dtype, lr, rng):
    """Init params and per-variant lr of K variants: the target at ``pos``, random mates."""
    inits = [MATE_INITS[i] for i in rng.integers(0, len(MATE_INITS), K)]
    seeds = [int(s) for s in rng.integers(1000, 10**6, K)]
    lrs = lr * rng.uniform(0.3, 2.0, K)
    inits[pos], seeds[pos], lrs[pos] = target[0], target[1], lr
    return core.init_params(mlp, inits, seeds, dtype=dtype), lrs


def _run(mlp, params, lrs, X, Y, kind, **kw):
    spec = core.OptimizerSpec(kind=kind, lr=lrs, momentum=0.9, nesterov=kind == "momentum")
    return core.train(mlp, params, X, Y, optimizer=spec, **kw)


def _variant(params, k):
    b = None if params.b is None else tuple(x[k:k + 1] for x in params.b)
    return core.Params(tuple(w[k:k + 1] for w in params.W), b)


def _assert_bit_identical(mlp, target, Ks, X, Y, *, kind="sgd", lr=0.5, dtype=np.float64,
                          X_test=None, **kw):
    X_test = X if X_test is None else X_test
    rng = np.random.default_rng(12345)
    alone_params, _ = _pack(mlp, target, 1, 0, dtype, lr, rng)
    alone = _run(mlp, alone_params, np.array([lr]), X, Y, kind, **kw)
    pred_alone = core.predict(mlp, alone.params, X_test)[0]
    fields = ("loss", "mse", "accuracy", "final_loss", "final_mse", "final_accuracy")
    checked = 0
    for K in Ks:
        for pos in sorted({0, K // 2, K - 1}):
            params, lrs = _pack(mlp, target, K, pos, dtype, lr, rng)
            pack = _run(mlp, params, lrs, X, Y, kind, **kw)
            where = f"K={K} pos={pos}"
            for name in fields:
                a, b = getattr(alone, name), getattr(pack, name)
                if a is not None:
                    assert np.array_equal(a[0], b[pos], equal_nan=True), f"{name} differs, {where}"
            mine = _variant(pack.params, pos)
            for a, b in zip(alone.params.W + (alone.params.b or ()), mine.W + (mine.b or ())):
                assert np.array_equal(a, b), f"final parameters differ, {where}"
            pred_pack = core.predict(mlp, pack.params, X_test)[pos]
            assert np.array_equal(pred_alone, pred_pack), f"predictions differ, {where}"
            assert np.array_equal(pred_alone, core.predict(mlp, mine, X_test)[0])
            checked += 1
    # the mates really differ from the target (so the comparison means something)
    assert not np.array_equal(pack.loss[pos], pack.loss[(pos + 1) % K])
    return checked


@pytest.mark.parametrize("init", ["uniform01", "xavier_normal", "he_normal"])
@pytest.mark.parametrize("h", [2, 4, 8, 16])
def test_card_variant_is_bit_identical_in_any_pack(h, init):
    mlp = core.MLP(3, (h,), 1, activation="sigmoid", output_activation="sigmoid")
    _assert_bit_identical(mlp, (init, 7), (2, 3, 7, 40), ARTICLE_X, ARTICLE_Y,
                          loss="half_sse", epochs=300, log_every=50, X_test=ARTICLE_X[1:2])


def _blobs(n, n_in, n_cls, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_cls, n)
    X = rng.normal(size=(n, n_in)) + labels[:, None] * 0.7
    return X, np.eye(n_cls)[labels], labels


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["adam", "momentum"])
def test_classification_mini_batch_variant_is_bit_identical(kind, dtype):
    X, Y, labels = _blobs(37, 4, 3)
    mlp = core.MLP(4, (6, 5), 3, activation="tanh", output_activation="softmax", bias=True)
    _assert_bit_identical(mlp, ("xavier_normal", 3), (2, 3, 7, 40), X, Y, kind=kind, lr=0.05,
                          dtype=dtype, loss="cross_entropy", labels=labels, epochs=40,
                          log_every=7, batch_size=8, data_seed=5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["adam", "momentum", "sgd"])
def test_regression_with_biases_and_one_wide_layers_is_bit_identical(kind, dtype):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(29, 5))
    Y = 0.5 + 0.4 * np.tanh(X @ rng.normal(size=(5, 1)))
    mlp = core.MLP(5, (7, 1, 4), 1, activation="sigmoid", output_activation="sigmoid", bias=True)
    _assert_bit_identical(mlp, ("he_normal", 11), (2, 3, 7, 40), X, Y, kind=kind, lr=0.05,
                          dtype=dtype, loss="mse", epochs=40, log_every=9, batch_size=10,
                          X_test=X[:1])
    mlp = core.MLP(5, (9,), 1, activation="relu", output_activation="identity", bias=True)
    _assert_bit_identical(mlp, ("xavier_normal", 2), (2, 7, 40), X, Y, kind=kind, lr=0.01,
                          dtype=dtype, loss="half_sse", epochs=40, log_every=9)
    mlp = core.MLP(5, (), 1, output_activation="sigmoid", bias=True)     # one online sample
    _assert_bit_identical(mlp, ("he_normal", 5), (2, 7), X, Y, kind=kind, lr=0.01, dtype=dtype,
                          loss="mse", epochs=6, log_every=2, batch_size=1, X_test=X[3:4])


def test_large_batch_code_path_is_bit_identical():
    from core.network import BROADCAST_MAX_N
    rng = np.random.default_rng(8)
    X = rng.normal(size=(BROADCAST_MAX_N + 5, 3))
    Y = 0.5 + 0.3 * np.tanh(X[:, :1] - X[:, 1:2])
    mlp = core.MLP(3, (6, 1, 4), 1, activation="sigmoid", output_activation="sigmoid", bias=True)
    _assert_bit_identical(mlp, ("uniform01", 1), (2, 7), X, Y, lr=1e-4, loss="half_sse",
                          epochs=6, log_every=2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_one_output_layer_done_as_a_gemm_is_bit_identical(activation, dtype):
    from core.network import ONE_OUTPUT_GEMM_MIN
    h = 16
    n = -(-ONE_OUTPUT_GEMM_MIN // h) + 3          # just past the threshold, within a small batch
    X, _, labels = _blobs(n, 6, 2, seed=3)
    mlp = core.MLP(6, (h,), 1, activation=activation, output_activation="sigmoid", bias=True)
    _assert_bit_identical(mlp, ("xavier_normal", 4), (2, 3, 7, 40), X, labels[:, None] * 1.0,
                          kind="momentum", lr=0.3, dtype=dtype, loss="bce", labels=labels,
                          epochs=30, log_every=7)
