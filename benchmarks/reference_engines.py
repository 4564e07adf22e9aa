"""The same population training in JAX (XLA) and PyTorch: what core is measured against.

Both compute what core computes, the same way: the forward pass over K variants (batched
products), the output delta of the fused pair (``scale * (out - Y)``; times ``out (1 - out)``
for half_sse on a sigmoid output), the gradients written out by hand (no autodiff), core's
optimizer update (sgd, adam) and the loss logged at the same epochs (full batch: from the
step's own forward pass; mini-batches: one more forward over the training set). Mini-batches
follow core's order (``default_rng(data_seed).permutation(n)`` per epoch). XLA gets one
``lax.scan`` over the epochs inside ``jit``; PyTorch a Python loop over its batched matmuls.

Timings exclude JAX's compilation (a first call of the same shapes). Both are limited to one
thread: XLA by ``XLA_FLAGS`` (set here unless already set, before jax is imported), PyTorch
by ``torch.set_num_threads(1)``. Optional: ``pip install '.[bench]'``.
"""
from __future__ import annotations

import os
import time

import numpy as np

ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def available(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def version(name: str) -> str:
    return __import__(name).__version__


def _orders(n, epochs, data_seed=0):
    rng = np.random.default_rng(data_seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)])       # (epochs, n)


def _scale(loss, n, n_out):
    return {"bce": 1.0 / (n * n_out), "cross_entropy": 1.0 / n, "half_sse": 1.0,
            "mse": 2.0 / (n * n_out)}[loss]


class Clock:
    """Wall and CPU (process) seconds of a ``with`` block."""

    def __enter__(self):
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter()
        self.cpu += time.process_time()


