"""The row kernel's guessed block shifts (nbxent/xent/cpu_rows.py): a block whose max is far
above its guess (scanned again), rows whose first logits give no finite guess, and in place
vs a separate gradient buffer, each against a float64 reference."""
from __future__ import annotations

import numpy as np
import pytest

import nbxent
from nbxent.xent.cpu_rows import CB, GUESS_FROM, GUESS_SLACK

from ce_support import K_GRAD, K_VALUE, assert_close, ce_scales, u


def _ref(x, t):
    """float64 per-row loss and gradient (softmax minus one-hot) of an (N, C) input."""
    x64 = x.astype(np.float64)
    m = x64.max(axis=1, keepdims=True)
    e = np.exp(x64 - m)
    s = e.sum(axis=1, keepdims=True)
    lse = (m + np.log(s))[:, 0]
    rows = np.arange(x.shape[0])
    p = e / s
    other = e.copy()
    other[rows, t] = 0.0
    p[rows, t] = -other.sum(axis=1) / s[:, 0]    # p_t - 1 without cancellation
    return lse - x64[rows, t], p, lse


def _rows(dtype):
    rng = np.random.default_rng(17)
    C = 2 * CB + 101
    x = (rng.standard_normal((6, C)) * 2).astype(dtype)
    x[0, GUESS_FROM + 3] = GUESS_SLACK + 30.0     # block 0: its max far above the first logits' max
    x[1, CB + 7] = 2 * GUESS_SLACK + 5.0          # block 1: far above the running max
    x[1, 2 * CB + 50] = 3 * GUESS_SLACK           # block 2: above block 1's max again
    x[2, :GUESS_FROM] = -np.inf                   # no finite guess: block 0 takes its own max
    x[3, :GUESS_FROM] = np.nan                    # likewise (NaN row: loss NaN)
    x[4, GUESS_FROM + 1] = GUESS_SLACK - 1.0      # just inside the slack: no second scan
    x[5, :CB] -= 60.0                             # block 0 far below the others
    t = np.array([GUESS_FROM + 3, 5, GUESS_FROM + 9, 2, GUESS_FROM + 1, CB + 3])
    return x, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_guessed_shifts_against_float64(dtype):
    x, t = _rows(dtype)
    loss, grad = nbxent.cross_entropy_with_grad(x, t, reduction="none")
    fin = np.array([0, 1, 2, 4, 5])
    ref_loss, ref_grad, lse = _ref(x[fin], t[fin])
    scale, _ = ce_scales(x[fin], t[fin])
    assert_close(loss[fin], ref_loss, K_VALUE * u(dtype) * scale, "guessed-shift loss")
    with np.errstate(invalid="ignore"):
        mag = 1 + np.abs(x[fin].astype(np.float64)) + np.abs(lse)[:, None]
        tol = K_GRAD * u(dtype) * (np.abs(ref_grad) * mag + u(dtype) * (1 + np.abs(ref_grad)))
    tol = np.where(np.isinf(x[fin]), 0.0, tol)
    assert_close(grad[fin], ref_grad, tol, "guessed-shift gradient")
    assert np.isnan(loss[3]) and np.isnan(grad[3]).all()
    assert np.all(grad[2, :GUESS_FROM] == 0.0)
    # the forward alone gives the fused call's loss bits
    fwd = nbxent.cross_entropy(x, t, reduction="none")
    assert fwd.tobytes() == loss.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_guessed_shifts_in_place_same_bits(dtype):
    x, t = _rows(dtype)
    loss, grad = nbxent.cross_entropy_with_grad(x, t, reduction="none")
    x_in = x.copy()
    loss_in, grad_in = nbxent.cross_entropy_with_grad(x_in, t, reduction="none", out=x_in)
    assert grad_in is x_in
    assert loss_in.tobytes() == loss.tobytes() and grad_in.tobytes() == grad.tobytes()
