"""Re-train one variant from its logged settings alone: the code path `best` and `verify` share.

A child run's params hold every resolved setting under its dotted path; the tracking side
decodes them (`sweeps.tracking.readback.fetch_settings`), and `settings_from_logged` checks
them by the sweep file's own schema; the data set is
rebuilt from the ``data.*`` settings and ``data_seed``; the variant is trained as a pack of
one by `sweeps.execution.training.fit_pack`, the function every Ray task runs. No sweep file
is read.

The rule: the variant key is recomputed from the decoded settings and the rebuilt data, so a
param changed after the run (or a CSV file changed since) shows as a key that differs from
the logged ``sweep.variant_key``, even when the numbers happen to agree.

Reproduction is bit-for-bit whatever pack the variant trained in: core computes each
variant's numbers in an order independent of the pack's size, mates and the variant's place
(`core.network` states the rule; card sweep, all 480: bit-identical).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import core
from sweeps.spec.config import LATER_DEFAULTS, PACK_SHARED, SETTING_PATHS, Settings, flatten
from sweeps.spec.data import DataProblem, Dataset
from sweeps.records import Pack, Variant
from sweeps.spec.search import make_variants
from sweeps.spec.sweep import load_data
from sweeps.execution.training import VariantResult, build_network, fit_pack


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


def settings_from_logged(logged: Mapping[str, Any]) -> dict[str, Any]:
    """Every resolved setting (dotted path -> value) from a child run's decoded params.

    Values are checked by the sweep file's schema (`sweeps.spec.config.Settings`); raises
    RetrainError naming the setting that is missing or invalid. A setting added after the run
    was logged (`config.LATER_DEFAULTS`) takes its default, which is what the run trained with.
    """
    missing = [p for p in SETTING_PATHS if p not in logged and p not in LATER_DEFAULTS]
    if missing:
        raise RetrainError(f"the run has no param for {', '.join(missing)}; it was not logged "
                           "by `sweeps run` (or by an older version)")
    nested: dict[str, Any] = {}
    for path in SETTING_PATHS:
        if path not in logged:          # added later: the schema's default
            continue
        section, _, name = path.partition(".")
        value = logged[path]
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
    """The variant's data set from its data settings; a CSV path is relative to base_dir."""
    try:
        return load_data(settings, Path(base_dir))
    except DataProblem as problem:
        raise RetrainError(f"cannot rebuild the data set: {problem}") from None


def rebuild_variant(logged: Mapping[str, Any], base_dir: Path = Path("."),
                    name: str = "variant") -> tuple[Variant, Dataset]:
    """The Variant (key recomputed) and its Dataset, from a child run's settings alone."""
    settings = settings_from_logged(logged)
    dataset = rebuild_dataset(settings, base_dir)
    resolved = {**settings, **dataset.resolved}
    (variant,) = make_variants([resolved], [dataset.fingerprint], (), name)
    return variant, dataset


def retrain(logged: Mapping[str, Any], *, base_dir: Path = Path("."), name: str = "variant",
            logged_key: str | None = None, epochs: int | None = None) -> Retrained:
    """Train a variant again from its logged settings, exactly as `sweeps run` trains a pack.

    logged : the child run's settings (dotted path -> value; `readback.fetch_settings`).
    base_dir : where a CSV ``data.source`` is relative to (the sweep file's directory).
    logged_key : the run's ``sweep.variant_key``, to check the params against.
    epochs : train to this epoch instead of ``train.epochs`` (a variant successive halving
        stopped: its ``sweep.stopped_epoch``; continuing across rungs is exact, so one
        straight run to it gives the same numbers).
    """
    variant, dataset = rebuild_variant(logged, base_dir, name)
    pack = Pack(index=0, variants=(variant,), data_key=dataset.fingerprint,
                shared_paths=PACK_SHARED, stops=(int(epochs),) if epochs else ())
    mlp = build_network(pack, dataset)
    trained, (result,) = fit_pack(pack, dataset)
    return Retrained(variant=variant, dataset=dataset, mlp=mlp, params=trained, result=result,
                     logged_key=logged_key)
