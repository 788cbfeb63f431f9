"""Shape bookkeeping shared by the oracles and the tolerance policy.

Class-index losses see their input as ``S`` rows of ``C`` classes: an unbatched
``(C,)`` input is one row; ``(N, C, d1..dk)`` becomes ``(N*d1*..*dk, C)`` with
the class axis moved last (samples in C order of ``(N, d1..dk)``, as torch
flattens them). Gradients are moved back with :func:`from_rows`.
"""
from __future__ import annotations

import numpy as np


def to_rows(x: np.ndarray) -> np.ndarray:
    """``x`` as an ``(S, C)`` float64 array of rows (class axis last)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return x[None, :]
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def from_rows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`to_rows` for an input of ``shape``."""
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(rows.reshape(moved), -1, 1)


def sample_shape(x_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the per-sample ('none') output of a class-index loss."""
    if len(x_shape) == 1:
        return ()
    return (x_shape[0],) + tuple(x_shape[2:])


def is_prob_target(case_arrays: dict) -> bool:
    """torch's dispatch: probability targets iff ``target.shape == input.shape``."""
    return case_arrays["target"].shape == case_arrays["input"].shape


def grad_per_sample(g: np.ndarray, reduction: str, n_out: int) -> np.ndarray:
    """Upstream gradient per output element as a flat float64 array (before any 1/W)."""
    g = np.asarray(g, dtype=np.float64)
    if reduction == "none":
        return g.reshape(-1) if g.ndim else np.full(n_out, float(g))
    return np.full(n_out, float(g))


def bce_broadcast(arr: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``weight``/``pos_weight`` broadcast into ``shape`` as float64 (ones when None)."""
    if arr is None:
        return np.ones(shape)
    return np.broadcast_to(np.asarray(arr, dtype=np.float64), shape)
