"""Data sets: built-in, generated, scikit-learn's bundled ones and CSV files.

`load_dataset` turns the `data:` settings of a sweep file (plus `data_seed`) into a `Dataset`:
arrays split into train and test (and, with `validation`, a validation part of the training
rows), features scaled with statistics of the training rows only, classification targets
one-hot encoded and kept as labels, and a fingerprint over it all. Everything is deterministic:
the same settings give the same arrays, bit for bit.

The validation split (`data.validation: f`, 0 < f < 1) takes ceil(f * n_train) of the rows
left for training after the test split, stratified by class like the test split, from a
random stream of `data_seed` of its own: adding a validation split leaves the test rows as
they were. The inputs (and regression targets) are then scaled with the statistics of the
rows that remain for training, and validation and test rows with the same statistics. A data
set without a validation split has exactly the arrays and fingerprint it had before the
setting existed.

Built-in sets and their defaults (any of them can be overridden in the file):

=============  ==============  =============  ========  ======================================
source         task            test_fraction  scale     what
=============  ==============  =============  ========  ======================================
article        regression      0 (own test)   none      the article's 3 rows; test [.2 .4 .6]
xor            classification  0 (test=train) none      the 4 points of XOR
sine           regression      0.2            standard  256 x in [-pi, pi], y = sin x + noise
moons          classification  0.2            standard  200 points, two interleaved half moons
iris, wine,    classification  0.2            standard  scikit-learn's bundled copies
breast_cancer,
digits
diabetes       regression      0.2            standard  scikit-learn's bundled copy
CSV file       inferred        0.2            standard  header row; target: last column default
=============  ==============  =============  ========  ======================================

With test_fraction 0 and no test set of its own, the test set is the training set (every row,
validation rows included).
scikit-learn's sets are read from the files it ships (no download), without importing it
(sklearn_sets.py: the import costs about 1 s).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from sweeps.spec.sklearn_sets import SETS as SKLEARN_SETS, sklearn_set

# Inferred classification for a numeric CSV target: whole numbers with at most this many values.
MAX_INFERRED_CLASSES = 10
MAX_CELL_PROBLEMS = 10


class DataProblem(Exception):
    """A data set that cannot be built; `path` is the setting to blame ("data.source", ...)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A split, scaled data set, ready for training. Arrays are read-only.

    X_train : ndarray, shape (n_train, n_in), float64
    Y_train : ndarray, shape (n_train, n_targets) regression, (n_train, n_classes) one-hot
    labels_train : ndarray, shape (n_train,), int class ids (classification) or None
    X_val, Y_val, labels_val : the same for the validation rows, shape (n_val, ...); all None
        without a validation split (labels_val also None for regression)
    target_names : regression target columns, or the class names (one per one-hot column)
    resolved : the data settings as used ('data.test_fraction', 'data.scale', 'data.task', ...)
    input_shift, input_spread : ndarray, shape (n_in,), the input scaling fitted on the training
        split: X = (raw - input_shift) / input_spread (zeros and ones for scale none)
    """

    name: str
    task: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    labels_train: Optional[np.ndarray]
    labels_test: Optional[np.ndarray]
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    fingerprint: str
    resolved: Mapping[str, Any] = field(default_factory=dict)
    input_shift: Optional[np.ndarray] = None
    input_spread: Optional[np.ndarray] = None
    X_val: Optional[np.ndarray] = None
    Y_val: Optional[np.ndarray] = None
    labels_val: Optional[np.ndarray] = None

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.target_names) if self.task == "classification" else 0

    def targets(self, output_activation: str) -> tuple[np.ndarray, np.ndarray]:
        """(Y_train, Y_test) as the output layer needs them.

        One-hot for softmax (and for sigmoid with more than two classes), a single 0/1 column
        for a two-class problem with any other output, as is for regression.
        """
        return (self._shaped(self.Y_train, self.labels_train, output_activation),
                self._shaped(self.Y_test, self.labels_test, output_activation))

    def val_targets(self, output_activation: str) -> Optional[np.ndarray]:
        """Y_val as the output layer needs it (see `targets`); None without a validation split."""
        if self.X_val is None:
            return None
        return self._shaped(self.Y_val, self.labels_val, output_activation)

    def _shaped(self, Y: np.ndarray, labels: Optional[np.ndarray], output_activation: str) -> np.ndarray:
        if self.task == "classification" and output_activation != "softmax" and self.n_classes == 2:
            return labels[:, None].astype(np.float64)
        return Y

    def n_outputs(self, output_activation: str) -> int:
        """Width of the output layer for this output activation."""
        return self.targets(output_activation)[0].shape[1]

    def describe(self) -> str:
        """One line: name, rows (train / val / test), shapes, task."""
        kind = (f"classification, {self.n_classes} classes" if self.task == "classification"
                else "regression")
        val = f" / {self.X_val.shape[0]} val" if self.X_val is not None else ""
        return (f"{self.name}: {self.X_train.shape[0]} train{val} / {self.X_test.shape[0]} test "
                f"rows, {self.X_train.shape[1]} inputs, {kind}")


@dataclass
class _Raw:
    """A data set before splitting: features, and targets as floats or class labels."""

    X: np.ndarray                       # (n, n_in) float64
    T: np.ndarray                       # (n, n_targets) float64, or (n,) labels (int or str)
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]       # target columns
    task: str                           # the set's own (or, for a CSV, inferred) task
    class_names: Optional[tuple[str, ...]] = None  # for int labels of built-in sets
    X_test: Optional[np.ndarray] = None  # a test set of its own (article; regression only)
    T_test: Optional[np.ndarray] = None
    test_fraction: float = 0.2
    scale: str = "standard"


def _rng(data_seed: int, stream: int) -> np.random.Generator:
    """Independent streams from one data_seed: 0 generates, 1 splits off the test rows, 2 the
    validation rows."""
    return np.random.default_rng(np.random.SeedSequence([data_seed, stream]))


# ---------------------------------------------------------------------------------------------
# Built-in sets


def _article(data_seed: int) -> _Raw:
    """The seed article's data: each target is the mean of its inputs."""
    X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    Y = np.array([[0.2], [0.5], [0.8]])
    return _Raw(X, Y, ("x1", "x2", "x3"), ("y",), "regression",
                X_test=np.array([[0.2, 0.4, 0.6]]), T_test=np.array([[0.4]]),
                test_fraction=0.0, scale="none")


