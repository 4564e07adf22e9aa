"""Problems in a sweep file: what is wrong, and where (key path and line).

`parse_yaml` reads the text with a safe loader (no tags, no code) and remembers the line of
every key, so each problem can point at its line; duplicate keys are problems too. Problems
are collected as `Problem(loc, message)` and turned into lines
"<file>: <key.path>: <message> (line N)" by `format_problems`; `ConfigError.problems` holds them.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from dataclasses import dataclass
from typing import Any

import yaml


class ConfigError(Exception):
    """A sweep file that cannot be used. `problems`: one line each, "<file>: <key.path>: <what>"."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Problem:
    """One problem at a location in the file: loc is a key path such as ("train", "lr")."""

    loc: tuple
    message: str


def suggest(word: object, choices, *, cutoff: float = 0.6) -> str:
    """"; did you mean 'x'?" for the closest choice, or "" when none is close."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=cutoff)
    return f"; did you mean {match[0]!r}?" if match else ""


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring = 2, 4, 3, 40


def show(value: object, limit: int = 40) -> str:
    """A short repr of a value from the file, for messages (bounded, even for huge values)."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads 1e-3 as a float (YAML 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> tuple[Any, dict[tuple, int], list[Problem]]:
    """Parse YAML safely: (data, line of every key path, problems).

    A syntax error is a problem located at ("line L, column C",), and data is None; duplicate
    keys are problems too, but the data (last value wins) is still returned for checking.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple, int] = {}
        problems: list[Problem] = []
        if node is not None:
            _walk(node, (), lines, problems, set())
        data = loader.construct_document(node) if node is not None else None
        return data, lines, problems
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "yaml"
        what = " ".join(str(p) for p in (error.context, error.problem) if p)
        return None, {}, [Problem((where,), f"invalid YAML: {what}")]
    except yaml.YAMLError as error:
        return None, {}, [Problem(("yaml",), f"invalid YAML: {error}")]
    finally:
        loader.dispose()


def _walk(node: yaml.Node, loc: tuple, lines: dict, problems: list[Problem], done: set) -> None:
    """Record the line of each key / list item; report duplicate keys. An aliased node is
    walked once (nested aliases would otherwise take exponential time)."""
    if id(node) in done:
        return
    done.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                problems.append(Problem(loc + (key,), f"duplicate key (first at line {seen[key]})"))
            seen.setdefault(key, line)
            lines.setdefault(loc + (key,), line)
            _walk(value_node, loc + (key,), lines, problems, done)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault(loc + (i,), item.start_mark.line + 1)
            _walk(item, loc + (i,), lines, problems, done)


# ---------------------------------------------------------------------------------------------
# Problems -> lines


def loc_text(loc: tuple) -> str:
    """("search", "parameters", "train.lr", 2) -> "search.parameters.train.lr[2]"."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(file)"


def format_problems(file: str, problems: list[Problem], lines: dict[tuple, int]) -> list[str]:
    """One line per problem, each once, ordered by line in the file (stable)."""
    located = []
    for problem in problems:
        line = None
        for n in range(len(problem.loc), 0, -1):  # the deepest part of the path that has a line
            key = tuple(str(p) if not isinstance(p, int) else p for p in problem.loc[:n])
            if key in lines:
                line = lines[key]
                break
        text = f"{file}: {loc_text(problem.loc)}: {problem.message}"
        if line is not None:
            text += f" (line {line})"
        located.append((line if line is not None else 0, text))
    out: list[str] = []
    for _, text in sorted(located, key=lambda item: item[0]):
        if text not in out:
            out.append(text)
    return out
