"""Small sweep files for the tests, written to a temp dir: a grid on the article's network,
and successive halving on two moons."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

# The small grid most tests use: 2 learning rates x 2 hidden sizes x 3 seeds.
GRID = {"train.lr": [0.1, 0.5], "model.hidden": [2, 4], "seed": [0, 1, 2]}


def _write(directory: Path, name: str, *, data: Mapping, model: Mapping, train: Mapping,
           seed: int, search: Mapping) -> Path:
    """`<directory>/<name>.yaml` with these sections."""
    path = Path(directory) / f"{name}.yaml"
    config = {"name": name, "data": dict(data), "model": dict(model), "train": dict(train),
              "seed": seed, "search": dict(search)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_sweep_file(directory: Path, name: str, parameters: Mapping[str, list], *,
                     epochs: int = 1000, log_every: int = 100, source: str = "article",
                     activation: str = "sigmoid", output_activation: str = "sigmoid",
                     loss: str = "half_sse") -> Path:
    """`<directory>/<name>.yaml`: a grid over `parameters` (dotted path -> values)."""
    return _write(
        directory, name, data={"source": source},
        model={"hidden": [4], "activation": activation, "output_activation": output_activation,
               "bias": False, "init": "uniform01"},
        train={"loss": loss, "optimizer": "sgd", "lr": 0.1, "epochs": epochs,
               "log_every": log_every},
        seed=42, search={"method": "grid", "parameters": _lists(parameters)})


def write_sweep(directory: Path, name: str = "small", epochs: int = 2000,
                lrs: Sequence[float] = (0.1, 0.5), seeds: Iterable[int] = (0, 1, 2),
                **options) -> Path:
    """`GRID` with other learning rates or seeds: len(lrs) x 2 hidden sizes x len(seeds)."""
    parameters = {**GRID, "train.lr": list(lrs), "seed": list(seeds)}
    return write_sweep_file(directory, name, parameters, epochs=epochs, **options)


def write_halving_sweep(directory: Path, name: str = "halving", *, epochs: int = 40,
                        min_epochs: int = 5, eta: int = 2, brackets: str | int = 2,
                        ranking: str = "both", log_every: int = 5,
                        lrs: Sequence[float] = (0.03, 0.3, 1.0, 3.0),
                        seeds: Iterable[int] = (0, 1), source: str = "moons",
                        output_activation: str = "sigmoid", loss: str = "bce",
                        metric: str = "val_loss") -> Path:
    """`<directory>/<name>.yaml`: successive halving on moons (or `source`) over len(lrs) x 2
    hidden sizes (groups) x seeds, ranked on val_loss; epochs 40, min_epochs 5, eta 2: rungs
    5 10 20 40, brackets entering at 5 and 10, each ranked by value and by trend."""
    return _write(
        directory, name, data={"source": source, "validation": 0.25},
        model={"hidden": [4], "activation": "tanh", "output_activation": output_activation,
               "bias": True, "init": "xavier_normal"},
        train={"loss": loss, "optimizer": "sgd", "lr": 0.1, "epochs": epochs,
               "log_every": log_every},
        seed=0, search={"method": "halving", "min_epochs": min_epochs, "eta": eta,
                        "brackets": brackets, "ranking": ranking, "metric": metric,
                        "parameters": _lists({"train.lr": lrs, "model.hidden": [2, 8],
                                              "seed": seeds})})


def _lists(parameters: Mapping[str, Iterable[Any]]) -> dict[str, list]:
    """YAML-ready values: lists of plain numbers (no tuples or ranges)."""
    return {path: [list(v) if isinstance(v, tuple) else v for v in values]
            for path, values in parameters.items()}


def write_model_based_sweep(directory: Path, name: str = "tpe", *, method: str = "tpe",
                            trials: int = 8, batch: int = 4, epochs: int = 40,
                            seeds: Iterable[int] = (0, 1)) -> Path:
    """`<directory>/<name>.yaml`: `method` (tpe or gp) on moons over a log-uniform learning
    rate and two hidden sizes, `trials` configurations of len(seeds) seeds, ranked on
    val_loss."""
    return _write(
        directory, name, data={"source": "moons", "validation": 0.25},
        model={"hidden": [4], "activation": "tanh", "output_activation": "sigmoid",
               "bias": True, "init": "xavier_normal"},
        train={"loss": "bce", "optimizer": "sgd", "lr": 0.1, "epochs": epochs,
               "log_every": max(1, epochs // 8)},
        seed=0, search={"method": method, "trials": trials, "batch": batch,
                        "parameters": {"train.lr": {"distribution": "log_uniform",
                                                    "low": 0.01, "high": 3.0},
                                       "model.hidden": [2, 8], "seed": list(seeds)}})
