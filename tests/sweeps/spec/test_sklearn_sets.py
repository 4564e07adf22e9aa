"""scikit-learn's sets read from its files: identical to its loaders, and without importing it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sweeps.spec import sklearn_sets
from sweeps.spec.sklearn_sets import SETS, read_bundled, sklearn_set


def loader_arrays(name: str):
    """(X, target, feature names, class names) straight from sklearn.datasets.load_<name>()."""
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    classes = getattr(bunch, "target_names", None)
    return (bunch.data, bunch.target, tuple(str(f) for f in bunch.feature_names),
            None if classes is None else tuple(str(c) for c in classes))


def assert_identical(got, expected):
    """Same values, dtypes and shapes (bit for bit: runs are keyed by a hash of the data)."""
    (X, target, features, classes), (X_e, target_e, features_e, classes_e) = got, expected
    for array, wanted in ((X, X_e), (target, target_e)):
        assert array.dtype == wanted.dtype and array.shape == wanted.shape
        assert np.array_equal(array, wanted)
        assert np.ascontiguousarray(array).tobytes() == np.ascontiguousarray(wanted).tobytes()
    assert features == features_e and classes == classes_e


@pytest.mark.parametrize("name", SETS)
def test_the_files_read_directly_equal_the_loader(name):
    assert_identical(read_bundled(name), loader_arrays(name))


@pytest.mark.parametrize("name", SETS)
def test_without_the_files_it_falls_back_to_the_loader(name, monkeypatch, tmp_path):
    monkeypatch.setattr(sklearn_sets, "_data_folder", lambda: tmp_path / "elsewhere")
    with pytest.raises(OSError):
        read_bundled(name)
    assert_identical(sklearn_set(name), loader_arrays(name))


def test_a_file_of_another_layout_falls_back_to_the_loader(monkeypatch, tmp_path):
    (tmp_path / "iris.csv").write_text("150,4\n5.1,3.5,1.4,0.2,setosa\n")  # no class names; text ids
    monkeypatch.setattr(sklearn_sets, "_data_folder", lambda: tmp_path)
    with pytest.raises(ValueError):
        read_bundled("iris")
    assert_identical(sklearn_set("iris"), loader_arrays("iris"))


def test_loading_a_set_imports_neither_sklearn_nor_scipy():
    script = ("import sys\n"
              "from sweeps.spec.data import load_dataset\n"
              "d = load_dataset('breast_cancer', validation=0.2)\n"
              "assert d.X_train.shape == (364, 30), d.X_train.shape\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))\n")
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
