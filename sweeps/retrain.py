"""Re-train one variant from its logged params alone: the code path `best` and `verify` share.

A child run's params hold every resolved setting under its dotted path (`encode_param`).
`settings_from_params` decodes them, checked by the sweep file's own schema; the data set is
rebuilt from the ``data.*`` settings and ``data_seed``; the variant is trained as a pack of
one by `sweeps.training.fit_pack`, the function every Ray task runs. No sweep file is read.

The rule: the variant key is recomputed from the decoded settings and the rebuilt data, so a
param changed after the run (or a CSV file changed since) shows as a key that differs from
the logged ``sweep.variant_key``, even when the numbers happen to agree.

Reproduction is bit-for-bit for a variant that trained alone (a pack of one). In a pack of
several, the last bits of its losses, weights and predictions can depend on its pack mates:
core sums some reductions (the loss, one-wide layer products) over views of the whole
population, in an order that depends on the population's size and layout. `sweeps.verification`
reports that as "within 1e-9" (card sweep, all 480: 167 bit-identical, the rest within 8e-13).
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import core
from sweeps.config import SECTIONS, SETTING_PATHS, Settings, flatten
from sweeps.data import DataProblem, Dataset, load_dataset
from sweeps.plan import Pack
from sweeps.space import Variant, make_variants
from sweeps.training import VariantResult, build_network, fit_pack


class RetrainError(ValueError):
    """Logged params that cannot be turned back into a variant (missing, invalid, no data)."""


@dataclass(frozen=True)
class Retrained:
    """One variant trained again from its params.

    variant : rebuilt from the params (its key recomputed); dataset : rebuilt from ``data.*``.
    mlp, params : the network and its final parameters, a population of K = 1
        (``params.W[l]`` shape (1, sizes[l], sizes[l+1])).
    result : what `train_pack` returns for it (metrics, predictions (n_test, n_out), curves).
    logged_key : the run's ``sweep.variant_key`` tag, if given.
    """

    variant: Variant
    dataset: Dataset
    mlp: core.MLP
    params: core.Params
    result: VariantResult
    logged_key: str | None = None

    @property
    def key_matches(self) -> bool:
        """The decoded params and rebuilt data hash to the logged key (True if none logged)."""
        return self.logged_key is None or self.logged_key == self.variant.key


def _is_text(annotation: Any) -> bool:
    """Whether a setting's values are strings (logged as is, not as JSON)."""
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in args)
    if origin is typing.Annotated:
        return _is_text(args[0])
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return len(rest) == 1 and _is_text(rest[0])
    return False


def _text_paths() -> frozenset[str]:
    out = set()
    for path in SETTING_PATHS:
        section, _, name = path.partition(".")
        if name and _is_text(SECTIONS[section].model_fields[name].annotation):
            out.add(path)
    return frozenset(out)


TEXT_SETTINGS = _text_paths()


def _decode(path: str, text: str) -> Any:
    if path in TEXT_SETTINGS:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        raise RetrainError(f"{path}: logged value {text!r} is not a valid value") from None
    return _tuples(value)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def settings_from_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Every resolved setting (dotted path -> value) from a child run's params.

    Values are checked by the sweep file's schema (`sweeps.config.Settings`); raises
    RetrainError naming the setting that is missing or invalid.
    """
    missing = [p for p in SETTING_PATHS if p not in params]
    if missing:
        raise RetrainError(f"the run has no param for {', '.join(missing)}; it was not logged "
                           "by `sweeps run` (or by an older version)")
    nested: dict[str, Any] = {}
    for path in SETTING_PATHS:
        section, _, name = path.partition(".")
        value = _decode(path, params[path])
        if name:
            nested.setdefault(section, {})[name] = value
        else:
            nested[section] = value
    try:
        settings = Settings.model_validate(nested)
    except Exception as error:  # pydantic's ValidationError: name the settings
        raise RetrainError(f"logged params do not form valid settings: {error}") from None
    return flatten(settings)


def rebuild_dataset(settings: Mapping[str, Any], base_dir: Path = Path(".")) -> Dataset:
    """The variant's data set from its ``data.*`` settings; a CSV path is relative to base_dir."""
    try:
        return load_dataset(
            settings["data.source"], base_dir=Path(base_dir), target=settings["data.target"],
            test_fraction=settings["data.test_fraction"], scale=settings["data.scale"],
            target_scale=settings["data.target_scale"], task=settings["data.task"],
            data_seed=settings["data_seed"])
    except DataProblem as problem:
        raise RetrainError(f"cannot rebuild the data set: {problem}") from None


def rebuild_variant(params: Mapping[str, str], base_dir: Path = Path("."),
                    name: str = "variant") -> tuple[Variant, Dataset]:
    """The Variant (key recomputed) and its Dataset, from a child run's params alone."""
    settings = settings_from_params(params)
    dataset = rebuild_dataset(settings, base_dir)
    resolved = {**settings, **dataset.resolved}
    (variant,) = make_variants([resolved], [dataset.fingerprint], (), name)
    return variant, dataset


def retrain(params: Mapping[str, str], *, base_dir: Path = Path("."), name: str = "variant",
            logged_key: str | None = None) -> Retrained:
    """Train a variant again from its logged params, exactly as `sweeps run` trains a pack.

    params : the child run's params (dotted path -> logged string).
    base_dir : where a CSV ``data.source`` is relative to (the sweep file's directory).
    logged_key : the run's ``sweep.variant_key``, to check the params against.
    """
    variant, dataset = rebuild_variant(params, base_dir, name)
    pack = Pack(index=0, variants=(variant,), data_key=dataset.fingerprint)
    mlp, _, _ = build_network(pack, dataset)
    trained, (result,) = fit_pack(pack, dataset)
    return Retrained(variant=variant, dataset=dataset, mlp=mlp, params=trained, result=result,
                     logged_key=logged_key)
