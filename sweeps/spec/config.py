"""The sweep file schema: YAML text -> a validated `SweepConfig`, or every problem at once.

A sweep file names a data set, a network, how to train it, and (under `search`) which settings
to vary. This module holds the schema and the rules that belong to the settings themselves:

- `sweeps.spec.problems.parse_yaml` reads the text safely and remembers the line of every key, so
  each problem can point at its line; duplicate keys are problems too.
- the pydantic models below (`extra="forbid"`, strict types) hold the schema, its defaults and
  ranges; allowed names come from the core registries. Each setting carries its role (`Role`),
  and every table the other modules need is derived from those roles.
- `ADDED_LATER` lists the settings that did not exist when sweeps were first logged: at their
  defaults they are left out of the config hash and the variant keys, so old files keep theirs.
- `check_value` validates one value with its setting's own rules (what `search.parameters` and
  distributions are checked with); `unused_constants` finds optimizer constants no optimizer in
  the sweep reads.
- `check_variant` holds the rules that need a resolved variant and its data set (output layer
  against loss, a classification loss on a regression target, batch size against the training
  rows, ...). `sweeps.spec.sweep.load_sweep` runs them after the data is loaded.

What each search method accepts and means lives with the method (`sweeps.spec.search`); the
search section here is only its fields. Problems are collected as
`sweeps.spec.problems.Problem(loc, message)` and reported as lines
"<file>: <key.path>: <message> (line N)" in a `ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping, Optional, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticUndefined

import core
from sweeps.spec.problems import Problem, loc_text, show, suggest


# ---------------------------------------------------------------------------------------------
# Setting roles: how a setting may vary inside a pack (one Ray task = one core population)


@dataclass(frozen=True)
class Role:
    """Metadata every setting of the schema carries, exactly one of:

    DATA    : picks, splits or scales the data set; equal inside a pack (one data set per task).
    PACK    : shapes the population's arrays or loop (layers, loss, optimizer kind, epochs);
              equal inside a pack.
    VARIANT : one value per variant inside a pack (learning rate, optimizer constants,
              initializer, seed).
    """

    name: str


DATA, PACK, VARIANT = Role("data"), Role("pack"), Role("variant")

# ---------------------------------------------------------------------------------------------
# Allowed names, from the core registries


def _one_of(kind: str, names):
    """An AfterValidator that accepts only `names()` and suggests the closest one otherwise."""

    def check(value: str) -> str:
        allowed = tuple(names())
        if value not in allowed:
            raise ValueError(
                f"unknown {kind} {value!r}{suggest(value, allowed)} (one of: {', '.join(allowed)})"
            )
        return value

    return AfterValidator(check)


HiddenActivation = Annotated[str, _one_of("activation", lambda: sorted(core.HIDDEN_ACTIVATIONS))]
OutputActivation = Annotated[str, _one_of("output activation", lambda: core.ACTIVATIONS)]
LossName = Annotated[str, _one_of("loss", lambda: core.LOSSES)]
InitName = Annotated[str, _one_of("initializer", lambda: core.INITIALIZERS)]
OptimizerName = Annotated[str, _one_of("optimizer", lambda: core.OPTIMIZERS)]


def _hidden(value: Any) -> tuple[int, ...]:
    """hidden: an int (one layer) or a non-empty list of ints, each >= 1."""
    layers = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(layers, (list, tuple))
        or not layers
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in layers)
    ):
        raise ValueError(
            f"expected a layer size >= 1 or a non-empty list of them (e.g. 4 or [8, 8]), "
            f"got {show(value)}"
        )
    return tuple(layers)


def _target(value: Any) -> Optional[tuple[str, ...]]:
    """target: a column name or a non-empty list of distinct column names."""
    if value is None:
        return None
    columns = [value] if isinstance(value, str) else value
    if (
        not isinstance(columns, (list, tuple))
        or not columns
        or any(not isinstance(c, str) or not c for c in columns)
    ):
        raise ValueError(f"expected a column name or a list of column names, got {show(value)}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"a column is named twice in {show(value)}")
    return tuple(columns)


def _brackets(value: Any) -> Union[str, int]:
    """brackets: auto, or a whole number >= 1 (one message for both, not one per union member)."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"expected auto or a number of brackets >= 1, got {show(value)}")