def time_jax(wl, pop, params, dtype):
    """(Clock, logged losses (K, n_logs)) of one jitted run of the population (compiled before)."""
    os.environ.setdefault("XLA_FLAGS", ONE_THREAD_XLA)
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

    X, Y, _ = wl.data()
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    n, K = X.shape[0], len(pop.lrs)
    bs = n if wl.batch_size is None else wl.batch_size
    lr = jnp.asarray(pop.lrs, dtype)[:, None, None]                     # (K, 1, 1)
    acts = {"tanh": jnp.tanh, "sigmoid": lambda z: 1 / (1 + jnp.exp(-z)),
            "softmax": lambda z: jax.nn.softmax(z, axis=-1)}
    derivs = {"tanh": lambda a: 1 - a * a, "sigmoid": lambda a: a * (1 - a)}
    L = len(params.W)
    eps = float(np.finfo(dtype).eps)

    def forward(W, Xb):
        A = [Xb]
        for l in range(L):
            Z = (jnp.einsum("np,kpq->knq", Xb, W[0]) if l == 0
                 else jnp.einsum("knp,kpq->knq", A[-1], W[l]))             # (K, n, q)
            A.append(acts[pop.activation if l < L - 1 else pop.output_activation](Z))
        return A

    def loss_of(out, Yb):
        if pop.loss == "bce":
            p = jnp.clip(out, eps, 1 - eps)
            return -jnp.mean(Yb * jnp.log(p) + (1 - Yb) * jnp.log1p(-p), axis=(1, 2))
        if pop.loss == "cross_entropy":
            return -jnp.sum(Yb * jnp.log(jnp.clip(out, eps, 1)), axis=(1, 2)) / out.shape[1]
        return 0.5 * jnp.sum((out - Yb) ** 2, axis=(1, 2))

    def grads(W, Xb, Yb):
        A = forward(W, Xb)
        out = A[-1]
        dZ = _scale(pop.loss, Xb.shape[0], Y.shape[1]) * (out - Yb)
        if pop.loss in ("half_sse", "mse"):
            dZ = dZ * derivs[pop.output_activation](out)
        G = [None] * L
        for l in range(L - 1, -1, -1):
            G[l] = (jnp.einsum("np,knq->kpq", Xb, dZ) if l == 0
                    else jnp.einsum("knp,knq->kpq", A[l], dZ))              # (K, p, q)
            if l:
                dZ = jnp.einsum("knq,kpq->knp", dZ, W[l]) * derivs[pop.activation](A[l])
        return G, out

    def update(W, opt, G):
        if pop.kind == "sgd":
            return [w - lr * g for w, g in zip(W, G)], opt
        m, v, t = opt
        t = t + 1
        b1, b2 = 0.9, 0.999
        m = [b1 * a + (1 - b1) * g for a, g in zip(m, G)]
        v = [b2 * a + (1 - b2) * g * g for a, g in zip(v, G)]
        W = [w - lr * (a / (1 - b1 ** t)) / (jnp.sqrt(b / (1 - b2 ** t)) + 1e-8)
             for w, a, b in zip(W, m, v)]
        return W, (m, v, t)

    def epoch_full(carry, epoch):
        W, opt = carry
        G, out = grads(W, X, Y)
        W, opt = update(W, opt, G)
        return (W, opt), loss_of(out, Y)

    def epoch_mini(carry, order):
        W, opt = carry
        logged = loss_of(forward(W, X)[-1], Y)     # every epoch (core: every log_every-th)
        full = order[:n // bs * bs].reshape(-1, bs)

        def batch(c, idx):
            G, _ = grads(c[0], X[idx], Y[idx])
            return update(c[0], c[1], G), None
        (W, opt), _ = lax.scan(batch, (W, opt), full)
        if n % bs:
            idx = order[n // bs * bs:]
            G, _ = grads(W, X[idx], Y[idx])
            W, opt = update(W, opt, G)
        return (W, opt), logged

    W0 = [jnp.asarray(w, dtype) for w in params.W]
    zeros = [jnp.zeros_like(w) for w in W0]
    opt0 = (zeros, zeros, jnp.asarray(0, dtype)) if pop.kind == "adam" else ()
    if bs == n:
        run = jax.jit(lambda W, opt: lax.scan(epoch_full, (W, opt), jnp.arange(wl.epochs)))
        args = (W0, opt0)
    else:
        orders = jnp.asarray(_orders(n, wl.epochs))
        run = jax.jit(lambda W, opt, o: lax.scan(epoch_mini, (W, opt), o))
        args = (W0, opt0, orders)
    jax.block_until_ready(run(*args))                 # compile
    with Clock() as clock:
        _, logged = jax.block_until_ready(run(*args))
    return clock, np.asarray(logged).T[:, ::wl.log_every]


def time_torch(wl, pop, params, dtype):
    """(Clock, logged losses (K, n_logs)) of one run of the population with batched matmuls."""
    import torch
    torch.set_num_threads(1)
    tdt = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]
    Xn, Yn, _ = wl.data()
    X, Y = torch.tensor(Xn, dtype=tdt), torch.tensor(Yn, dtype=tdt)
    n, L = X.shape[0], len(params.W)
    bs = n if wl.batch_size is None else wl.batch_size
    lr = torch.tensor(pop.lrs, dtype=tdt)[:, None, None]
    eps = float(np.finfo(dtype).eps)
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid,
           "softmax": lambda z: torch.softmax(z, dim=-1)}
    deriv = {"tanh": lambda a: 1 - a * a, "sigmoid": lambda a: a * (1 - a)}
    W = [torch.tensor(np.asarray(w), dtype=tdt) for w in params.W]
    m = [torch.zeros_like(w) for w in W]
    v = [torch.zeros_like(w) for w in W]

    def forward(Xb):
        A = [Xb.expand(len(pop.lrs), *Xb.shape)]
        for l in range(L):
            A.append(act[pop.activation if l < L - 1 else pop.output_activation](A[-1] @ W[l]))
        return A

    def loss_of(out):
        if pop.loss == "bce":
            p = out.clamp(eps, 1 - eps)
            return -(Y * p.log() + (1 - Y) * torch.log1p(-p)).mean(dim=(1, 2))
        if pop.loss == "cross_entropy":
            return -(Y * out.clamp(eps, 1).log()).sum(dim=(1, 2)) / n
        return 0.5 * ((out - Y) ** 2).sum(dim=(1, 2))

    def step(Xb, Yb, t):
        A = forward(Xb)
        dZ = _scale(pop.loss, Xb.shape[0], Y.shape[1]) * (A[-1] - Yb)
        if pop.loss in ("half_sse", "mse"):
            dZ = dZ * deriv[pop.output_activation](A[-1])
        for l in range(L - 1, -1, -1):
            g = A[l].transpose(1, 2) @ dZ                                     # (K, p, q)
            if l:
                dZ = (dZ @ W[l].transpose(1, 2)) * deriv[pop.activation](A[l])
            if pop.kind == "sgd":
                W[l] -= lr * g
            else:
                m[l].mul_(0.9).add_(0.1 * g)
                v[l].mul_(0.999).add_(0.001 * g * g)
                W[l] -= lr * (m[l] / (1 - 0.9 ** t)) / ((v[l] / (1 - 0.999 ** t)).sqrt() + 1e-8)
        return A[-1]

    orders = torch.tensor(_orders(n, wl.epochs)) if bs < n else None
    t, logged = 0, []
    with torch.no_grad(), Clock() as clock:
        for epoch in range(wl.epochs):
            if bs == n:
                t += 1
                out = step(X, Y, t)
                if epoch % wl.log_every == 0:
                    logged.append(loss_of(out))
                continue
            if epoch % wl.log_every == 0:
                logged.append(loss_of(forward(X)[-1]))
            for s in range(0, n, bs):
                idx = orders[epoch, s:s + bs]
                t += 1
                step(X[idx], Y[idx], t)
    return clock, torch.stack(logged).T.numpy()