def _xor(data_seed: int) -> _Raw:
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return _Raw(X, np.array([0, 1, 1, 0]), ("x1", "x2"), ("xor",), "classification",
                class_names=("0", "1"), test_fraction=0.0, scale="none")


def _sine(data_seed: int, n: int = 256) -> _Raw:
    rng = _rng(data_seed, 0)
    x = rng.uniform(-np.pi, np.pi, size=n)
    y = np.sin(x) + rng.normal(0.0, 0.05, size=n)
    return _Raw(x[:, None], y[:, None], ("x",), ("y",), "regression")


def _moons(data_seed: int, n: int = 200, noise: float = 0.2) -> _Raw:
    """Two interleaved half circles (as scikit-learn's make_moons draws them) plus noise."""
    rng = _rng(data_seed, 0)
    n_outer = n // 2
    t_outer = np.linspace(0.0, np.pi, n_outer)
    t_inner = np.linspace(0.0, np.pi, n - n_outer)
    X = np.concatenate([
        np.stack([np.cos(t_outer), np.sin(t_outer)], axis=1),
        np.stack([1.0 - np.cos(t_inner), 0.5 - np.sin(t_inner)], axis=1),
    ])
    labels = np.concatenate([np.zeros(n_outer, int), np.ones(n - n_outer, int)])
    X = X + rng.normal(0.0, noise, size=X.shape)
    order = rng.permutation(n)
    return _Raw(X[order], labels[order], ("x1", "x2"), ("moon",), "classification",
                class_names=("0", "1"))


# Read once per process; the arrays are shared, so _sklearn copies what it changes.
_sklearn_arrays = functools.lru_cache(maxsize=None)(sklearn_set)


