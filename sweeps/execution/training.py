"""Train one pack: the variants of a pack become one core population.

This is what a Ray task (or the serial executor) runs. It imports core, the data set and the
plain records only (no pydantic, YAML or pandas), so a worker loads it quickly, and it returns
plain arrays and dicts: the driver logs.

Which settings are one value for the whole pack and which one per variant comes from the
pack (`Pack.shared_paths`, derived from the schema's setting roles), not from a list here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np

import core
from sweeps.spec.data import Dataset
from sweeps.records import Pack


@dataclass(frozen=True)
class VariantResult:
    """What one variant's training produced.

    Attributes
    ----------
    key : the variant's key.
    status : "ok" or "diverged".
    log_epochs : ndarray, shape (n_logs,), the epochs the curves were measured at.
    curves : the metric histories, each (n_logs,): "train_loss", and "train_accuracy" for
        classification (see `history_curves`).
    metrics : final values: train_loss, train_mse | train_accuracy, test_loss,
        test_mse | test_accuracy, train_seconds, and diverged_epoch when it diverged.
    predictions : ndarray, shape (n_test, n_out), the network's outputs on the test inputs.
    """

    key: str
    status: str
    log_epochs: np.ndarray
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


def _per_variant(pack: Pack, setting: str) -> np.ndarray:
    """One value per variant of a setting that may differ inside a pack, shape (K,)."""
    return np.array([variant.settings[setting] for variant in pack.variants], dtype=np.float64)


def layer_sizes(settings: Mapping[str, Any], dataset: Dataset) -> tuple[int, ...]:
    """(n_in, *hidden, n_out) of a variant's network on its data set."""
    return (dataset.X_train.shape[1], *settings["model.hidden"],
            dataset.n_outputs(settings["model.output_activation"]))


def build_network(pack: Pack, dataset: Dataset) -> core.MLP:
    """The pack's shared network."""
    shared = pack.shared
    n_in, *hidden, n_out = layer_sizes(shared, dataset)
    return core.MLP(
        n_in=n_in,
        hidden=tuple(hidden),
        n_out=n_out,
        activation=shared["model.activation"],
        output_activation=shared["model.output_activation"],
        bias=bool(shared["model.bias"]),
    )


def optimizer_spec(pack: Pack) -> core.OptimizerSpec:
    """The pack's optimizer: each constant one value for the pack if the pack shares it,
    else one value per variant, shape (K,)."""
    shared = pack.shared
    constants = {}
    for spec_field in fields(core.OptimizerSpec):
        path = "train.optimizer" if spec_field.name == "kind" else f"train.{spec_field.name}"
        constants[spec_field.name] = shared[path] if path in shared else _per_variant(pack, path)
    return core.OptimizerSpec(**constants)


def history_curves(loss: np.ndarray, metric: str, history: np.ndarray) -> dict[str, np.ndarray]:
    """The curves worth a metric history: the loss, and accuracy for classification.

    A regression's MSE curve is a fixed multiple of its squared-error loss curve
    (half_sse = MSE * n_train * n_out / 2), so only its final value is kept: each history
    point costs the tracking store as much as a whole extra metric.
    """
    if metric == "train_mse":
        return {"train_loss": loss}
    return {"train_loss": loss, metric: history}


def train_pack(pack: Pack, dataset: Dataset) -> list[VariantResult]:
    """Train every variant of `pack` as one population on `dataset`."""
    return fit_pack(pack, dataset)[1]


def fit_pack(pack: Pack, dataset: Dataset) -> tuple[core.Params, list[VariantResult]]:
    """`train_pack`, also returning the final parameters of the population (K = pack size)."""
    shared = pack.shared
    dtype = np.dtype(shared["train.dtype"])
    mlp = build_network(pack, dataset)
    Y_train, Y_test = dataset.targets(shared["model.output_activation"])
    X_train = dataset.X_train.astype(dtype, copy=False)
    X_test = dataset.X_test.astype(dtype, copy=False)
    classification = dataset.task == "classification"

    started = time.perf_counter()
    params = core.init_params(
        mlp,
        [variant.settings["model.init"] for variant in pack.variants],
        [int(variant.settings["seed"]) for variant in pack.variants],
        dtype=dtype,
    )
    trained = core.train(
        mlp, params, X_train, Y_train.astype(dtype, copy=False),
        loss=shared["train.loss"],
        optimizer=optimizer_spec(pack),
        epochs=int(shared["train.epochs"]),
        batch_size=shared["train.batch_size"],
        log_every=int(shared["train.log_every"]),
        data_seed=int(shared["data_seed"]),
        labels=dataset.labels_train if classification else None,
    )
    out_test = core.predict(mlp, trained.params, X_test)  # (K, n_test, n_out)
    labels_test = dataset.labels_test if classification else None
    test_loss, test_mse, test_accuracy = core.measure(
        out_test, Y_test.astype(dtype, copy=False), shared["train.loss"], labels_test)
    if classification:
        train_metric, history = "train_accuracy", trained.accuracy
        final_metric = trained.final_accuracy
        test_metric, test_values = "test_accuracy", test_accuracy
    else:
        train_metric, history = "train_mse", trained.mse
        final_metric = trained.final_mse
        test_metric, test_values = "test_mse", test_mse
    seconds_each = (time.perf_counter() - started) / len(pack.variants)

    results = []
    for k, variant in enumerate(pack.variants):
        diverged = bool(trained.diverged[k])
        metrics = {
            "train_loss": float(trained.final_loss[k]),
            train_metric: float(final_metric[k]),
            "test_loss": np.nan if diverged else float(test_loss[k]),
            test_metric: np.nan if diverged else float(test_values[k]),
            "train_seconds": seconds_each,
        }
        if diverged:
            metrics["diverged_epoch"] = float(trained.diverged_epoch[k])
        results.append(
            VariantResult(
                key=variant.key,
                status="diverged" if diverged else "ok",
                log_epochs=trained.log_epochs,
                curves=history_curves(trained.loss[k], train_metric, history[k]),
                metrics=metrics,
                predictions=out_test[k].astype(np.float64),
            )
        )
    return trained.params, results
