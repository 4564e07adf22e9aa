"""The population workloads core is timed on against XLA and PyTorch (bench_core.py).

Each workload is one ``core.train`` call on a population sharing its data: what one pack of a
sweep is. ``Workload.data()`` gives the arrays, ``Workload.population(core, dtype)`` the
network, parameters and optimizer of the K variants, so the engines compared start from the
same numbers.

- bc_h4, bc_h16, bc_h64: breast_cancer (341 training rows x 30 inputs, standardized), one tanh
  hidden layer of h units, sigmoid output, bce, sgd with 7 learning rates x 5 seeds (K = 35),
  300 full-batch epochs, loss logged every 10.
- card: the article's 3-h-1 sigmoid network (configs/card.yaml) on its 3 rows, one population of
  the card's 120 variants per h in {2, 4, 8, 16} (lr x init x seed), half_sse, 2,000 epochs.
- digits: 1,078 rows x 64 pixels, tanh 32-16, softmax over 10 classes, cross_entropy, sgd with
  4 learning rates x 3 seeds (K = 12), 100 full-batch epochs.
- bc_minibatch: breast_cancer h = 16, adam, mini-batches of 32 (11 per epoch), K = 35, 30 epochs.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

BC_LRS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
CARD_LRS = (0.01, 0.1, 0.5, 1.0)
CARD_INITS = ("uniform01", "xavier_normal", "he_normal")


@functools.lru_cache(maxsize=None)
def _labelled(name: str, n_train: int):
    """(X (n_train, d) standardized, Y one-hot or (n, 1), labels (n,)) from a shuffled bundled set."""
    from sweeps.spec.sklearn_sets import sklearn_set
    X, target, _, classes = sklearn_set(name)
    order = np.random.default_rng(0).permutation(len(X))[:n_train]
    X, labels = X[order], target[order].astype(np.int64)
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    Y = labels[:, None].astype(np.float64) if len(classes) == 2 else np.eye(len(classes))[labels]
    return X, Y, labels


def article_data():
    X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    return X, np.array([[0.2], [0.5], [0.8]]), None


@dataclass(frozen=True)
class Population:
    """One core.train call: its arguments besides the data (which ``Workload.data`` gives)."""

    sizes: tuple            # (n_in, *hidden, n_out)
    activation: str
    output_activation: str
    loss: str
    kind: str               # optimizer
    lrs: tuple              # (K,)
    inits: tuple            # (K,)
    seeds: tuple            # (K,)


@dataclass(frozen=True)
class Workload:
    name: str
    data_name: str          # breast_cancer, digits or article
    n_train: int
    hidden_sizes: tuple     # one population per entry (the card has four)
    activation: str
    output_activation: str
    loss: str
    kind: str
    lrs: tuple
    inits: tuple
    seeds: tuple
    epochs: int
    log_every: int
    batch_size: int | None = None

    def data(self):
        """(X, Y, labels or None), float64."""
        return article_data() if self.data_name == "article" else _labelled(self.data_name,
                                                                             self.n_train)

    def populations(self):
        """The Population of each hidden size: every (lr, init, seed) combination."""
        X, Y, _ = self.data()
        combos = [(lr, init, s) for lr in self.lrs for init in self.inits for s in self.seeds]
        for hidden in self.hidden_sizes:
            yield Population((X.shape[1], *hidden, Y.shape[1]), self.activation,
                             self.output_activation, self.loss, self.kind,
                             *(tuple(c[i] for c in combos) for i in range(3)))

    @property
    def variants(self) -> int:
        return len(self.hidden_sizes) * len(self.lrs) * len(self.inits) * len(self.seeds)


def _bc(h):
    return Workload(f"bc_h{h}", "breast_cancer", 341, ((h,),), "tanh", "sigmoid", "bce", "sgd",
                    BC_LRS, ("xavier_normal",), tuple(range(5)), 300, 10)


WORKLOADS = (
    _bc(4), _bc(16), _bc(64),
    Workload("card", "article", 3, tuple((h,) for h in (2, 4, 8, 16)), "sigmoid", "sigmoid",
             "half_sse", "sgd", CARD_LRS, CARD_INITS, tuple(range(10)), 2000, 100),
    Workload("digits", "digits", 1078, ((32, 16),), "tanh", "softmax", "cross_entropy", "sgd",
             (0.03, 0.1, 0.3, 1.0), ("xavier_normal",), tuple(range(3)), 100, 10),
    Workload("bc_minibatch", "breast_cancer", 341, ((16,),), "tanh", "sigmoid", "bce", "adam",
             (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0), ("xavier_normal",), tuple(range(5)), 30, 5,
             batch_size=32),
)


def core_inputs(core, pop: Population, dtype):
    """(mlp, params, OptimizerSpec) of a population for the given core module."""
    mlp = core.MLP(pop.sizes[0], pop.sizes[1:-1], pop.sizes[-1], activation=pop.activation,
                   output_activation=pop.output_activation)
    params = core.init_params(mlp, list(pop.inits), list(pop.seeds), dtype=dtype)
    return mlp, params, core.OptimizerSpec(kind=pop.kind, lr=list(pop.lrs))


def train_core(core, wl: Workload, dtype):
    """Train every population of the workload with ``core`` (a core module); the results."""
    X, Y, labels = wl.data()
    out = []
    for pop in wl.populations():
        mlp, params, spec = core_inputs(core, pop, dtype)
        out.append(core.train(mlp, params, X, Y, loss=pop.loss, optimizer=spec, epochs=wl.epochs,
                              batch_size=wl.batch_size, log_every=wl.log_every, labels=labels))
    return out
