"""Small calls of every loss work in a child forked after a parallel kernel ran.

With Numba's OpenMP threading layer a forked child dies as soon as it enters a parallel
region (nbxent/_cpu/threads.py); torch's DataLoader forks by default on Linux. Small
inputs therefore take serial kernels, which never enter the thread pool.
"""
from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

import nbxent

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
T = np.array([2, 0])
P = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
Y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])
PB = np.array([[0.25, 0.5, 0.75], [0.1, 0.2, 0.9]])


def _small_calls():
    """One small call of every loss and path (rows, spatial, probability, NLL, both BCEs)."""
    g = np.array(1.0)
    return [
        nbxent.cross_entropy_with_grad(X, T, label_smoothing=0.1)[1],
        nbxent.cross_entropy_with_grad(X.reshape(2, 3, 1), T.reshape(2, 1))[1],
        nbxent.cross_entropy_backward(g, X, P, wrt="target"),
        nbxent.nll_loss_with_grad(X, T)[1],
        nbxent.binary_cross_entropy_with_grad(PB, Y)[1],
        nbxent.binary_cross_entropy_with_logits_with_grad(X, Y)[1],
        nbxent.binary_cross_entropy_with_logits_with_grad(X.astype(np.float32),
                                                          Y.astype(np.float32))[1],
        nbxent.binary_cross_entropy_with_grad(PB.astype(np.float32), Y.astype(np.float32))[1],
    ]


def _child(queue):
    queue.put([r.tolist() for r in _small_calls()])


def _run_parallel_kernels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 128))
    nbxent.cross_entropy_with_grad(x, rng.integers(0, 128, 512))
    nbxent.cross_entropy(x.reshape(8, 128, 64), rng.integers(0, 128, (8, 64)))
    v = rng.random(1 << 16)
    nbxent.binary_cross_entropy_with_logits_with_grad(v, v)
    nbxent.binary_cross_entropy(v, v)


def test_small_calls_work_in_a_child_forked_after_parallel_kernels():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no fork start method")
    want = [r.tolist() for r in _small_calls()]
    _run_parallel_kernels()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, f"the forked child died (exit code {child.exitcode})"
    assert queue.get(timeout=10) == want
