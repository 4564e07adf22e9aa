"""`Activation.output_range`: what a bounded output activation can produce (the sweep file
check of regression targets reads it), held against the function itself."""

import numpy as np
import pytest

import core


@pytest.mark.parametrize("name", sorted(core.ACTIVATIONS))
def test_outputs_lie_in_the_declared_range_and_reach_towards_both_ends(name):
    bounds = core.ACTIVATIONS[name].output_range
    if bounds is None:
        return
    Z = np.linspace(-50.0, 50.0, 2001)[None, :]        # (1, n): wide enough to saturate
    A = core.ACTIVATIONS[name].fn(Z)
    low, high = bounds
    assert low <= A.min() and A.max() <= high
    assert A.min() - low < 1e-6                          # the bound is tight below
    assert high == np.inf or high - A.max() < 1e-6       # and above


def test_unbounded_elementwise_activations_exceed_any_bound():
    for name, activation in core.ACTIVATIONS.items():
        if activation.output_range is None and activation.elementwise:
            A = activation.fn(np.array([[-1e6, 1e6]]))
            assert A.min() < -1.0 and A.max() > 1.0, name
