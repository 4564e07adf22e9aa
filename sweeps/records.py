"""Plain records that travel from the sweep file to the Ray workers: `Variant`, `Pack`, their
read-only `FrozenSettings`, the one rule that turns a setting's value into text, and the
executor names.

Standard library only, so a Ray worker unpickling a pack loads no pydantic, YAML or pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

# How packs run: "ray" (one Ray task per pack) or "serial" (the same packs in this process).
Executor = Literal["ray", "serial"]


class FrozenSettings(dict):
    """A read-only dict: JSON-serializable, picklable and hashable (values are hashable)."""

    def _read_only(self, *args, **kwargs):
        raise TypeError("variant settings are read-only; copy with dict(settings)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def __reduce__(self):
        return (FrozenSettings, (dict(self),))


@dataclass(frozen=True)
class Variant:
    """One fully resolved network + training run of a sweep.

    settings : every setting as a flat dotted path -> plain JSON value (model.hidden a tuple).
    key : hash of settings + data fingerprint, 16 hex chars.
    group : the same hash of `without_seed(settings)`.
    name : readable, from the swept values: "lr=0.1 hidden=4 init=xavier_normal seed=3".
    data_key : fingerprint of its data set (key into Sweep.datasets).
    """

    index: int
    settings: Mapping[str, Any]
    key: str
    group: str
    name: str
    data_key: str

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True)
class Pack:
    """Variants trained together as one core population, on one data set.

    shared_paths : the settings every variant of the pack has equal (the data and pack roles
        of `sweeps.spec.config.SETTING_ROLES`); every other setting may differ per variant.
    start : where the variants' training stands (a ``core.TrainState``, one row per variant,
        in order), or None to start from their initializers. Successive halving sends a
        rung's survivors on with it.
    stops : the epochs to stop at and measure, ascending; training ends at the last one
        (empty: the variants' ``train.epochs``). Successive halving ranks at these rungs.
    keep_state : hand back each variant's state, so a later pack can continue it.
    record : metrics recorded beyond the usual ones ("n_params": the network's parameter
        count, when a search minimizes it).
    """

    index: int
    variants: tuple[Variant, ...]
    data_key: str
    shared_paths: tuple[str, ...]
    start: Any = None
    stops: tuple[int, ...] = ()
    keep_state: bool = False
    record: tuple[str, ...] = ()

    @property
    def shared(self) -> dict[str, Any]:
        """The settings every variant of the pack has in common, by dotted path."""
        settings = self.variants[0].settings
        return {path: settings[path] for path in self.shared_paths}


def without_seed(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that make a variant's group: all but its seed (`Variant.group` hashes
    them; variants that differ only by seed are one group)."""
    return {path: value for path, value in settings.items() if path != "seed"}


def format_value(value: Any) -> str:
    """A setting's value as short text, the same in run names, tables and plots.

    0.1, 1e-05, 8x8 (hidden sizes), true, none.
    """
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (tuple, list)):
        return "x".join(format_value(v) for v in value)
    if value is None:
        return "none"
    return str(value)
