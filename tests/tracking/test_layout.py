"""The predictions table and the accuracy metric call the same class rule (ties included)."""

from __future__ import annotations

import numpy as np

import core
from sweeps.spec.data import load_dataset
from sweeps.tracking.layout import predictions_table


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
