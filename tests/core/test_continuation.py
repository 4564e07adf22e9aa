"""Continuing a TrainState: training to e1 and then on to e2 is one run to e2, bit for bit.

Successive halving relies on it: survivors of a rung continue from their parameters and
optimizer state in a new population (other variants, another position), never retrained.
"""
import numpy as np
import pytest

import core

RNG = np.random.default_rng(3)
X = RNG.normal(size=(24, 3))
Y = 0.5 + 0.3 * np.tanh(X @ RNG.normal(size=(3, 1)))
LABELS = (X[:, 0] + X[:, 1] > 0).astype(int)
XV = RNG.normal(size=(9, 3))
YV = 0.5 + 0.3 * np.tanh(XV @ RNG.normal(size=(3, 1)))

OPTIMIZERS = [
    core.OptimizerSpec("sgd", lr=[0.3, 0.1, 0.05, 0.2]),
    core.OptimizerSpec("momentum", lr=[0.05, 0.1, 0.02, 0.04], momentum=[0.9, 0.5, 0.8, 0.7],
                       weight_decay=0.01),
    core.OptimizerSpec("momentum", lr=0.05, nesterov=True),
    core.OptimizerSpec("adam", lr=[0.01, 0.02, 0.005, 0.03], beta1=[0.9, 0.8, 0.9, 0.85]),
]


def _subset(spec: core.OptimizerSpec, keep) -> core.OptimizerSpec:
    """The spec of the variants ``keep`` (per-variant constants selected)."""
    fields = {}
    for name in ("lr", "momentum", "beta1", "beta2", "eps", "weight_decay"):
        value = np.asarray(getattr(spec, name), dtype=np.float64)
        fields[name] = value if value.ndim == 0 else value[keep]
    return core.OptimizerSpec(spec.kind, nesterov=spec.nesterov, **fields)


def _params_equal(a: core.Params, b: core.Params):
    for x, y in zip(a.W + (a.b or ()), b.W + (b.b or ())):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("spec", OPTIMIZERS, ids=lambda s: s.kind + ("-nesterov" if s.nesterov else ""))
@pytest.mark.parametrize("batch_size", [None, 5])
@pytest.mark.parametrize("bias", [False, True])
def test_two_calls_give_the_bits_of_one_and_survivors_continue_in_any_population(spec, batch_size, bias):
    mlp = core.MLP(3, (4,), 1, bias=bias)
    params = core.init_params(mlp, "xavier_normal", [0, 1, 2, 3])
    kw = dict(loss="half_sse", batch_size=batch_size, log_every=4, data_seed=7)
    straight = core.train(mlp, params, X, Y, optimizer=spec, epochs=30, **kw)
    first = core.train(mlp, params, X, Y, optimizer=spec, epochs=11, **kw)   # 11: not a log epoch
    assert first.state.epoch == 11

    # all four on together
    on = core.train(mlp, first.state, X, Y, optimizer=spec, epochs=30, **kw)
    _params_equal(on.params, straight.params)
    for name in core.OPTIMIZER_STATE[spec.kind]:
        _params_equal(on.state.optimizer[name], straight.state.optimizer[name])
    np.testing.assert_array_equal(on.log_epochs, [12, 16, 20, 24, 28])
    np.testing.assert_array_equal(np.concatenate([first.log_epochs, on.log_epochs]),
                                  straight.log_epochs)
    np.testing.assert_array_equal(np.concatenate([first.loss, on.loss], axis=1), straight.loss)
    np.testing.assert_array_equal(on.final_loss, straight.final_loss)

    # survivors 3 and 1, in that order, continue as a population of their own
    keep = [3, 1]
    survivors = core.train(mlp, first.state.select(keep), X, Y, optimizer=_subset(spec, keep),
                           epochs=30, **kw)
    for got, want in zip(survivors.params.W, straight.params.W):
        np.testing.assert_array_equal(got, want[keep])
    np.testing.assert_array_equal(survivors.final_loss, straight.final_loss[keep])


def test_survivors_of_two_populations_concatenate_and_continue_exactly():
    mlp = core.MLP(3, (5,), 1)
    spec = core.OptimizerSpec("adam", lr=0.02)
    a = core.init_params(mlp, "he_normal", [0, 1, 2])
    b = core.init_params(mlp, "he_normal", [3, 4])
    kw = dict(optimizer=spec, log_every=5)
    half_a = core.train(mlp, a, X, Y, epochs=20, **kw)
    half_b = core.train(mlp, b, X, Y, epochs=20, **kw)
    merged = core.TrainState.concat([half_a.state.select([2]), half_b.state.select([0, 1])])
    on = core.train(mlp, merged, X, Y, epochs=45, **kw)
    alone = core.train(mlp, core.init_params(mlp, "he_normal", [2, 3, 4]), X, Y, epochs=45, **kw)
    _params_equal(on.params, alone.params)
    np.testing.assert_array_equal(on.loss, alone.loss[:, 4:])


