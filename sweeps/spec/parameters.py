"""`search.parameters`: every path names a setting, every value passes the setting's own rules.

The one check every search method shares. A path must name a setting (`config.SETTING_PATHS`;
the sweep name and whole sections cannot be swept); a list of values is checked value by value
with `config.check_value` (no duplicates, never empty); a mapping is a random range
(`config.Distribution`) over a numeric setting (`config.NUMBER_KINDS`), accepted only by a
method that draws at random. Which methods do is theirs to say
(`sweeps.methods.base.SearchMethod.refuse_distribution`).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import ValidationError

from sweeps.spec.config import (NUMBER_KINDS, SECTIONS, SETTING_PATHS, Distribution, check_value,
                                pydantic_problems)
from sweeps.spec.problems import Problem, show, suggest

BASE = ("search", "parameters")


def check_parameters(raw: Mapping[str, Any], refuse_distribution: Optional[str]
                     ) -> tuple[dict[str, Any], list[Problem]]:
    """Validated `search.parameters` (path -> list of normalized values, or a Distribution) and
    the problems found. `refuse_distribution`: None where ranges are allowed, else the message
    a range gets."""
    problems: list[Problem] = []
    parameters: dict[str, Any] = {}
    for path, values in raw.items():
        loc = BASE + (path,)
        if path not in SETTING_PATHS:
            problems.append(Problem(loc, _not_a_setting(path)))
        elif isinstance(values, list):
            good, found = _check_list(path, values, loc)
            problems += found
            if good is not None:
                parameters[path] = good
        elif isinstance(values, dict):
            if refuse_distribution is not None:
                problems.append(Problem(loc, refuse_distribution))
                continue
            dist, found = _check_distribution(path, values, loc)
            problems += found
            if dist is not None:
                parameters[path] = dist
        else:
            ranges = " or a distribution mapping" if refuse_distribution is None else ""
            problems.append(Problem(loc, f"expected a list of values{ranges}, got {show(values)} "
                                         "(a single value belongs in the setting itself)"))
    return parameters, problems


def _not_a_setting(path: str) -> str:
    if path == "name":
        return "the sweep name cannot be swept"
    if path in SECTIONS:
        example = next(iter(SECTIONS[path].model_fields))
        return f"names a section, not a setting (e.g. {path}.{example})"
    return f"names no setting{suggest(path, SETTING_PATHS)}"


def _check_list(path: str, values: list, loc: tuple) -> tuple[Optional[list], list[Problem]]:
    if not values:
        return None, [Problem(loc, "empty list of values")]
    problems: list[Problem] = []
    good: list = []
    for i, value in enumerate(values):
        normal, found = check_value(path, value)
        problems += [Problem(loc + (i,) + sub, message) for sub, message in found]
        if not found:
            if normal in good:
                problems.append(Problem(loc + (i,), f"duplicate value {show(value)}"))
            good.append(normal)
    return good, problems


def _check_distribution(path: str, values: dict, loc: tuple
                        ) -> tuple[Optional[Distribution], list[Problem]]:
    try:
        dist = Distribution.model_validate(values)
    except ValidationError as error:
        return None, pydantic_problems(error, Distribution, loc)
    if path not in NUMBER_KINDS:
        return None, [Problem(loc, f"a distribution needs a numeric setting; "
                                   f"{path} takes a list of choices")]
    if NUMBER_KINDS[path] is int and dist.distribution != "int_uniform":
        return None, [Problem(loc + ("distribution",), f"{path} takes whole numbers: use int_uniform")]
    if dist.distribution == "int_uniform":
        dist = dist.model_copy(update={"low": int(dist.low), "high": int(dist.high)})
    problems = []
    for end in ("low", "high"):
        _, found = check_value(path, getattr(dist, end))
        problems += [Problem(loc + (end,), message) for _, message in found]
    return dist, problems
