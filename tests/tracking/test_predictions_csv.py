"""The predictions table and the accuracy metric call the same class rule (ties included)."""

from __future__ import annotations

import numpy as np

import core
from sweeps.spec.data import load_dataset
from sweeps.tracking.contract import predictions_table


def test_pred_label_agrees_with_test_accuracy_at_exactly_one_half():
    dataset = load_dataset("xor")
    outputs = np.array([[0.5], [0.5], [0.9], [0.1]])               # (n_test, 1); ties on rows 0-1
    columns, table = predictions_table(dataset, "sigmoid", outputs)
    pred = table[:, columns.index("pred_label")]
    Y = dataset.targets("sigmoid")[1]
    _, _, accuracy = core.measure(outputs[None], Y, "bce", dataset.labels_test)
    assert np.mean(pred == dataset.labels_test) == accuracy[0]
    np.testing.assert_array_equal(pred, [0, 0, 1, 0])


def test_softmax_outputs_take_the_argmax():
    dataset = load_dataset("iris")
    outputs = np.tile([0.2, 0.5, 0.3], (len(dataset.X_test), 1))
    columns, table = predictions_table(dataset, "softmax", outputs)
    np.testing.assert_array_equal(table[:, columns.index("pred_label")], 1.0)


def test_predictions_csv_is_written_as_savetxt_writes_it_and_reads_back_exactly(tmp_path):
    """The remembered columns change nothing: the same bytes as np.savetxt, every time."""
    from sweeps.tracking.contract import write_csv

    rng = np.random.default_rng(0)
    fixed = rng.normal(size=(20, 3))                           # the same in every file
    odd = np.array([0.0, -0.0, 1.0, 1e-300, 1e300, np.nan, np.inf, -np.inf, 0.1, 2.0 / 3])
    for index in range(3):
        values = np.hstack([fixed, rng.normal(size=(20, 1)), np.resize(odd, (20, 1))])
        expected, got = tmp_path / f"savetxt{index}.csv", tmp_path / f"ours{index}.csv"
        np.savetxt(expected, values, delimiter=",", fmt="%.17g", header='a,"b,c",d,e,f',
                   comments="")
        write_csv(got, ["a", "b,c", "d", "e", "f"], values)
        assert got.read_bytes() == expected.read_bytes()
        back = np.loadtxt(got, delimiter=",", skiprows=1)
        np.testing.assert_array_equal(back, values)            # (NaN equal to NaN)
    empty = tmp_path / "empty.csv"
    write_csv(empty, ["a"], np.zeros((0, 1)))
    np.savetxt(tmp_path / "empty-savetxt.csv", np.zeros((0, 1)), header="a", comments="")
    assert empty.read_bytes() == (tmp_path / "empty-savetxt.csv").read_bytes()
