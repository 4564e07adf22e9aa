"""A variant's training over the rounds of a search, and where a search stands.

`Trail` joins the results of the rounds a variant took part in into one run: continuous
curves, the latest metrics and predictions, the state to continue from. `dump` and `load`
turn a search between rounds (its scheduler's JSON state and the trails of every variant
still training) into bytes and back: the checkpoint a resumed sweep continues from, so no
finished round is trained again.

The checkpoint is an uncompressed ``.npz`` file read with ``allow_pickle=False`` (it comes
from a shared tracking store): JSON for the bookkeeping, and per group of variants with equal
shapes one stacked array per parameter, optimizer state, curve and metric.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

import core
from sweeps.execution.training import VariantResult

FORMAT = 1


@dataclass(frozen=True)
class Trail:
    """One variant's training so far.

    log_epochs : ndarray, shape (n_logs,), every logged epoch of its rounds.
    curves : {key: (n_logs,)}, the rounds' histories joined.
    metrics : the latest round's final metrics (train_seconds summed over rounds).
    state : the ``core.TrainState`` (K = 1) to continue from.
    last : the latest round's result itself (predictions, status) when this process has it;
        None after a checkpoint was loaded (the next round gives a new one).
    """

    log_epochs: np.ndarray
    curves: Mapping[str, np.ndarray]
    metrics: Mapping[str, float]
    state: core.TrainState
    last: VariantResult | None = None

    @classmethod
    def first(cls, result: VariantResult) -> "Trail":
        return cls(log_epochs=result.log_epochs, curves=dict(result.curves),
                   metrics=dict(result.metrics), state=result.state, last=result)

    def extend(self, result: VariantResult) -> "Trail":
        """This trail followed by the round that produced `result`."""
        metrics = dict(result.metrics)
        metrics["train_seconds"] = (result.metrics.get("train_seconds", 0.0)
                                    + self.metrics.get("train_seconds", 0.0))
        return Trail(log_epochs=np.concatenate([self.log_epochs, result.log_epochs]),
                     curves={k: np.concatenate([v, result.curves[k]])
                             for k, v in self.curves.items()},
                     metrics=metrics, state=result.state, last=result)

    def result(self, status: str, rung: int) -> VariantResult:
        """The whole run as one result, ended at `rung` with `status` (ok, pruned, diverged)."""
        if self.last is None:
            raise ValueError("a trail loaded from a checkpoint has no round's result yet")
        return replace(self.last, status=status, log_epochs=self.log_epochs,
                       curves=dict(self.curves), metrics=dict(self.metrics), rung=rung,
                       state=None, at_stops={})


def dump(search: Mapping, trails: Mapping[str, Trail]) -> bytes:
    """A scheduler's state (`Scheduler.state`, JSON) and its variants' trails as checkpoint
    bytes."""
    groups: dict[tuple, list[str]] = {}
    for key, trail in trails.items():
        groups.setdefault(_signature(trail), []).append(key)
    arrays: dict[str, np.ndarray] = {}
    meta_groups = []
    for g, keys in enumerate(groups.values()):
        first = trails[keys[0]]
        state = core.TrainState.concat([trails[k].state for k in keys])
        prefix = f"g{g}/"
        _put_params(arrays, prefix + "params/", state.params)
        for name, params in state.optimizer.items():
            _put_params(arrays, f"{prefix}opt/{name}/", params)
        arrays[prefix + "first_loss"] = state.first_loss
        arrays[prefix + "diverged_epoch"] = state.diverged_epoch
        arrays[prefix + "log_epochs"] = first.log_epochs
        for name in first.curves:
            arrays[f"{prefix}curve/{name}"] = np.stack([trails[k].curves[name] for k in keys])
        for name in first.metrics:
            arrays[f"{prefix}metric/{name}"] = np.array([trails[k].metrics[name] for k in keys])
        meta_groups.append({"keys": keys, "epoch": state.epoch, "layers": len(state.params.W),
                            "bias": state.params.b is not None,
                            "optimizer": sorted(state.optimizer), "curves": list(first.curves),
                            "metrics": list(first.metrics)})
    meta = {"format": FORMAT, **search, "groups": meta_groups}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)      # weights hardly compress: zlib took 9x as long for 4% less
    return buffer.getvalue()


def load(data: bytes) -> tuple[dict, dict[str, Trail]]:
    """(scheduler state, trails) from checkpoint bytes; ValueError if they are not a
    checkpoint (another format, a broken file)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as error:  # a truncated or foreign file
        raise ValueError(f"not a readable checkpoint: {error}") from None
    if meta.get("format") != FORMAT:
        raise ValueError("the checkpoint belongs to another search schedule or format")
    trails: dict[str, Trail] = {}
    for g, group in enumerate(meta["groups"]):
        prefix = f"g{g}/"
        state = core.TrainState(
            epoch=group["epoch"],
            params=_get_params(arrays, prefix + "params/", group["layers"], group["bias"]),
            optimizer={name: _get_params(arrays, f"{prefix}opt/{name}/", group["layers"],
                                         group["bias"]) for name in group["optimizer"]},
            first_loss=arrays[prefix + "first_loss"],
            diverged_epoch=arrays[prefix + "diverged_epoch"])
        for i, key in enumerate(group["keys"]):
            trails[key] = Trail(
                log_epochs=arrays[prefix + "log_epochs"],
                curves={name: arrays[f"{prefix}curve/{name}"][i] for name in group["curves"]},
                metrics={name: float(arrays[f"{prefix}metric/{name}"][i])
                         for name in group["metrics"]},
                state=state.select([i]))
    state = {k: v for k, v in meta.items() if k not in ("format", "groups")}
    return state, trails


def _signature(trail: Trail) -> tuple:
    """What variants must share to be stacked: every array's shape, the keys, the epochs."""
    state = trail.state
    shapes = tuple(a.shape[1:] for a in state.params.W + (state.params.b or ()))
    return (shapes, state.params.b is not None, tuple(sorted(state.optimizer)), state.epoch,
            trail.log_epochs.tobytes(), tuple(trail.curves), tuple(trail.metrics))


def _put_params(arrays: dict, prefix: str, params: core.Params) -> None:
    for l, W in enumerate(params.W):
        arrays[f"{prefix}W{l}"] = W
    for l, b in enumerate(params.b or ()):
        arrays[f"{prefix}b{l}"] = b


def _get_params(arrays: Mapping, prefix: str, layers: int, bias: bool) -> core.Params:
    W = tuple(arrays[f"{prefix}W{l}"] for l in range(layers))
    b = tuple(arrays[f"{prefix}b{l}"] for l in range(layers)) if bias else None
    return core.Params(W, b)
