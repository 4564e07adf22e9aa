"""Weight initializers and :func:`init_params`.

Each initializer draws one ``(fan_in, fan_out)`` float64 matrix from a per-variant
``np.random.RandomState`` (the legacy stream, so that ``uniform01`` reproduces the
article's ``np.random.seed(42); np.random.rand(3, 4); np.random.rand(4, 1)`` exactly).
A variant's layers are drawn in order from its own stream; biases start at zero.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .network import MLP, Params


def uniform01(rng, fan_in, fan_out):
    """U[0, 1): the article's ``np.random.rand``."""
    return rng.rand(fan_in, fan_out)


def uniform(rng, fan_in, fan_out):
    """U[-1, 1)."""
    return rng.uniform(-1.0, 1.0, (fan_in, fan_out))


def normal(rng, fan_in, fan_out):
    """N(0, 1): ``np.random.randn``."""
    return rng.standard_normal((fan_in, fan_out))


def xavier_uniform(rng, fan_in, fan_out):
    """Glorot uniform: U[-a, a), ``a = sqrt(6 / (fan_in + fan_out))``."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, (fan_in, fan_out))


def xavier_normal(rng, fan_in, fan_out):
    """Glorot normal: N(0, 2 / (fan_in + fan_out))."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / (fan_in + fan_out))


def he_uniform(rng, fan_in, fan_out):
    """He uniform: U[-a, a), ``a = sqrt(6 / fan_in)``."""
    a = np.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, (fan_in, fan_out))


def he_normal(rng, fan_in, fan_out):
    """He normal: N(0, 2 / fan_in)."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)


def lecun_normal(rng, fan_in, fan_out):
    """LeCun normal: N(0, 1 / fan_in)."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(1.0 / fan_in)


INITIALIZERS: dict[str, Callable] = {f.__name__: f for f in (
    uniform01, uniform, normal, xavier_uniform, xavier_normal,
    he_uniform, he_normal, lecun_normal)}


def init_params(mlp: MLP, init: str | Sequence[str], seed: int | Sequence[int],
                dtype=np.float64) -> Params:
    """Initial parameters for a population, one variant per seed.

    Parameters
    ----------
    mlp : MLP
    init : str or sequence of str, length K
        Initializer name(s), a key of ``INITIALIZERS``; a single name applies to all.
    seed : int or sequence of int, length K
        One seed per variant; K = number of seeds (an int means K = 1).
    dtype : numpy float dtype
        float64 (default) or float32. Draws are made in float64, then cast.

    Returns
    -------
    Params
        ``W[l]`` shape (K, sizes[l], sizes[l+1]); ``b[l]`` shape (K, 1, sizes[l+1])
        zeros, or ``b = None`` when ``mlp.bias`` is False.
    """
    seeds = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]
    K = len(seeds)
    inits = [init] * K if isinstance(init, str) else list(init)
    if len(inits) != K:
        raise ValueError(f"init has {len(inits)} entries but there are {K} seeds")
    for name in set(inits):
        if name not in INITIALIZERS:
            raise ValueError(f"unknown initializer {name!r}; choose from {sorted(INITIALIZERS)}")
    sizes = mlp.sizes
    W = [np.empty((K, p, q), dtype) for p, q in zip(sizes[:-1], sizes[1:])]
    for k, (name, s) in enumerate(zip(inits, seeds)):
        rng = np.random.RandomState(s)
        for l, (p, q) in enumerate(zip(sizes[:-1], sizes[1:])):
            W[l][k] = INITIALIZERS[name](rng, p, q)  # (p, q)
    b = tuple(np.zeros((K, 1, q), dtype) for q in sizes[1:]) if mlp.bias else None
    return Params(tuple(W), b)