Hidden = Annotated[tuple[int, ...], BeforeValidator(_hidden)]
Target = Annotated[Optional[tuple[str, ...]], BeforeValidator(_target)]
Brackets = Annotated[Union[Literal["auto"], int], BeforeValidator(_brackets)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
OpenFraction = Annotated[float, Field(gt=0, lt=1)]
PositiveInt = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


# ---------------------------------------------------------------------------------------------
# The schema


class _Strict(BaseModel):
    # Strict: "0.1" is not a number, 2.0 is not an int, "yes" is not a bool (YAML's yes is).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class DataConfig(_Strict):
    """Which data set, how it is split and scaled. None means the data set's own default."""

    source: Annotated[str, Field(min_length=1), DATA] = "article"
    target: Annotated[Target, DATA] = None
    test_fraction: Annotated[Optional[Fraction], DATA] = None
    # A fraction of the training rows held out for validation (val_* metrics); None: none.
    validation: Annotated[Optional[OpenFraction], DATA] = None
    scale: Annotated[Optional[Literal["none", "standard", "minmax"]], DATA] = None
    target_scale: Annotated[Literal["none", "standard", "minmax"], DATA] = "none"
    task: Annotated[Optional[Literal["regression", "classification"]], DATA] = None


class ModelConfig(_Strict):
    hidden: Annotated[Hidden, PACK] = (4,)
    activation: Annotated[HiddenActivation, PACK] = "sigmoid"
    output_activation: Annotated[OutputActivation, PACK] = "sigmoid"
    bias: Annotated[bool, PACK] = False
    init: Annotated[InitName, VARIANT] = "uniform01"


class TrainConfig(_Strict):
    loss: Annotated[LossName, PACK] = "half_sse"
    optimizer: Annotated[OptimizerName, PACK] = "sgd"
    lr: Annotated[PositiveFloat, VARIANT] = 0.1
    momentum: Annotated[Fraction, VARIANT] = 0.9
    nesterov: Annotated[bool, PACK] = False      # picks the update formula
    beta1: Annotated[Fraction, VARIANT] = 0.9
    beta2: Annotated[Fraction, VARIANT] = 0.999
    eps: Annotated[PositiveFloat, VARIANT] = 1e-8
    weight_decay: Annotated[float, Field(ge=0), VARIANT] = 0.0
    epochs: Annotated[PositiveInt, PACK] = 10000
    batch_size: Annotated[Optional[PositiveInt], PACK] = None
    log_every: Annotated[PositiveInt, PACK] = 100
    dtype: Annotated[Literal["float64", "float32"], PACK] = "float64"


class Settings(_Strict):
    """Everything a single variant needs (the file without `search`)."""

    name: Optional[Annotated[str, Field(min_length=1)]] = None
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    seed: Annotated[Seed, VARIANT] = 42
    data_seed: Annotated[Seed, DATA] = 0       # the split and the mini-batch order


class Distribution(_Strict):
    """A random-search range: log_uniform and uniform draw floats, int_uniform whole numbers
    (both ends included)."""

    distribution: Literal["log_uniform", "uniform", "int_uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _range(self) -> "Distribution":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.distribution == "log_uniform" and self.low <= 0:
            raise ValueError(f"log_uniform needs low > 0, got {self.low:g}")
        if self.distribution == "int_uniform" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ValueError("int_uniform needs whole numbers for low and high")
        return self


def _one_or_list(allowed: Any, what: str):
    """A before-validator for a value that is one `what` or a list of them: one error message
    for a wrong value (a union would report each of its branches)."""
    def ok(value: Any) -> bool:
        return isinstance(value, allowed) if isinstance(allowed, type) else value in allowed

    def check(value: Any) -> Any:
        if value is None or ok(value) or (isinstance(value, list) and all(map(ok, value))):
            return value
        raise ValueError(f"Input should be {what}, or a list of them")
    return check


class SearchConfig(_Strict):
    """The search section's fields. What they mean, which method reads which, and the rules
    across them are the methods' own: `sweeps.spec.search` (`SEARCH_METHODS`, `check_search`)."""

    method: str = "grid"                    # a key of sweeps.spec.search.SEARCH_METHODS
    # dotted setting path -> list of values, or a Distribution (random sampling); checked by
    # sweeps.spec.parameters.check_parameters, which replaces the raw values by validated ones.
    parameters: dict[str, Any] = Field(default_factory=dict)
    samples: Optional[PositiveInt] = None
    random_seed: Optional[Seed] = None
    # method: halving (`sweeps.methods.halving.Halving`); ADDED_LATER: defaults stay out of hashes
    sampler: str = "grid"
    min_epochs: Optional[PositiveInt] = None
    eta: Annotated[int, Field(ge=2)] = 3
    # one metric, or a list of them (a Pareto front); mode likewise, one per metric
    metric: Annotated[Union[str, list[str]], BeforeValidator(_one_or_list(str, "a metric name"))] \
        = "val_loss"
    mode: Annotated[Optional[Union[Literal["min", "max"], list[Literal["min", "max"]]]],
                    BeforeValidator(_one_or_list(("min", "max"), "'min' or 'max'"))] = None
    brackets: Brackets = "auto"
    ranking: Literal["both", "value", "trend"] = "both"   # what each bracket ranks on
    # method: tpe and gp (sweeps.methods.model_based); ADDED_LATER
    trials: Optional[PositiveInt] = None        # configurations to train
    batch: Optional[PositiveInt] = None         # configurations per round (None: 8)


class SweepConfig(Settings):
    """A whole sweep file."""

    search: Optional[SearchConfig] = None


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> pydantic FieldInfo of every setting below `model` (sections expanded)."""
    out = {}
    for name, info in model.model_fields.items():
        if name == "name" and model is Settings:
            continue  # the sweep's name, not a setting of a variant
        section = SECTIONS.get(name)
        out.update(_fields(section, f"{name}.") if section else {prefix + name: info})
    return out


def _role(path: str, info: Any) -> str:
    roles = [m.name for m in info.metadata if isinstance(m, Role)]
    if len(roles) != 1:
        raise TypeError(f"setting {path} declares {len(roles)} roles; it needs exactly one of "
                        f"DATA, PACK, VARIANT (sweeps.spec.config.Role)")
    return roles[0]


def _value_types(annotation: Any) -> set:
    """The plain types a setting's values take, None left out and Annotated, Optional and
    Literal unwrapped: {float}, {int}, {str}, {bool}, or {tuple} (hidden sizes, targets)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _value_types(args[0])
    if origin is Union:
        return set().union(*(_value_types(a) for a in args if a is not type(None)))
    if origin is Literal:
        return {type(a) for a in args}
    return {origin or annotation}


_FIELDS = _fields(Settings)
# Every setting a variant resolves, as a dotted path, in schema order.
SETTING_PATHS: tuple[str, ...] = tuple(_FIELDS)
# The role of each setting (see Role): the one table plan, sweep and training derive from.
SETTING_ROLES: dict[str, str] = {path: _role(path, info) for path, info in _FIELDS.items()}
DATA_SETTINGS = tuple(p for p, r in SETTING_ROLES.items() if r == DATA.name)
PACK_SHARED = tuple(p for p, r in SETTING_ROLES.items() if r in (DATA.name, PACK.name))
_TYPES = {path: _value_types(info.annotation) for path, info in _FIELDS.items()}
# Settings a random search may draw from a distribution, by number kind.
NUMBER_KINDS: dict[str, type] = {path: kind for path, types in _TYPES.items()
                                 if len(types) == 1 and (kind := next(iter(types))) in (int, float)}
NUMBER_KINDS["model.hidden"] = int      # a drawn size is one hidden layer of that size
# Settings whose values are text (logged as is; every other value is logged as JSON).
TEXT_SETTINGS = frozenset(path for path, types in _TYPES.items() if types == {str})
# Optimizer constants and the optimizers that read them (from core's optimizer table).
USED_BY: dict[str, tuple[str, ...]] = {
    f"train.{constant}": tuple(k for k, read in core.OPTIMIZERS.items() if constant in read)
    for constant in dict.fromkeys(c for read in core.OPTIMIZERS.values() for c in read)
}


def get_setting(settings: Settings, path: str) -> Any:
    """The value of a dotted setting path on a validated model."""
    value = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def coerce(path: str, value: Any) -> Any:
    """A value drawn from a distribution in the form the setting stores (hidden: a tuple)."""
    return _hidden(value) if path == "model.hidden" else value


def flatten(settings: Settings) -> dict[str, Any]:
    """Dotted path -> value for every setting (data defaults still None where unresolved)."""
    return {path: get_setting(settings, path) for path in SETTING_PATHS}


# ---------------------------------------------------------------------------------------------
# Settings added later: hashed only when set
#
# A sweep's parent run is found by its config hash and its finished children by their variant
# keys (sweeps.spec.sweep.config_hash, sweeps.spec.search.variant_key), both hashes of every
# field. A field added to the schema would change both for every existing file, and resuming
# its MLflow store would start over. So each field added after sweeps were first logged is
# listed here, and at its schema default it is left out of both hashes; set to anything else,
# it is hashed like any other. Rule for a new entry: its default must mean exactly what files
# without it meant before it existed (no validation split, no halving), now and later.
# tests/sweeps/spec/test_search.py compares the hashes of shipped files with main's at 4974a0e.

ADDED_LATER: tuple[str, ...] = (
    "data.validation",
    "search.sampler", "search.min_epochs", "search.eta", "search.metric", "search.mode",
    "search.brackets", "search.ranking", "search.trials", "search.batch",
)


def _default_at(path: str) -> Any:
    """The schema default of a dotted field path of SweepConfig ("search.eta" -> 3)."""
    *sections, leaf = path.split(".")
    model: Any = {**SECTIONS, "search": SearchConfig}[sections[0]] if sections else SweepConfig
    default = model.model_fields[leaf].default
    if default is PydanticUndefined:
        raise TypeError(f"{path} in ADDED_LATER has no default to leave out")
    return default


# Dotted path -> the default at which it is left out of the hashes.
LATER_DEFAULTS: dict[str, Any] = {path: _default_at(path) for path in ADDED_LATER}


def _at_default(path: str, value: Any) -> bool:
    return path in LATER_DEFAULTS and value == LATER_DEFAULTS[path] \
        and type(value) is type(LATER_DEFAULTS[path])


def hashed_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted path -> value, less the ADDED_LATER settings at their defaults (variant keys)."""
    return {path: value for path, value in settings.items() if not _at_default(path, value)}


def hashed_config(config: "SweepConfig") -> dict[str, Any]:
    """`config.model_dump(mode="json")` less the ADDED_LATER fields at their defaults."""
    dump = config.model_dump(mode="json")
    for path in ADDED_LATER:
        *sections, leaf = path.split(".")
        node = dump
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and _at_default(path, node[leaf]):
            del node[leaf]
    return dump


def _fields_at(model: type[BaseModel], loc: tuple) -> Optional[list[str]]:
    """The keys allowed in the mapping at `loc` (a path below `model`), if it is a model."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        candidates = getattr(annotation, "__args__", ()) + (annotation,)  # Optional[X] too
        model = next((a for a in candidates
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return list(model.model_fields)


def pydantic_problems(error: ValidationError, model: type[BaseModel],
                      prefix: tuple = ()) -> list[Problem]:
    """Translate pydantic's errors into Problems with readable messages."""
    problems = []
    for err in error.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if p != "[key]")
        kind, given = err["type"], err.get("input")
        if kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1]) or []
            key = loc[-1]
            hint = suggest(key, allowed)
            if not hint:  # a setting written in the wrong section: lr at the top level
                near = [p for p in SETTING_PATHS if p.split(".")[-1] == key]
                hint = f"; did you mean {near[0]!r}?" if near else ""
            message = f"unknown key{hint} (allowed here: {', '.join(allowed)})"
        elif kind == "missing":
            message = "required"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = f"expected a mapping of keys, got {show(given)}"
        elif kind == "value_error":
            message = str(err["ctx"]["error"])
        else:
            message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {show(given)}"
        problems.append(Problem(prefix + loc, message))
    return problems


# ---------------------------------------------------------------------------------------------
# Values of one setting (search.parameters), constants nothing reads


def _nested(path: str, value: Any) -> dict:
    """"train.lr", 0.1 -> {"train": {"lr": 0.1}}."""
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def check_value(path: str, value: Any) -> tuple[Any, list[tuple[tuple, str]]]:
    """Validate one value for a setting with the setting's own rules.

    Returns (normalized value, [(loc below the setting, message), ...]).
    """
    try:
        settings = Settings.model_validate(_nested(path, value))
    except ValidationError as error:
        depth = len(path.split("."))
        found = [
            (p.loc[depth:], p.message)
            for p in pydantic_problems(error, Settings)
            if loc_text(p.loc[:depth]) == path
        ]
        return None, found or [((), "invalid value")]
    return get_setting(settings, path), []


def unused_constants(config: SweepConfig) -> list[Problem]:
    """An optimizer constant set or swept, while no optimizer in the sweep reads it."""
    parameters = config.search.parameters if config.search else {}
    optimizers = set(parameters.get("train.optimizer", [config.train.optimizer]))
    problems = []
    for path, readers in USED_BY.items():
        field = path.split(".")[1]
        if optimizers & set(readers):
            continue
        if path in parameters:
            loc = ("search", "parameters", path)
        elif field in config.train.model_fields_set:
            loc = ("train", field)
        else:
            continue
        used = " or ".join(readers)
        problems.append(Problem(loc, f"has no effect: only optimizer {used} reads it, and this "
                                     f"sweep uses {', '.join(sorted(optimizers))}"))
    return problems


# ---------------------------------------------------------------------------------------------
# Rules that need a resolved variant and its data set


def check_variant(settings: dict[str, Any], dataset) -> list[tuple[tuple[str, ...], str]]:
    """Problems of one resolved variant on its data set: [(setting paths to blame, message)].

    The first blamed path that the search sweeps is reported (at its value under
    search.parameters), else the first path; see sweeps.spec.sweep.
    """
    problems: list[tuple[tuple[str, ...], str]] = []
    out, loss = settings["model.output_activation"], settings["train.loss"]
    pair = ("model.output_activation", "train.loss")
    try:
        core.check_output_loss(out, loss)
    except ValueError as error:
        problems.append((pair, str(error)))
    if dataset is None:
        return problems
    regression = dataset.task == "regression"
    data = ("data.source", "data.task")
    if regression and loss in core.CLASSIFICATION_LOSSES:
        problems.append((("train.loss",) + data, f"{loss} is a classification loss, but data set "
                         f"{dataset.name!r} has a regression target (data.task: regression)"))
    if regression and out == "softmax":
        problems.append((("model.output_activation",) + data, "softmax needs a classification "
                         f"target, but data set {dataset.name!r} is regression"))
    bounds = core.ACTIVATIONS[out].output_range if out in core.ACTIVATIONS else None
    if regression and bounds is not None and dataset.Y_train.size:
        low, high = float(dataset.Y_train.min()), float(dataset.Y_train.max())
        a, b = bounds
        if low < a or high > b:
            problems.append((
                ("model.output_activation", "data.source", "data.target_scale"),
                f"{out} outputs lie in [{a:g}, {b:g}] but the training targets of {dataset.name!r} "
                f"range from {low:.4g} to {high:.4g}; use identity, or data.target_scale: minmax",
            ))
    batch = settings["train.batch_size"]
    n_train = dataset.X_train.shape[0]
    if batch is not None and batch > n_train:
        problems.append((("train.batch_size",) + data, f"{batch} is larger than the {n_train} "
                         f"training rows of {dataset.name!r}"))
    return problems