def test_divergence_reference_and_frozen_variants_carry_over():
    """A variant that diverges after the break diverges at the same epoch as in one run (the
    reference is the loss at epoch 0, carried in the state); one frozen before stays frozen."""
    mlp = core.MLP(3, (4,), 1, output_activation="identity", bias=True)
    params = core.init_params(mlp, "normal", [0, 1, 2])
    spec = core.OptimizerSpec("sgd", lr=[0.05, 0.8, 1.5])   # the last diverges at epoch 8
    kw = dict(loss="mse", optimizer=spec, log_every=1, data_seed=0)
    straight = core.train(mlp, params, X, Y, epochs=40, **kw)
    assert straight.diverged.sum() >= 1 and not straight.diverged[0]
    cut = int(straight.diverged_epoch[straight.diverged].min())
    assert cut >= 2
    first = core.train(mlp, params, X, Y, epochs=cut - 1, **kw)
    assert not first.diverged.any()
    on = core.train(mlp, first.state, X, Y, epochs=40, **kw)
    np.testing.assert_array_equal(on.diverged_epoch, straight.diverged_epoch)
    _params_equal(on.params, straight.params)

    frozen = core.train(mlp, params, X, Y, epochs=cut + 2, **kw)
    assert frozen.diverged.any()
    later = core.train(mlp, frozen.state, X, Y, epochs=40, **kw)
    np.testing.assert_array_equal(later.diverged_epoch, straight.diverged_epoch)
    assert np.isnan(later.loss[frozen.diverged]).all()
    assert np.isnan(later.final_loss[frozen.diverged]).all()
    _params_equal(later.params, straight.params)


def test_validation_is_measured_like_training_and_never_changes_it():
    mlp = core.MLP(3, (4,), 1, bias=True)
    params = core.init_params(mlp, "xavier_uniform", [0, 1])
    kw = dict(loss="bce", optimizer=core.OptimizerSpec("sgd", lr=0.5), epochs=25, log_every=5,
              labels=LABELS)
    Yc = LABELS[:, None].astype(float)
    labels_v = (XV[:, 0] + XV[:, 1] > 0).astype(int)
    plain = core.train(mlp, params, X, Yc, **kw)
    watched = core.train(mlp, params, X, Yc, validation=(XV, labels_v[:, None], labels_v), **kw)
    _params_equal(watched.params, plain.params)
    np.testing.assert_array_equal(watched.loss, plain.loss)
    assert plain.validation is None and set(watched.validation) == {"loss", "accuracy"}

    # the logged validation loss at epoch 10 is the loss of the parameters after 10 epochs
    at10 = core.train(mlp, params, X, Yc, **{**kw, "epochs": 10})
    out = core.predict(mlp, at10.params, XV)
    np.testing.assert_allclose(watched.validation["loss"][:, 2],
                               core.loss_value("bce", out, labels_v[:, None].astype(float)),
                               rtol=1e-13)
    np.testing.assert_array_equal(watched.validation["accuracy"][:, 2],
                                  (core.predicted_labels(out) == labels_v).mean(axis=-1))
    final = core.predict(mlp, watched.params, XV)
    np.testing.assert_allclose(watched.final_validation["loss"],
                               core.loss_value("bce", final, labels_v[:, None].astype(float)),
                               rtol=1e-13)


def test_regression_validation_logs_mse_and_continues():
    mlp = core.MLP(3, (4,), 1)
    params = core.init_params(mlp, "xavier_normal", [5, 6])
    kw = dict(optimizer=core.OptimizerSpec("momentum", lr=0.1), log_every=3,
              validation=(XV, YV, None))
    straight = core.train(mlp, params, X, Y, epochs=20, **kw)
    first = core.train(mlp, params, X, Y, epochs=9, **kw)
    on = core.train(mlp, first.state, X, Y, epochs=20, **kw)
    assert set(on.validation) == {"loss", "mse"}
    np.testing.assert_array_equal(
        np.concatenate([first.validation["mse"], on.validation["mse"]], axis=1),
        straight.validation["mse"])
    # the first call's final equals the second's first log (epoch 9, a log epoch)
    np.testing.assert_array_equal(first.final_validation["loss"], on.validation["loss"][:, 0])


def test_a_state_cannot_go_back_and_shapes_are_checked():
    mlp = core.MLP(3, (2,), 1)
    params = core.init_params(mlp, "uniform01", [0])
    first = core.train(mlp, params, X, Y, epochs=10, log_every=5)
    with pytest.raises(ValueError, match="state's epoch"):
        core.train(mlp, first.state, X, Y, epochs=5)
    same = core.train(mlp, first.state, X, Y, epochs=10, log_every=5)   # zero more epochs
    _params_equal(same.params, first.params)
    assert len(same.log_epochs) == 0
    with pytest.raises(ValueError, match="cannot form one population"):
        core.TrainState.concat([first.state, core.TrainState.start(params)])
    with pytest.raises(ValueError, match="validation"):
        core.train(mlp, params, X, Y, epochs=2, validation=(XV[:, :2], YV, None))


@pytest.mark.parametrize("hidden", [(4,), (5, 3)])
def test_logging_never_changes_training_even_with_a_validation_set_of_the_training_size(hidden):
    # a log epoch's measurement of the full batch is the forward pass its step then uses; a
    # validation set of as many rows shares those buffers, and a diverging variant reshapes
    # the population there: the parameters must come out as when nothing is logged
    mlp = core.MLP(3, hidden, 1, activation="tanh", output_activation="identity", bias=True)
    lrs = [0.01, 0.05, 30.0, 0.1]                      # the third diverges
    params = core.init_params(mlp, "xavier_uniform", [0, 1, 2, 3])
    Xv = RNG.normal(size=X.shape)
    kw = dict(loss="half_sse", optimizer=core.OptimizerSpec("sgd", lr=lrs), epochs=30)
    logged = core.train(mlp, params, X, Y, log_every=1, validation=(Xv, Xv[:, :1], None), **kw)
    quiet = core.train(mlp, params, X, Y, log_every=1000, **kw)
    assert logged.diverged.any()
    ok = ~logged.diverged & ~quiet.diverged
    assert ok.sum() >= 2
    for a, b in zip(logged.params.W + logged.params.b, quiet.params.W + quiet.params.b):
        np.testing.assert_array_equal(a[ok], b[ok])
    np.testing.assert_array_equal(logged.final_loss[ok], quiet.final_loss[ok])
