"""A sweep file, loaded: validated config, data sets and variants (`load_sweep`).

The order of the checks: YAML (`problems.parse_yaml`), the schema (`config`), the search
section (`search.check_search`: the method's own rules), the data sets (`data`), then the
rules that need a resolved variant and its data (`config.check_variant`, and the method's
`check_dataset`). Nothing is written anywhere: a file either loads completely or raises
ConfigError with every problem found, one line each.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from sweeps.spec.config import (DATA_SETTINGS, LATER_DEFAULTS, SearchConfig, Settings, SweepConfig,
                                check_variant, flatten, hashed_config, pydantic_problems,
                                unused_constants)
from sweeps.spec.data import DataProblem, Dataset, load_dataset
from sweeps.spec.problems import ConfigError, Problem, format_problems, parse_yaml, show
from sweeps.records import Variant
from sweeps.spec.search import check_search, expand, group_name, make_variants, method_of


@dataclass(frozen=True, eq=False)
class Sweep:
    """A validated sweep: every variant resolved, every data set loaded."""

    path: Path
    text: str                           # the file as given
    config: SweepConfig                 # validated; name filled in (default: the file's stem)
    config_hash: str                    # hash of resolved config + data fingerprints
    datasets: Mapping[str, Dataset]     # by Variant.data_key
    variants: tuple[Variant, ...]       # deterministic order
    swept: tuple[str, ...]              # dotted paths the search varies, in file order
    data_keys: Mapping[tuple, str] = field(default_factory=dict)   # data_spec -> fingerprint
    # False when the method chooses the variants it trains while running (tpe, gp): then
    # `variants` are the corners of its space, which validate the file, and `variant_at`
    # makes the ones it trains.
    variants_fixed: bool = True

    @property
    def name(self) -> str:
        return self.config.name

    def variant_at(self, point: Mapping[str, Any], index: int) -> Variant:
        """A variant of this sweep at `point` ({dotted path: value} over the base settings),
        as a method that chooses or changes points while the sweep runs makes them. Its data
        settings must name a data set the sweep loaded (KeyError otherwise)."""
        settings = {**flatten(self.config), **point}
        data_key = self.data_keys[data_spec(settings)]
        resolved = {**settings, **self.datasets[data_key].resolved}
        variant = make_variants([resolved], [data_key], self.swept, self.config.name)[0]
        return replace(variant, index=index)

    @property
    def ranking_metric(self) -> Optional[str]:
        """The metric the file searched on, which the sweep's outputs and readers rank on by
        default (`SearchMethod.ranks_on`); None: the first of
        `sweeps.vocabulary.DEFAULT_RANKING` the sweep has (grid or random naming none)."""
        return method_of(self.config).ranks_on if self.config.search is not None else None

    def group_name(self, variant: Variant) -> str:
        """"lr=0.1 hidden=4": the name of the variant's group, its name without the seed."""
        return group_name(variant.settings, self.swept, self.config.name)


def config_hash(config: SweepConfig, fingerprints) -> str:
    """Hash of the validated config (comments and key order of sections aside) and its data.
    Settings added later are hashed only when set (`sweeps.spec.config.ADDED_LATER`)."""
    payload = {"config": hashed_config(config), "data": sorted(set(fingerprints))}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _locator(config: SweepConfig):
    """Where a problem with (paths, value) points: a swept value, or the setting itself."""
    parameters = config.search.parameters if config.search else {}

    def where(paths: tuple[str, ...], settings: Mapping[str, Any]) -> tuple:
        for path in paths:
            if path in parameters:
                values = parameters[path]
                if isinstance(values, list) and settings.get(path) in values:
                    return ("search", "parameters", path, values.index(settings[path]))
                return ("search", "parameters", path)
        return tuple(paths[0].split("."))

    return where


def data_spec(settings: Mapping[str, Any]) -> tuple:
    """The data-role settings of a variant, in schema order: equal specs share a data set."""
    return tuple(settings[path] for path in DATA_SETTINGS)


def load_data(settings: Mapping[str, Any], base_dir: Path) -> Dataset:
    """The data set a variant's data settings name; raises DataProblem naming the setting.

    Each of `DATA_SETTINGS` is `load_dataset`'s keyword of its last name (data.test_fraction:
    test_fraction); a setting added later that params logged before it lack is its default.
    """
    options = {path.rpartition(".")[2]:
               settings[path] if path in settings else LATER_DEFAULTS[path]
               for path in DATA_SETTINGS}
    return load_dataset(options.pop("source"), base_dir=base_dir, **options)


def validate_mapping(data: Any) -> tuple[Optional[SweepConfig], list[Problem]]:
    """Parsed YAML -> (SweepConfig or None, problems)."""
    if data is None:
        return None, [Problem((), "the file is empty; expected a mapping with data, model, train, ...")]
    if not isinstance(data, dict):
        return None, [Problem((), f"expected a mapping at the top of the file, got {show(data)}")]
    try:
        config = SweepConfig.model_validate(data)
    except ValidationError as error:
        problems = pydantic_problems(error, SweepConfig)
        # Still check the search paths and values when only other parts failed.
        search = data.get("search")
        if isinstance(search, dict) and not any(p.loc[:1] == ("search",) for p in problems):
            partial = SweepConfig(search=SearchConfig.model_validate(search))
            problems += check_search(partial, whole=False)[1]
        return None, problems
    config, problems = check_search(config)
    problems += unused_constants(config)
    return (None if problems else config), problems


