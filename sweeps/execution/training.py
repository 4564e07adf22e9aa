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
from sweeps.execution.machine import numerics_fingerprint
from sweeps.spec.data import Dataset
from sweeps.records import Pack
from sweeps.vocabulary import Status


@dataclass(frozen=True)
class VariantResult:
    """What one variant's training produced.

    Attributes
    ----------
    key : the variant's key.
    status : Status.OK or Status.DIVERGED (successive halving marks its stopped ones PRUNED).
    log_epochs : ndarray, shape (n_logs,), the epochs the curves were measured at.
    curves : the metric histories, each (n_logs,): "train_loss", and "train_accuracy" for
        classification, the same with "val_" when the data set has a validation split (see
        `history_curves`).
    metrics : final values: train_loss, train_mse | train_accuracy, val_loss and
        val_mse | val_accuracy (with a validation split), test_loss, test_mse |
        test_accuracy, train_seconds, and diverged_epoch when it diverged.
    predictions : ndarray, shape (n_test, n_out), the network's outputs on the test inputs.
    epoch : the epoch training reached (the pack's last stop, else the variant's train.epochs).
    at_stops : {stop epoch: the final train_* and val_* metrics there} for each of the
        pack's `stops` (empty without stops): what successive halving ranks on.
    state : a ``core.TrainState`` of this variant alone (K = 1) when the pack asked for it
        (`Pack.keep_state`), to continue training later; else None.
    rung : set by successive halving on the result it logs: the index of the last rung
        the variant reached (None for grid and random search).
    numerics : `machine.numerics_fingerprint` of the process that trained it (the child
        run's ``sweep.numerics`` tag: what its bits depend on beyond its key).
    """

    key: str
    status: Status
    log_epochs: np.ndarray
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    epoch: int | None = None
    at_stops: dict[int, dict[str, float]] = field(default_factory=dict)
    state: Any = None
    rung: int | None = None
    numerics: str = ""


def _per_variant(pack: Pack, setting: str) -> np.ndarray:
    """One value per variant of a setting that may differ inside a pack, shape (K,)."""
    return np.array([variant.settings[setting] for variant in pack.variants], dtype=np.float64)


def layer_sizes(settings: Mapping[str, Any], dataset: Dataset) -> tuple[int, ...]:
    """(n_in, *hidden, n_out) of a variant's network on its data set."""
    return (dataset.X_train.shape[1], *settings["model.hidden"],
            dataset.n_outputs(settings["model.output_activation"]))


def n_params(mlp: core.MLP) -> int:
    """The network's parameter count: its weights, and its biases when it has them."""
    sizes = (mlp.n_in, *mlp.hidden, mlp.n_out)
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return weights + (sum(sizes[1:]) if mlp.bias else 0)


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


def history_curves(loss: np.ndarray, metric: str, history: np.ndarray,
                   prefix: str = "train") -> dict[str, np.ndarray]:
    """The curves worth a metric history: the loss, and accuracy for classification.

    metric : "mse" or "accuracy"; prefix : "train" or "val" (the keys: "train_loss", ...).
    A regression's MSE curve is a fixed multiple of its squared-error loss curve
    (half_sse = MSE * n_train * n_out / 2), so only its final value is kept: each history
    point costs the tracking store as much as a whole extra metric.
    """
    if metric == "mse":
        return {f"{prefix}_loss": loss}
    return {f"{prefix}_loss": loss, f"{prefix}_{metric}": history}


def train_pack(pack: Pack, dataset: Dataset) -> list[VariantResult]:
    """Train every variant of `pack` as one population on `dataset`."""
    return fit_pack(pack, dataset)[1]


