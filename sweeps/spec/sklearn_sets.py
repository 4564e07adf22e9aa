"""scikit-learn's bundled data sets, read from the files it ships, without importing it.

`import sklearn.datasets` takes about 1 s (it pulls in scipy and most of scikit-learn), on the
critical path of every `sweeps run`, `validate` and `plan` of a sweep on one of these sets.
The files themselves (sklearn/datasets/data/) are small CSVs that NumPy reads in milliseconds,
so `sklearn_set` reads them directly and rebuilds what `sklearn.datasets.load_<name>()` returns,
bit for bit: runs are keyed by a hash of the data (tests/sweeps/spec/test_sklearn_sets.py compares
every set with its loader). Where the files are not as this code expects them (another
scikit-learn layout), it falls back to the loader.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np

SETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")

# What `sklearn_set` returns:
#   X : ndarray, shape (n, n_features), float64
#   target : ndarray, shape (n,), int64 class ids (float64 values for diabetes)
#   feature_names : tuple of str, one per column of X
#   class_names : tuple of str, one per class id; None for diabetes (regression)
Arrays = tuple[np.ndarray, np.ndarray, tuple[str, ...], Optional[tuple[str, ...]]]

# Feature names that _base.py spells out in load_<name>() (the CSVs carry none).
_BREAST_CANCER_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness",
                           "concavity", "concave points", "symmetry", "fractal dimension")
_FEATURES = {
    "iris": ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"),
    "wine": ("alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
             "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
             "od280/od315_of_diluted_wines", "proline"),
    # The 10 measures' means, then their standard errors, then their worst values.
    "breast_cancer": tuple(form.format(m) for form in ("mean {}", "{} error", "worst {}")
                           for m in _BREAST_CANCER_MEASURES),
    "digits": tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8)),
    "diabetes": ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"),
}
_CSV_FILES = {"iris": "iris.csv", "wine": "wine_data.csv", "breast_cancer": "breast_cancer.csv"}


def sklearn_set(name: str) -> Arrays:
    """(X, target, feature_names, class_names) of `load_<name>()`, name one of SETS."""
    try:
        return read_bundled(name)
    except (OSError, ValueError):  # not the layout read_bundled knows: ask scikit-learn
        return load_with_sklearn(name)


def read_bundled(name: str) -> Arrays:
    """`sklearn_set` from the shipped files; OSError or ValueError where they are not as expected."""
    folder = _data_folder()
    if name in _CSV_FILES:
        X, target, classes = _read_labelled_csv(folder / _CSV_FILES[name])
    elif name == "digits":
        rows = _loadtxt(folder / "digits.csv.gz", delimiter=",")  # 64 pixels, then the digit
        X, target, classes = rows[:, :-1], rows[:, -1].astype(int), tuple(str(d) for d in range(10))
    else:  # diabetes
        X = _standardized(_loadtxt(folder / "diabetes_data_raw.csv.gz"))
        X /= X.shape[0] ** 0.5  # load_diabetes(scaled=True): each column's sum of squares is 1
        target, classes = _loadtxt(folder / "diabetes_target.csv.gz"), None
    if X.shape[1] != len(_FEATURES[name]):
        raise ValueError(f"{name}: {X.shape[1]} columns, expected {len(_FEATURES[name])}")
    return X, target, _FEATURES[name], classes


def load_with_sklearn(name: str) -> Arrays:
    """`sklearn_set` through scikit-learn's own loader (the ~1 s import)."""
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    classes = getattr(bunch, "target_names", None)
    return (np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target),
            tuple(str(f) for f in bunch.feature_names),
            None if classes is None else tuple(str(c) for c in classes))


def _data_folder() -> Path:
    """sklearn/datasets/data of the installed scikit-learn; find_spec does not import it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _loadtxt(path: Path, **options) -> np.ndarray:
    """A numeric text file (gzipped if .gz) as float64: shape (n_rows, n_columns), or
    (n_rows,) for a single column."""
    return np.loadtxt(path, dtype=np.float64, encoding="utf-8", **options)


def _read_labelled_csv(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A file of load_csv_data: header `n_samples,n_features,class names...`, then rows of the
    features and a class id. (X (n, n_features) float64, ids (n,) int, class names)."""
    with open(path, encoding="utf-8") as handle:
        n, n_features, *classes = handle.readline().rstrip("\r\n").split(",")
        rows = _loadtxt(handle, delimiter=",")
    if rows.shape != (int(n), int(n_features) + 1):
        raise ValueError(f"{path}: shape {rows.shape}, header says {n} x {n_features} + target")
    return rows[:, :-1], rows[:, -1].astype(int), tuple(classes)


def _standardized(X: np.ndarray) -> np.ndarray:
    """sklearn.preprocessing.scale(X): each column less its mean, over its std (ddof 0; a
    near-constant column is left unscaled), in its order of operations. Shape (n, d) as X.
    (scale re-centres a column whose centred mean is not close to 0: none of diabetes' is.)"""
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std < 10 * np.finfo(std.dtype).eps] = 1.0
    X = X - mean
    X /= std
    return X