def _sklearn(name: str, data_seed: int) -> _Raw:
    X, target, features, classes = _sklearn_arrays(name)
    if classes is None:  # diabetes: regression
        return _Raw(X.copy(), target.astype(np.float64)[:, None], features, ("target",), "regression")
    return _Raw(X.copy(), target.astype(np.int64), features, ("target",), "classification",
                class_names=classes)


_GENERATORS = {"article": _article, "xor": _xor, "sine": _sine, "moons": _moons}
# Every name `data.source` may give instead of a CSV path: a generator's, or scikit-learn's.
BUILTINS = tuple(_GENERATORS) + SKLEARN_SETS


def _builtin(source: str, data_seed: int) -> _Raw:
    if source in _GENERATORS:
        return _GENERATORS[source](data_seed)
    return _sklearn(source, data_seed)


# ---------------------------------------------------------------------------------------------
# CSV


def _number(cell: str) -> float:
    """A finite float, or ValueError."""
    value = float(cell)
    if not math.isfinite(value):
        raise ValueError
    return value


def _non_finite(cell: str) -> bool:
    """Whether a cell is a number that is not finite (``inf``, ``-Infinity``, ``1e999``)."""
    try:
        return not math.isfinite(float(cell))
    except ValueError:
        return False


def _read_csv(path: Path, shown: str, target: Optional[tuple[str, ...]], task: Optional[str]) -> _Raw:
    """A CSV file with a header row: every feature cell a finite number, no target cell a
    non-finite one."""
    header, body = _csv_rows(path, shown)
    targets = target or (header[-1],)
    for name in targets:
        if name not in header:
            raise DataProblem("data.target", f"no column {name!r} in {shown}{_suggest(name, header)} "
                                             f"(columns: {', '.join(header)})")
    if len(targets) == len(header):
        raise DataProblem("data.target", f"every column of {shown} is a target; no features left")
    t_cols = [header.index(name) for name in targets]
    f_cols = [i for i in range(len(header)) if i not in t_cols]
    X, T_text = _csv_cells(shown, header, body, f_cols, t_cols)
    features = tuple(header[c] for c in f_cols)
    return _csv_targets(shown, body, X, T_text, features, targets, task)


def _csv_rows(path: Path, shown: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells) of each non-empty data row]), the header checked."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [(n, row) for n, row in enumerate(csv.reader(handle), start=1) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataProblem("data.source", f"cannot read {shown}: {error}") from None
    if not rows:
        raise DataProblem("data.source", f"{shown} is empty (expected a header row and data rows)")
    header = [name.strip() for name in rows[0][1]]
    if any(not name for name in header):
        raise DataProblem("data.source", f"{shown}: a column in the header row has no name")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataProblem("data.source", f"{shown}: column names used twice: {', '.join(twice)}")
    if len(header) < 2:
        raise DataProblem("data.source", f"{shown}: needs at least two columns (features and a target)")
    body = rows[1:]
    if not body:
        raise DataProblem("data.source", f"{shown} has a header but no data rows")
    return header, body


_MISSING = ("", "nan", "na", "null", "none")