def _data_problems_only(data: Any, base_dir: Path) -> list[Problem]:
    """For a file that failed validation: still report a data section that cannot load."""
    if not isinstance(data, dict):
        return []
    try:
        settings = Settings.model_validate(
            {k: data[k] for k in ("data", "data_seed") if k in data})
    except Exception:
        return []
    try:
        load_data(flatten(settings), base_dir)
    except DataProblem as problem:
        return [Problem(tuple(problem.path.split(".")), problem.message)]
    return []


def _read_sweep_file(path: Path) -> str:
    """The file's text; a ConfigError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: (file): no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: (file): is a directory, not a sweep file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: (file): cannot read: {error}"]) from None


def _load_datasets(points: list[dict[str, Any]], base_dir: Path, where
                   ) -> tuple[dict[tuple, Optional[Dataset]], list[Problem]]:
    """One data set per distinct data specification (None where it cannot be built), and
    the problems of those that cannot, blamed where the point sets them."""
    datasets_by_spec: dict[tuple, Optional[Dataset]] = {}
    problems: list[Problem] = []
    for point in points:
        spec = data_spec(point)
        if spec not in datasets_by_spec:
            try:
                datasets_by_spec[spec] = load_data(point, base_dir)
            except DataProblem as problem:
                datasets_by_spec[spec] = None
                problems.append(Problem(where((problem.path,), point), problem.message))
    return datasets_by_spec, problems


def _resolve(points: list[dict[str, Any]], datasets_by_spec: dict[tuple, Optional[Dataset]],
             where) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Each point with its data set's resolved settings, and the problems of the rules across
    settings and data (`check_variant`), checked once per distinct combination they read."""
    resolved: list[dict[str, Any]] = []
    problems: list[Problem] = []
    checked: set = set()
    for point in points:
        spec = data_spec(point)
        dataset = datasets_by_spec[spec]
        settings = {**point, **(dataset.resolved if dataset else {})}
        resolved.append(settings)
        combo = (spec, point["model.output_activation"], point["train.loss"], point["train.batch_size"])
        if combo in checked:
            continue
        checked.add(combo)
        for paths, message in check_variant(settings, dataset):
            problems.append(Problem(where(paths, settings), message))
    return resolved, problems


def _duplicates(variants) -> list[Problem]:
    """Variants that are the same once defaults are filled in (their keys equal)."""
    problems = []
    first: dict[str, int] = {}
    for variant in variants:
        if variant.key in first:
            problems.append(Problem(("search", "parameters"), (
                f"variants {first[variant.key]} and {variant.index} are the same once defaults "
                f"are filled in ({variant.name}); remove the duplicate value")))
        first.setdefault(variant.key, variant.index)
    return problems


def load_sweep(path: str | Path) -> Sweep:
    """Parse, validate, load the data sets and expand a sweep file; raises ConfigError.

    Nothing past a step runs while the step has problems, and every problem of a step is
    reported at once: the YAML and schema, then the data sets and the rules across settings
    and data, then variants that come out the same.
    """
    path = Path(path)
    file = str(path)
    text = _read_sweep_file(path)
    base_dir = path.resolve().parent

    data, lines, problems = parse_yaml(text)
    if data is None and problems:  # a syntax error: nothing more to check
        raise ConfigError(format_problems(file, problems, lines))
    config, more = validate_mapping(data)
    problems += more
    if config is None or problems:
        problems += _data_problems_only(data, base_dir)
        raise ConfigError(format_problems(file, problems, lines))
    config = config.model_copy(update={"name": config.name or path.stem})

    points, swept = expand(config)
    where = _locator(config)
    datasets_by_spec, problems = _load_datasets(points, base_dir, where)
    if config.search is not None:   # the search method's rules on each data set
        method = method_of(config)
        for dataset in datasets_by_spec.values():
            problems += method.check_dataset(dataset) if dataset is not None else []
    resolved, more = _resolve(points, datasets_by_spec, where)
    if problems + more:
        raise ConfigError(format_problems(file, problems + more, lines))

    data_keys = [datasets_by_spec[data_spec(p)].fingerprint for p in points]
    variants = make_variants(resolved, data_keys, swept, config.name)
    problems = _duplicates(variants)
    if problems:
        raise ConfigError(format_problems(file, problems, lines))

    datasets = {d.fingerprint: d for d in datasets_by_spec.values() if d is not None}
    return Sweep(
        path=path,
        text=text,
        config=config,
        config_hash=config_hash(config, datasets),
        datasets=datasets,
        variants=variants,
        swept=swept,
        data_keys={spec: d.fingerprint for spec, d in datasets_by_spec.items() if d is not None},
        variants_fixed=config.search is None or not method_of(config).chooses_while_running,
    )
