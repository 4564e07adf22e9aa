"""Training loop semantics: logging, mini-batches, dtypes, classification, callbacks."""
import numpy as np
import pytest

import core

RNG = np.random.default_rng(5)
X = RNG.normal(size=(10, 3))
Y = 0.5 + 0.3 * np.tanh(X @ RNG.normal(size=(3, 1)))


def test_loss_is_logged_before_each_epochs_update_and_final_loss_is_on_final_params():
    mlp = core.MLP(3, (4,), 1, bias=True)
    params = core.init_params(mlp, "he_normal", [0, 1])
    r = core.train(mlp, params, X, Y, loss="half_sse", optimizer=core.OptimizerSpec(lr=0.05),
                   epochs=30, log_every=10)
    assert list(r.log_epochs) == [0, 10, 20]
    np.testing.assert_allclose(r.loss[:, 0], core.loss_value("half_sse", core.predict(mlp, params, X), Y),
                               rtol=1e-14)
    mid = core.train(mlp, params, X, Y, loss="half_sse", optimizer=core.OptimizerSpec(lr=0.05),
                     epochs=10, log_every=10)
    np.testing.assert_allclose(r.loss[:, 1], mid.final_loss, rtol=1e-13)
    out = core.predict(mlp, r.params, X)
    np.testing.assert_allclose(r.final_loss, core.loss_value("half_sse", out, Y), rtol=1e-13)
    np.testing.assert_allclose(r.final_mse, ((out - Y) ** 2).mean(axis=(1, 2)), rtol=1e-13)


def test_minibatches_follow_the_documented_order_for_a_linear_model():
    """hidden=() is linear regression; an independent NumPy loop gives the same numbers."""
    mlp = core.MLP(3, (), 1, output_activation="identity", bias=True)
    params = core.init_params(mlp, "normal", 4)
    r = core.train(mlp, params, X, Y, loss="mse", optimizer=core.OptimizerSpec(lr=0.1), epochs=7,
                   batch_size=4, log_every=1, data_seed=11)
    W, b = params.W[0][0].copy(), np.zeros((1, 1))
    rng, losses = np.random.default_rng(11), []
    for _ in range(7):
        losses.append(np.mean((X @ W + b - Y) ** 2))
        order = rng.permutation(10)
        for s in range(0, 10, 4):
            i = order[s:s + 4]
            g = 2 * (X[i] @ W + b - Y[i]) / len(i)            # d mse / d out
            W, b = W - 0.1 * X[i].T @ g, b - 0.1 * g.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(r.loss[0], losses, rtol=1e-12)
    np.testing.assert_allclose(r.params.W[0][0], W, rtol=1e-12)


def test_data_seed_fixes_the_order_and_full_size_batches_equal_full_batch():
    mlp = core.MLP(3, (4,), 1)
    params = core.init_params(mlp, "xavier_uniform", [0, 1, 2])
    run = lambda **kw: core.train(mlp, params, X, Y, optimizer=core.OptimizerSpec(lr=0.2),  # noqa: E731
                                  epochs=20, log_every=5, **kw)
    a, b, c = run(batch_size=3, data_seed=1), run(batch_size=3, data_seed=1), run(batch_size=3, data_seed=2)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.allclose(a.final_loss, c.final_loss, rtol=1e-9)
    np.testing.assert_array_equal(run(batch_size=10).loss, run(batch_size=None).loss)


def test_float32_on_request_and_float64_by_default():
    mlp = core.MLP(3, (4,), 1)
    p64 = core.init_params(mlp, "xavier_normal", [0, 1])
    p32 = core.init_params(mlp, "xavier_normal", [0, 1], dtype=np.float32)
    assert p64.W[0].dtype == np.float64 and p32.W[0].dtype == np.float32
    r64 = core.train(mlp, p64, X, Y, epochs=50, log_every=10)
    r32 = core.train(mlp, p32, X, Y, epochs=50, log_every=10)
    assert all(w.dtype == np.float32 for w in r32.params.W)
    assert core.predict(mlp, r32.params, X).dtype == np.float32
    np.testing.assert_allclose(r32.loss, r64.loss, rtol=1e-4)
    assert not np.array_equal(r32.loss, r64.loss)


def test_classification_logs_accuracy_and_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    Xc = rng.normal(size=(60, 2))
    labels = (Xc[:, 0] > 0).astype(int) + (Xc[:, 1] > 0.5).astype(int)       # 3 classes
    onehot = np.eye(3)[labels]
    mlp = core.MLP(2, (8,), 3, activation="tanh", output_activation="softmax", bias=True)
    params = core.init_params(mlp, "xavier_normal", [0, 1])
    r = core.train(mlp, params, Xc, onehot, loss="cross_entropy", labels=labels,
                   optimizer=core.OptimizerSpec("adam", lr=0.05), epochs=300, log_every=50)
    assert r.mse is None and r.final_mse is None
    assert r.accuracy.shape == (2, 6) and r.final_accuracy.min() > 0.93
    assert r.accuracy[:, 0].max() < 0.8
    binary = core.MLP(2, (4,), 1, activation="relu", output_activation="sigmoid", bias=True)
    rb = core.train(binary, core.init_params(binary, "he_normal", 0), Xc, (labels[:, None] > 0) * 1.0,
                    loss="bce", labels=labels > 0, optimizer=core.OptimizerSpec("momentum", lr=0.5),
                    epochs=200, log_every=50)
    assert rb.final_accuracy[0] > 0.9


def test_callback_params_untouched_and_bad_hyperparameter_lengths():
    mlp = core.MLP(3, (2,), 1)
    params = core.init_params(mlp, "uniform", [0, 1, 2])
    before = [w.copy() for w in params.W]
    seen = []
    core.train(mlp, params, X, Y, epochs=12, log_every=4,
               callback=lambda e, loss: seen.append((e, loss.shape)))
    assert seen == [(0, (3,)), (4, (3,)), (8, (3,))]
    assert all(np.array_equal(a, b) for a, b in zip(before, params.W))
    with pytest.raises(ValueError, match="lr has 2 values for a population of 3"):
        core.train(mlp, params, X, Y, optimizer=core.OptimizerSpec(lr=[0.1, 0.2]), epochs=1)
    with pytest.raises(ValueError, match="do not fit"):
        core.train(mlp, params, X[:, :2], Y, epochs=1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        core.OptimizerSpec("rmsprop")
