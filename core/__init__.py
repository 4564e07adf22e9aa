"""core: pure-NumPy backpropagation for populations of small MLPs.

Every array carries a leading population axis K (a single network is K = 1). Public API:
``MLP``, ``init_params``, ``train`` (-> ``TrainResult``, whose ``state`` continues it),
``TrainState``, ``predict``, ``predicted_labels``,
``forward`` / ``backward``, ``OptimizerSpec``, ``loss_value``, the registries (``ACTIVATIONS``,
``LOSSES``, ``INITIALIZERS``, ``OPTIMIZERS``), ``SUPPORTED_PAIRS`` with
``check_output_loss``, and the central-difference ``check_gradients``.

``core.train`` is the function; the training loop lives in ``core/loop.py``.

``NUMERICS_VERSION`` names core's arithmetic: it is bumped whenever a change gives any
variant other bits (an order of summation, a fused step), so a result computed by an older
core is never taken for one this core would give. 2: one-output layers on batches with
n * width >= ``network.ONE_OUTPUT_GEMM_MIN`` are a gemm (its own order of summation) instead
of a broadcast and an in-order sum; softmax sums 8 to 16 classes in column order (NumPy's
pairwise order before; below 8 classes both are the same).
"""

from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, Activation
from .gradcheck import analytic_gradients, check_gradients, numerical_gradients
from .init import INITIALIZERS, init_params
from .losses import (CLASSIFICATION_LOSSES, LOSSES, SUPPORTED_PAIRS, Loss, check_output_loss,
                     loss_value, output_delta)
from .network import MLP, Params, backward, forward, predict
from .optim import OPTIMIZER_STATE, OPTIMIZERS, OptimizerSpec
from .state import TrainState
from .loop import DIVERGENCE_FACTOR, TrainResult, measure, predicted_labels, train

NUMERICS_VERSION = 2

__all__ = [
    "NUMERICS_VERSION",
    "ACTIVATIONS", "HIDDEN_ACTIVATIONS", "Activation", "INITIALIZERS", "LOSSES", "Loss",
    "OPTIMIZERS", "SUPPORTED_PAIRS", "CLASSIFICATION_LOSSES", "DIVERGENCE_FACTOR",
    "MLP", "Params", "OptimizerSpec", "OPTIMIZER_STATE", "TrainResult", "TrainState",
    "init_params", "forward", "backward", "predict", "train", "loss_value", "output_delta",
    "check_output_loss", "measure", "predicted_labels", "check_gradients", "numerical_gradients",
    "analytic_gradients",
]