def fit_pack(pack: Pack, dataset: Dataset) -> tuple[core.Params, list[VariantResult]]:
    """`train_pack`, also returning the final parameters of the population (K = pack size)."""
    shared = pack.shared
    dtype = np.dtype(shared["train.dtype"])
    mlp = build_network(pack, dataset)
    output = shared["model.output_activation"]
    Y_train, Y_test = dataset.targets(output)
    X_test = dataset.X_test.astype(dtype, copy=False)
    classification = dataset.task == "classification"
    kind = "accuracy" if classification else "mse"
    validation = _validation_set(dataset, output, dtype)
    X_train, Y_train = dataset.X_train.astype(dtype, copy=False), Y_train.astype(dtype, copy=False)
    optimizer = optimizer_spec(pack)

    started = time.perf_counter()
    state = pack.start if pack.start is not None else core.init_params(
        mlp,
        [variant.settings["model.init"] for variant in pack.variants],
        [int(variant.settings["seed"]) for variant in pack.variants],
        dtype=dtype,
    )
    stops = pack.stops or (int(shared["train.epochs"]),)
    segments = []
    for stop in stops:        # one call per stop, each continuing the last (core.TrainState)
        segments.append(core.train(
            mlp, state, X_train, Y_train,
            loss=shared["train.loss"],
            optimizer=optimizer,
            epochs=int(stop),
            batch_size=shared["train.batch_size"],
            log_every=int(shared["train.log_every"]),
            data_seed=int(shared["data_seed"]),
            labels=dataset.labels_train if classification else None,
            validation=validation,
        ))
        state = segments[-1].state
    trained = segments[-1]
    out_test = core.predict(mlp, trained.params, X_test)  # (K, n_test, n_out)
    labels_test = dataset.labels_test if classification else None
    test = dict(zip(("loss", "mse", "accuracy"), core.measure(
        out_test, Y_test.astype(dtype, copy=False), shared["train.loss"], labels_test)))
    finals = [_finals(segment, kind) for segment in segments]
    log_epochs = np.concatenate([segment.log_epochs for segment in segments])
    curves = _curves(segments, kind, validation is not None)
    seconds_each = (time.perf_counter() - started) / len(pack.variants)

    results = []
    for k, variant in enumerate(pack.variants):
        diverged = bool(trained.diverged[k])
        metrics = {name: float(values[k]) for name, values in finals[-1].items()}
        metrics["test_loss"] = np.nan if diverged else float(test["loss"][k])
        metrics[f"test_{kind}"] = np.nan if diverged else float(test[kind][k])
        metrics["train_seconds"] = seconds_each
        if diverged:
            metrics["diverged_epoch"] = float(trained.diverged_epoch[k])
        if "n_params" in pack.record:
            metrics["n_params"] = float(n_params(mlp))
        results.append(
            VariantResult(
                key=variant.key,
                status=Status.DIVERGED if diverged else Status.OK,
                log_epochs=log_epochs,
                curves={name: curve[k] for name, curve in curves.items()},
                metrics=metrics,
                predictions=out_test[k].astype(np.float64),
                epoch=int(stops[-1]),
                at_stops=({int(stop): {name: float(v[k]) for name, v in at.items()}
                           for stop, at in zip(stops, finals)} if pack.stops else {}),
                state=trained.state.select([k]) if pack.keep_state else None,
                numerics=numerics_fingerprint(),
            )
        )
    return trained.params, results


def _finals(trained: core.TrainResult, kind: str) -> dict[str, np.ndarray]:
    """The final train_* and val_* metrics of one `core.train` call, each (K,)."""
    finals = {"train_loss": trained.final_loss,
              f"train_{kind}": trained.final_accuracy if kind == "accuracy" else trained.final_mse}
    if trained.final_validation is not None:
        finals.update({f"val_{m}": v for m, v in trained.final_validation.items()})
    return finals


def _curves(segments: list[core.TrainResult], kind: str, validation: bool) -> dict[str, np.ndarray]:
    """The histories of consecutive `core.train` calls, joined: {key: (K, n_logs)}."""
    def joined(pick):
        return np.concatenate([pick(segment) for segment in segments], axis=1)

    curves = history_curves(joined(lambda s: s.loss), kind,
                            joined(lambda s: s.accuracy if kind == "accuracy" else s.mse))
    if validation:
        curves.update(history_curves(joined(lambda s: s.validation["loss"]), kind,
                                     joined(lambda s: s.validation[kind]), prefix="val"))
    return curves


def _validation_set(dataset: Dataset, output: str, dtype) -> tuple | None:
    """(X_val, Y_val, labels_val) as `core.train` measures it, or None without a split."""
    if dataset.X_val is None:
        return None
    Y_val = dataset.val_targets(output)
    labels = dataset.labels_val if dataset.task == "classification" else None
    return dataset.X_val.astype(dtype, copy=False), Y_val.astype(dtype, copy=False), labels
