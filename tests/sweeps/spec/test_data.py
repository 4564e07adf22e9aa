"""Data sets: contents, shapes, determinism, split, scaling fitted on train only, CSV checks."""

from __future__ import annotations

import numpy as np
import pytest

from sweeps.spec.data import BUILTINS, DataProblem, load_dataset


def test_article_data_is_the_articles():
    d = load_dataset("article")
    np.testing.assert_array_equal(d.X_train, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    np.testing.assert_array_equal(d.Y_train, [[0.2], [0.5], [0.8]])
    np.testing.assert_array_equal(d.X_test, [[0.2, 0.4, 0.6]])
    np.testing.assert_array_equal(d.Y_test, [[0.4]])
    assert d.task == "regression" and d.labels_train is None
    assert d.resolved["data.scale"] == "none" and d.resolved["data.test_fraction"] == 0.0
    assert d.targets("sigmoid")[0] is d.Y_train


def test_article_does_not_depend_on_data_seed():
    assert load_dataset("article", data_seed=0).fingerprint == load_dataset("article", data_seed=7).fingerprint


def test_xor_targets_follow_the_output_layer():
    d = load_dataset("xor")
    assert d.task == "classification" and d.n_classes == 2
    np.testing.assert_array_equal(d.labels_train, [0, 1, 1, 0])
    single, _ = d.targets("sigmoid")
    np.testing.assert_array_equal(single, [[0], [1], [1], [0]])
    onehot, _ = d.targets("softmax")
    np.testing.assert_array_equal(onehot, [[1, 0], [0, 1], [0, 1], [1, 0]])
    assert d.n_outputs("sigmoid") == 1 and d.n_outputs("softmax") == 2
    np.testing.assert_array_equal(d.X_test, d.X_train)  # test_fraction 0: the test set is the training set


@pytest.mark.parametrize(
    "source, n_in, n_rows, task, n_classes",
    [
        ("sine", 1, 256, "regression", 0),
        ("moons", 2, 200, "classification", 2),
        ("iris", 4, 150, "classification", 3),
        ("wine", 13, 178, "classification", 3),
        ("breast_cancer", 30, 569, "classification", 2),
        ("digits", 64, 1797, "classification", 10),
        ("diabetes", 10, 442, "regression", 0),
    ],
)
def test_builtin_shapes(source, n_in, n_rows, task, n_classes):
    d = load_dataset(source)
    n_test = int(np.ceil(0.2 * n_rows))
    assert d.X_train.shape == (n_rows - n_test, n_in) and d.X_test.shape == (n_test, n_in)
    assert d.task == task and d.n_classes == n_classes
    assert len(d.feature_names) == n_in
    assert d.X_train.dtype == np.float64 and d.Y_train.dtype == np.float64
    if task == "classification":
        assert d.Y_train.shape == (n_rows - n_test, n_classes)
        np.testing.assert_array_equal(d.Y_train.argmax(axis=1), d.labels_train)
        np.testing.assert_array_equal(d.Y_train.sum(axis=1), 1.0)
        assert len(d.target_names) == n_classes
    else:
        assert d.Y_train.shape == (n_rows - n_test, 1) and d.labels_train is None


@pytest.mark.parametrize("source", sorted(BUILTINS))
def test_every_builtin_loads_with_a_name_per_column_and_finite_values(source):
    d = load_dataset(source)
    assert d.X_train.shape[1] == d.X_test.shape[1] == len(d.feature_names)
    assert len(d.X_train) == len(d.Y_train) and len(d.X_test) == len(d.Y_test)
    for array in (d.X_train, d.Y_train, d.X_test, d.Y_test):
        assert np.isfinite(array).all()
    assert load_dataset(source).fingerprint == d.fingerprint


@pytest.mark.parametrize("source", ["sine", "moons", "iris"])
def test_same_data_seed_same_arrays_other_seed_other_split(source):
    a, b, c = (load_dataset(source, data_seed=s) for s in (3, 3, 4))
    for name in ("X_train", "Y_train", "X_test", "Y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert not np.array_equal(a.X_test, c.X_test)


def test_split_is_stratified_by_class():
    d = load_dataset("iris")
    assert np.bincount(d.labels_test).tolist() == [10, 10, 10]
    assert np.bincount(d.labels_train).tolist() == [40, 40, 40]


def test_standard_scaling_is_fitted_on_the_training_split_only(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(5.0, 3.0, size=(40, 3))
    y = rng.normal(size=40)
    (tmp_path / "d.csv").write_text(
        "a,b,c,y\n" + "".join(f"{float(r[0])!r},{float(r[1])!r},{float(r[2])!r},{float(t)!r}\n" for r, t in zip(raw, y)))
    d = load_dataset("d.csv", base_dir=tmp_path, scale="standard", task="regression")
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(axis=0), 1.0)
    # recover which raw rows went to train and test, then check the test rows used train stats
    unscaled = load_dataset("d.csv", base_dir=tmp_path, scale="none", task="regression")
    mean, std = unscaled.X_train.mean(axis=0), unscaled.X_train.std(axis=0)
    np.testing.assert_allclose(d.X_test, (unscaled.X_test - mean) / std)
    assert not np.allclose(d.X_test.mean(axis=0), 0.0)  # not refitted on the test rows
    # the targets are left alone unless target_scale asks
    np.testing.assert_array_equal(d.Y_train, unscaled.Y_train)


def test_minmax_scaling_maps_training_inputs_to_unit_range():
    d = load_dataset("wine", scale="minmax")
    np.testing.assert_allclose(d.X_train.min(axis=0), 0.0)
    np.testing.assert_allclose(d.X_train.max(axis=0), 1.0)


def test_arrays_are_read_only():
    d = load_dataset("moons")
    with pytest.raises(ValueError):
        d.X_train[0, 0] = 1.0


def test_more_than_two_classes_with_sigmoid_stays_one_hot():
    d = load_dataset("iris")
    assert d.targets("sigmoid")[0].shape == (120, 3)


def test_regression_task_on_class_labels():
    d = load_dataset("iris", task="regression")
    assert d.task == "regression" and d.Y_train.shape == (120, 1)
    assert set(np.unique(d.Y_train)) == {0.0, 1.0, 2.0}


def test_classification_task_on_a_continuous_target_is_refused():
    with pytest.raises(DataProblem) as caught:
        load_dataset("sine", task="classification")
    assert caught.value.path == "data.task"


def write_csv(tmp_path, text, name="d.csv"):
    (tmp_path / name).write_text(text)
    return name


def test_csv_default_target_is_the_last_column(tmp_path):
    name = write_csv(tmp_path, "a,b,y\n" + "".join(f"{i},{i * 2},{i / 10}\n" for i in range(10)))
    d = load_dataset(name, base_dir=tmp_path)
    assert d.feature_names == ("a", "b") and d.target_names == ("y",)
    assert d.task == "regression" and d.X_train.shape == (8, 2) and d.X_test.shape == (2, 2)


def test_csv_named_targets_and_several_outputs(tmp_path):
    name = write_csv(tmp_path, "y1,a,y2,b\n" + "".join(f"{i / 10},{i},{i / 5},{-i}\n" for i in range(10)))
    d = load_dataset(name, base_dir=tmp_path, target=("y1", "y2"), test_fraction=0.0, scale="none")
    assert d.feature_names == ("a", "b") and d.target_names == ("y1", "y2")
    np.testing.assert_array_equal(d.Y_train[:, 1], [i / 5 for i in range(10)])


def test_csv_text_labels_are_classes(tmp_path):
    rows = "".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(10))
    d = load_dataset(write_csv(tmp_path, "x,animal\n" + rows), base_dir=tmp_path)
    assert d.task == "classification" and d.target_names == ("cat", "dog")
    assert d.n_outputs("sigmoid") == 1 and d.n_outputs("softmax") == 2


def test_csv_few_whole_numbers_infer_classification(tmp_path):
    name = write_csv(tmp_path, "x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(12)))
    assert load_dataset(name, base_dir=tmp_path).task == "classification"
    assert load_dataset(name, base_dir=tmp_path, task="regression").task == "regression"


def test_csv_nan_names_row_and_column(tmp_path):
    name = write_csv(tmp_path, "a,b,y\n1,2,3\n4,NaN,6\n")
    with pytest.raises(DataProblem) as caught:
        load_dataset(name, base_dir=tmp_path)
    assert caught.value.path == "data.source"
    assert "row 2 (line 3), column 'b': missing value (NaN)" in caught.value.message


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity", "1e999"])
@pytest.mark.parametrize("column, task", [("a", None), ("y", None), ("y", "classification"),
                                          ("y", "regression")])
def test_csv_non_finite_number_in_any_column_names_row_and_column(tmp_path, cell, column, task):
    rows = [{"a": str(i), "y": str(i % 2)} for i in range(8)]
    rows[4][column] = cell
    name = write_csv(tmp_path, "a,y\n" + "".join(f"{r['a']},{r['y']}\n" for r in rows))
    with pytest.raises(DataProblem) as caught:
        load_dataset(name, base_dir=tmp_path, task=task)
    assert caught.value.path == "data.source"
    assert f"row 5 (line 6), column {column!r}: {cell!r} is not a finite number" in caught.value.message


def test_csv_text_in_a_regression_target_names_row_and_column(tmp_path):
    name = write_csv(tmp_path, "a,y\n" + "".join(f"{i},{i / 7}\n" for i in range(5)) + "5,oops\n")
    with pytest.raises(DataProblem) as caught:
        load_dataset(name, base_dir=tmp_path, task="regression")
    assert "row 6 (line 7), column 'y'" in caught.value.message


def test_csv_ragged_row(tmp_path):
    name = write_csv(tmp_path, "a,b,y\n1,2,3\n4,5\n")
    with pytest.raises(DataProblem) as caught:
        load_dataset(name, base_dir=tmp_path)
    assert "row 2 (line 3) has 2 cells" in caught.value.message


def test_csv_unknown_target_column_suggests(tmp_path):
    name = write_csv(tmp_path, "a,price\n1,2\n")
    with pytest.raises(DataProblem) as caught:
        load_dataset(name, base_dir=tmp_path, target=("prices",))
    assert caught.value.path == "data.target" and "did you mean 'price'?" in caught.value.message


def test_target_is_only_for_csv():
    with pytest.raises(DataProblem) as caught:
        load_dataset("iris", target=("y",))
    assert caught.value.path == "data.target"


# ---------------------------------------------------------------------------------------------
# The validation split (data.validation)


def rows(*arrays: np.ndarray) -> list[set]:
    """Each array's rows as a set of tuples (to compare which raw rows went where)."""
    return [{tuple(r) for r in a} for a in arrays]


def test_validation_rows_come_from_the_training_rows_stratified():
    d = load_dataset("iris", validation=0.25)
    assert (d.X_train.shape[0], d.X_val.shape[0], d.X_test.shape[0]) == (90, 30, 30)
    assert np.bincount(d.labels_val).tolist() == [10, 10, 10]
    assert np.bincount(d.labels_train).tolist() == [30, 30, 30]
    np.testing.assert_array_equal(d.Y_val.argmax(axis=1), d.labels_val)
    assert d.resolved["data.validation"] == 0.25
    assert "iris: 90 train / 30 val / 30 test rows" in d.describe()


def test_validation_size_is_rounded_up_like_the_test_split():
    d = load_dataset("sine", validation=0.1)       # 256 rows: 52 test, 204 left, ceil(20.4) val
    assert (d.X_train.shape[0], d.X_val.shape[0], d.X_test.shape[0]) == (183, 21, 52)
    assert d.labels_val is None and d.Y_val.shape == (21, 1)


def test_train_validation_and_test_rows_are_disjoint_and_cover_the_data():
    whole = load_dataset("moons", scale="none", test_fraction=0.0)
    d = load_dataset("moons", scale="none", validation=0.2)
    train, val, test = rows(d.X_train, d.X_val, d.X_test)
    assert len(train) == len(d.X_train) and len(val) == len(d.X_val)     # moons rows are distinct
    assert not train & val and not train & test and not val & test
    assert train | val | test == rows(whole.X_train)[0]


def test_a_validation_split_leaves_the_test_rows_unchanged():
    for source in ("moons", "iris", "diabetes"):
        before = load_dataset(source, scale="none")
        after = load_dataset(source, scale="none", validation=0.3)
        np.testing.assert_array_equal(after.X_test, before.X_test)
        np.testing.assert_array_equal(after.Y_test, before.Y_test)
        assert rows(after.X_train)[0] | rows(after.X_val)[0] <= rows(before.X_train)[0]
        assert after.fingerprint != before.fingerprint


def test_without_validation_nothing_changes():
    d = load_dataset("moons")
    assert d.X_val is None and d.Y_val is None and d.labels_val is None
    assert d.val_targets("sigmoid") is None
    assert d.resolved["data.validation"] is None
    assert "160 train / 40 test rows" in d.describe()


def test_validation_split_is_deterministic_per_data_seed():
    a, b, c = (load_dataset("moons", validation=0.2, data_seed=s) for s in (1, 1, 2))
    for name in ("X_train", "X_val", "Y_val", "labels_val", "X_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert load_dataset("moons", validation=0.3).fingerprint != load_dataset("moons", validation=0.2).fingerprint


def test_scaling_is_fitted_on_the_rows_left_for_training():
    raw = load_dataset("diabetes", scale="none", validation=0.2)
    d = load_dataset("diabetes", scale="standard", target_scale="minmax", validation=0.2)
    mean, std = raw.X_train.mean(axis=0), raw.X_train.std(axis=0)
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(d.X_val, (raw.X_val - mean) / std)
    np.testing.assert_allclose(d.X_test, (raw.X_test - mean) / std)
    np.testing.assert_allclose(d.input_shift, mean)
    low, high = raw.Y_train.min(), raw.Y_train.max()
    assert d.Y_train.min() == 0.0 and d.Y_train.max() == 1.0
    np.testing.assert_allclose(d.Y_val, (raw.Y_val - low) / (high - low))
    assert not np.allclose(d.X_val.mean(axis=0), 0.0)        # not refitted on validation rows


def test_val_targets_follow_the_output_layer_like_targets():
    d = load_dataset("moons", validation=0.2)
    single = d.val_targets("sigmoid")
    np.testing.assert_array_equal(single[:, 0], d.labels_val)
    np.testing.assert_array_equal(d.val_targets("softmax"), d.Y_val)
    assert single.shape == (32, 1) and d.targets("sigmoid")[0].shape == (128, 1)


def test_validation_on_a_set_whose_test_set_is_its_own():
    d = load_dataset("article", validation=0.2)
    assert (d.X_train.shape[0], d.X_val.shape[0]) == (2, 1)
    np.testing.assert_array_equal(d.X_test, [[0.2, 0.4, 0.6]])


@pytest.mark.parametrize("fraction, words", [
    (0.9, ["4 training rows", "leaves none for training"]),
    (0.75, ["class '1'", "without a training row"]),
])
def test_validation_that_leaves_no_training_row_or_class(fraction, words):
    with pytest.raises(DataProblem) as caught:
        load_dataset("xor", validation=fraction)
    assert caught.value.path == "data.validation"
    for word in words:
        assert word in caught.value.message