def _csv_cells(shown: str, header: list[str], body: list[tuple[int, list[str]]],
               f_cols: list[int], t_cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(X, shape (n, n_features) float64; the target cells, shape (n, n_targets) text). Every
    bad cell is listed (the first MAX_CELL_PROBLEMS) in one DataProblem."""
    problems: list[str] = []

    def bad(row: int, line: int, column: str, what: str) -> None:
        problems.append(f"row {row} (line {line}), column {column!r}: {what}")

    X = np.empty((len(body), len(f_cols)))
    T_text = np.empty((len(body), len(t_cols)), dtype=object)
    for r, (line, row) in enumerate(body, start=1):
        if len(row) != len(header):
            problems.append(f"row {r} (line {line}) has {len(row)} cells; the header has {len(header)}")
            continue
        for j, c in enumerate(f_cols):
            cell = row[c].strip()
            try:
                X[r - 1, j] = _number(cell)
            except ValueError:
                what = "missing value (NaN)" if cell.lower() in _MISSING \
                    else f"{cell!r} is not a finite number"
                bad(r, line, header[c], what)
        for j, c in enumerate(t_cols):
            cell = row[c].strip()
            if cell.lower() in _MISSING:
                bad(r, line, header[c], "missing value (NaN)")
            elif _non_finite(cell):          # else "inf" would pass as a class label
                bad(r, line, header[c], f"{cell!r} is not a finite number")
            T_text[r - 1, j] = cell
    if problems:
        more = len(problems) - MAX_CELL_PROBLEMS
        listed = "; ".join(problems[:MAX_CELL_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise DataProblem("data.source", f"{shown}: {listed}")
    return X, T_text


def _csv_targets(shown: str, body: list[tuple[int, list[str]]], X: np.ndarray,
                 T_text: np.ndarray, features: tuple[str, ...], targets: tuple[str, ...],
                 task: Optional[str]) -> _Raw:
    """The target cells as class labels or numbers, by `task` (None: inferred)."""
    numeric = np.empty(T_text.shape)
    text_at = None
    for index, cell in np.ndenumerate(T_text):
        try:
            numeric[index] = _number(cell)
        except ValueError:
            text_at = text_at or index
    if task is None:  # infer
        single = len(targets) == 1
        whole = text_at is None and np.all(numeric == np.round(numeric))
        few = text_at is None and 2 <= len(np.unique(numeric)) <= MAX_INFERRED_CLASSES
        task = "classification" if single and (text_at is not None or (whole and few)) else "regression"
    if task == "classification":
        if len(targets) != 1:
            raise DataProblem("data.target", "classification needs exactly one target column, "
                                             f"got {len(targets)}")
        if text_at is None and not np.all(numeric == np.round(numeric)):
            raise DataProblem("data.task", "classification needs class labels (whole numbers or "
                                           f"text) in column {targets[0]!r}; it holds fractions")
        labels = numeric[:, 0].astype(np.int64) if text_at is None else T_text[:, 0].astype(str)
        return _Raw(X, labels, features, targets, "classification")
    if text_at is not None:
        r = text_at[0] + 1
        raise DataProblem("data.source", (
            f"{shown}: row {r} (line {body[r - 1][0]}), column {targets[text_at[1]]!r}: "
            f"{T_text[text_at]!r} is not a number (a regression target must be numeric)"))
    return _Raw(X, numeric, features, targets, "regression")


def _suggest(word: str, choices) -> str:
    from sweeps.spec.problems import suggest

    return suggest(word, choices)


# ---------------------------------------------------------------------------------------------
# Split, scale, encode


# What a held-out part is called in messages: (rows it is drawn from, what for, another way out).
_HELD_OUT = {"data.test_fraction": ("row", "testing", ", or test_fraction: 0"),
             "data.validation": ("training row", "validation", "")}


def _split(n: int, fraction: float, labels: Optional[np.ndarray], rng: np.random.Generator,
           name: str, setting: str = "data.test_fraction") -> tuple[np.ndarray, np.ndarray]:
    """Row indices (kept, held out), each sorted: `fraction` of n rows held out (rounded up)
    for `setting`. Stratified by class when every class can give a held-out row and keep a
    kept one."""
    if fraction == 0:
        everything = np.arange(n)
        return everything, everything
    n_held = math.ceil(round(fraction * n, 9))
    if n - n_held < 1:
        rows, purpose, way_out = _HELD_OUT[setting]
        raise DataProblem(
            setting,
            f"{name} has {n} {rows}{'s' if n != 1 else ''}: {setting.split('.')[1]} {fraction:g} "
            f"takes {n_held} for {purpose} and leaves none for training "
            f"(need at least {n_held + 1} {rows}s{way_out})",
        )
    perm = rng.permutation(n)
    held = np.zeros(n, dtype=bool)
    classes, counts = (np.unique(labels, return_counts=True) if labels is not None else (None, None))
    if classes is not None and n_held >= len(classes) and n - n_held >= len(classes) and counts.min() >= 2:
        exact = counts * n_held / n
        take = np.floor(exact).astype(int)
        order = np.argsort(-(exact - take), kind="stable")
        take[order[: n_held - take.sum()]] += 1
        take = np.clip(take, 1, counts - 1)
        for c, k in zip(classes, take):
            members = perm[labels[perm] == c]
            held[members[:k]] = True
    else:
        held[perm[:n_held]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def _validation_split(X: np.ndarray, T: np.ndarray, fraction: float, labels: Optional[np.ndarray],
                      data_seed: int, name: str, target_names: tuple[str, ...]):
    """(X_train, T_train, X_val, T_val): `fraction` of the training rows held out for validation,
    from a stream of its own (the test split is unchanged). A class the training rows had must
    keep a training row."""
    keep, held = _split(X.shape[0], fraction, labels, _rng(data_seed, 2), name, "data.validation")
    if labels is not None:
        lost = sorted(set(labels.tolist()) - set(labels[keep].tolist()))
        if lost:
            names = ", ".join(repr(target_names[c]) for c in lost)
            raise DataProblem("data.validation", (
                f"validation {fraction:g} takes {len(held)} of the {X.shape[0]} training rows of "
                f"{name} and leaves class {names} without a training row; use a smaller fraction"))
    return X[keep], T[keep], X[held], T[held]


def _scaler(kind: str, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shift, divisor) fitted on A (rows = samples); a constant column is left unscaled."""
    if kind == "standard":
        shift, spread = A.mean(axis=0), A.std(axis=0)
    elif kind == "minmax":
        shift, spread = A.min(axis=0), A.max(axis=0) - A.min(axis=0)
    else:
        return np.zeros(A.shape[1]), np.ones(A.shape[1])
    spread = np.where(spread > 0, spread, 1.0)
    return shift, spread


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def fingerprint(task: str, arrays: dict[str, Optional[np.ndarray]], names: tuple) -> str:
    """Hash of the arrays (dtype, shape, bytes), the task and the column names: 16 hex chars."""
    digest = hashlib.sha256(repr((task, names)).encode())
    for key, array in arrays.items():
        digest.update(key.encode())
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def load_dataset(
    source: str,
    *,
    base_dir: Path = Path("."),
    target: Optional[tuple[str, ...]] = None,
    test_fraction: Optional[float] = None,
    scale: Optional[str] = None,
    target_scale: str = "none",
    task: Optional[str] = None,
    data_seed: int = 0,
    validation: Optional[float] = None,
) -> Dataset:
    """Build a Dataset from the `data:` settings; raises DataProblem naming the setting.

    source : a built-in name (BUILTINS) or a CSV path, relative to `base_dir` (the sweep file's
        directory). None for test_fraction, scale or task means the set's default.
    validation : the fraction of the training rows held out for validation; None: no split.
    """
    raw = _raw(source, base_dir, target, task, data_seed)
    name = source
    task = _settle_task(raw, name, task)
    test_fraction = raw.test_fraction if test_fraction is None else test_fraction
    scale = raw.scale if scale is None else scale
    if raw.X_test is not None and test_fraction > 0:
        raise DataProblem("data.test_fraction", f"{name!r} has a test set of its own; "
                                                "use test_fraction: 0")
    if task == "classification" and target_scale != "none":
        raise DataProblem("data.target_scale", "only for regression targets")
    target_names, labels = _encode_classes(raw, name, task)
    parts = _split_parts(raw, name, test_fraction, validation, labels, data_seed, target_names,
                         classification=task == "classification")
    input_shift, input_spread = _scaler(scale, parts["train"][0])
    arrays = _scaled_arrays(parts, input_shift, input_spread, target_scale, len(target_names),
                            classification=task == "classification")
    resolved = {
        "data.source": source, "data.target": target, "data.test_fraction": float(test_fraction),
        "data.validation": None if validation is None else float(validation),
        "data.scale": scale, "data.target_scale": target_scale, "data.task": task,
    }
    return Dataset(
        name=name, task=task, **arrays,
        feature_names=raw.feature_names, target_names=tuple(target_names),
        fingerprint=fingerprint(task, arrays, (raw.feature_names, tuple(target_names))),
        resolved=resolved,
        input_shift=_readonly(np.asarray(input_shift, dtype=np.float64)),
        input_spread=_readonly(np.asarray(input_spread, dtype=np.float64)),
    )


def _raw(source: str, base_dir: Path, target: Optional[tuple[str, ...]], task: Optional[str],
         data_seed: int) -> _Raw:
    """The built-in set `source` names, else the CSV file at its path."""
    if source in BUILTINS:
        if target is not None:
            raise DataProblem("data.target", f"only for CSV files; {source!r} is built in")
        return _builtin(source, data_seed)
    path = Path(source).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise DataProblem(
            "data.source",
            f"{source!r} is neither a built-in data set{_suggest(source, BUILTINS)} "
            f"({', '.join(BUILTINS)}) nor a file ({path} does not exist)",
        )
    return _read_csv(path, source, target, task)


def _settle_task(raw: _Raw, name: str, task: Optional[str]) -> str:
    """The task asked for (class ids of a set read as a numeric target), else the set's own."""
    if task is not None and task != raw.task:
        if task == "classification":
            raise DataProblem("data.task", f"{name!r} has a continuous (regression) target, "
                                           "not class labels")
        if raw.T.dtype.kind not in "iuf":
            raise DataProblem("data.task", f"regression needs a numeric target; {name!r} has "
                                           "text labels")
        raw.T = raw.T.astype(np.float64)[:, None]  # class ids as a numeric target
        raw.class_names = None
    return task or raw.task


def _encode_classes(raw: _Raw, name: str, task: str) -> tuple[tuple, Optional[np.ndarray]]:
    """(target names, labels): for classification the class names and ids 0..C-1 in sorted
    class order, which become the targets (raw.T); for regression the target columns, None."""
    if task != "classification":
        return raw.target_names, None
    classes, labels = np.unique(raw.T, return_inverse=True)
    if len(classes) < 2:
        raise DataProblem("data.target", f"{name!r} has a single class; classification "
                                         "needs two or more")
    target_names = (tuple(raw.class_names[int(c)] for c in classes) if raw.class_names
                    else tuple(str(c) for c in classes))
    raw.T = labels.astype(np.int64)
    return target_names, labels


def _split_parts(raw: _Raw, name: str, test_fraction: float, validation: Optional[float],
                 labels: Optional[np.ndarray], data_seed: int, target_names: tuple,
                 classification: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (X, T), "test": (X, T)[, "val": (X, T)]}, unscaled, in the order the
    fingerprint hashes them. The article brings its own test row (regression only)."""
    if raw.X_test is not None:
        X_train, X_test, T_train, T_test = raw.X, raw.X_test, raw.T, raw.T_test
    else:
        train, test = _split(raw.X.shape[0], test_fraction, labels, _rng(data_seed, 1), repr(name))
        X_train, X_test, T_train, T_test = raw.X[train], raw.X[test], raw.T[train], raw.T[test]
    if validation is None:
        return {"train": (X_train, T_train), "test": (X_test, T_test)}
    X_train, T_train, X_val, T_val = _validation_split(
        X_train, T_train, validation, T_train if classification else None, data_seed,
        repr(name), tuple(target_names))
    return {"train": (X_train, T_train), "test": (X_test, T_test), "val": (X_val, T_val)}


def _scaled_arrays(parts: dict[str, tuple[np.ndarray, np.ndarray]], input_shift: np.ndarray,
                   input_spread: np.ndarray, target_scale: str, n_targets: int,
                   classification: bool) -> dict[str, Optional[np.ndarray]]:
    """X_*, Y_* (one-hot, or regression targets scaled like the inputs: fitted on the training
    rows only) and labels_* of each part, read-only. The fingerprint hashes them in this order:
    X and Y of train and test, then their labels, as before validation existed; the validation
    arrays only when there is a split."""
    shift, spread = (None, None) if classification else _scaler(target_scale, parts["train"][1])
    eye = np.eye(n_targets)
    arrays: dict[str, Optional[np.ndarray]] = {}
    for part, (X, T) in parts.items():
        arrays[f"X_{part}"] = (X - input_shift) / input_spread
        arrays[f"Y_{part}"] = eye[T] if classification else (T - shift) / spread
    arrays.update({f"labels_{part}": T if classification else None
                   for part, (_, T) in parts.items()})
    return {k: None if v is None else
            _readonly(np.asarray(v, dtype=np.float64 if k[0] in "XY" else np.int64))
            for k, v in arrays.items()}
