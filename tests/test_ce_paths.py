"""The CPU cross_entropy's internal paths agree: the short small-input path (cached plans,
one serial call) vs the general path, column-blocked long rows vs a float64 reference,
the spatial tile vs the row kernel, in place vs out of place."""
from __future__ import annotations

import numpy as np
import pytest

import nbxent
from nbxent._cpu.threads import PARALLEL_MIN
from nbxent.xent.cpu_rows import CB

from ce_support import K_GRAD, K_VALUE, assert_close, ce_scales, u


def _ref_rows(x, t):
    """float64 per-row loss and softmax-minus-onehot of a float32/64 (N, C) input."""
    x64 = x.astype(np.float64)
    m = x64.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        e = np.exp(x64 - m)
    s = e.sum(axis=1, keepdims=True)
    lse = (m + np.log(s))[:, 0]
    p = e / s
    rows = np.arange(x.shape[0])
    loss = lse - x64[rows, t]
    # p_t - 1 = -(sum of the other terms) / s: no cancellation when p_t rounds to 1
    e_other = e.copy()
    e_other[rows, t] = 0.0
    p[rows, t] = -e_other.sum(axis=1) / s[:, 0]
    return loss, p, lse


def test_small_path_and_general_path_same_bits():
    # A C-contiguous float32 (32, 10) input takes the short path; a non-contiguous view of
    # the same values takes the general one (copy, plan, three calls).
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((32, 10)) * 3).astype(np.float32)
    t = rng.integers(0, 10, 32)
    t[::7] = -100
    w = rng.uniform(0.5, 2, 10).astype(np.float32)
    wide = np.zeros((32, 20), np.float32)
    wide[:, ::2] = x
    view = wide[:, ::2]
    assert not view.flags.c_contiguous and x.size <= PARALLEL_MIN
    for kw in ({}, {"weight": w, "label_smoothing": 0.2}, {"reduction": "none"},
               {"reduction": "sum", "weight": w}):
        a_loss, a_grad = nbxent.cross_entropy_with_grad(x, t, **kw)
        b_loss, b_grad = nbxent.cross_entropy_with_grad(view, t, **kw)
        assert a_loss.tobytes() == b_loss.tobytes(), kw
        assert a_grad.tobytes() == b_grad.tobytes(), kw
        assert nbxent.cross_entropy(x, t, **kw).tobytes() == a_loss.tobytes(), kw


def test_cached_plans_do_not_hide_errors():
    x = np.zeros((4, 3), np.float32)
    t = np.array([0, 1, 2, 0])
    nbxent.cross_entropy(x, t, ignore_index=1)           # caches a plan with ignore_index=1
    with pytest.raises(TypeError, match="ignore_index"):
        nbxent.cross_entropy(x, t, ignore_index=True)     # True == 1, but is not an int
    nbxent.cross_entropy(x, t, label_smoothing=1)
    with pytest.raises(RuntimeError, match="label_smoothing"):
        nbxent.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.warns(UserWarning, match="elementwise_mean"):
        nbxent.cross_entropy(x, t, reduction="elementwise_mean")
    before = x.copy()
    with pytest.raises(IndexError, match=r"cross_entropy_with_grad: Target 3 is out of bounds"):
        nbxent.cross_entropy_with_grad(x, np.array([0, 3, 1, 0]), out=x)
    assert np.array_equal(x, before), "a rejected in-place call wrote to the input"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_blocked_rows_against_float64(dtype):
    # Rows longer than one column block (CB): per-block maxima, an all -inf block (its
    # factor must be 0, not exp(-inf - -inf) = NaN) and the target in any block.
    rng = np.random.default_rng(5)
    C = 2 * CB + 37
    x = (rng.standard_normal((6, C)) * 4).astype(dtype)
    x[1, CB:2 * CB] = -np.inf              # a whole middle block at -inf
    x[2, 5] = 60.0                         # the row max far above the other blocks
    x[3, :CB] -= 40.0                      # the first block far below the rest
    t = np.array([3, 0, 5, C - 1, CB + 1, 2 * CB])
    loss, grad = nbxent.cross_entropy_with_grad(x, t, reduction="none")
    ref_loss, ref_grad, lse = _ref_rows(x, t)
    scale, _ = ce_scales(x, t)
    assert_close(loss, ref_loss, K_VALUE * u(dtype) * scale, "blocked row loss")
    # p_j carries exp's condition number |x_j - lse| (see ce_support)
    with np.errstate(invalid="ignore"):
        mag = 1 + np.abs(x.astype(np.float64)) + np.abs(lse)[:, None]
        tol = K_GRAD * u(dtype) * (np.abs(ref_grad) * mag + u(dtype) * (1 + np.abs(ref_grad)))
    tol = np.where(np.isinf(x), 0.0, tol)
    assert_close(grad, ref_grad, tol, "blocked row gradient")
    assert np.all(grad[1, CB:2 * CB] == 0.0) and not np.signbit(grad[1, CB:2 * CB]).any()
    x_in = x.copy()
    loss_in, grad_in = nbxent.cross_entropy_with_grad(x_in, t, reduction="none", out=x_in)
    assert grad_in is x_in
    assert loss_in.tobytes() == loss.tobytes() and grad_in.tobytes() == grad.tobytes()


def test_all_neg_inf_block_rows_are_nan_like_torch():
    C = CB + 3
    x = np.full((2, C), -np.inf, np.float32)
    x[1, :4] = [1.0, 2.0, 3.0, 4.0]
    loss, grad = nbxent.cross_entropy_with_grad(x, np.array([0, 3]), reduction="none")
    assert np.isnan(loss[0]) and np.isnan(grad[0]).all()
    assert np.isfinite(loss[1]) and np.all(grad[1, 4:] == 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spatial_tile_equals_row_kernel(dtype):
    # (N, C, K) through the spatial tile vs the same samples as (N*K, C) rows: same
    # formulas, so the values agree to the sum order (float64 sums over C classes).
    rng = np.random.default_rng(9)
    N, C, K = 2, 21, 700                    # K not a multiple of the position block
    x = (rng.standard_normal((N, C, K)) * 3).astype(dtype)
    t = rng.integers(0, C, (N, K))
    t[:, ::9] = -100
    w = rng.uniform(0.5, 2, C).astype(dtype)
    kw = {"weight": w, "label_smoothing": 0.1, "reduction": "none"}
    loss, grad = nbxent.cross_entropy_with_grad(x, t, **kw)
    rows = np.ascontiguousarray(np.moveaxis(x, 1, -1).reshape(N * K, C))
    r_loss, r_grad = nbxent.cross_entropy_with_grad(rows, t.reshape(-1), **kw)
    scale, lse = ce_scales(rows, t.reshape(-1), weight=w, label_smoothing=0.1)
    assert_close(loss.reshape(-1), r_loss, K_VALUE * u(dtype) * scale, "spatial vs rows loss")
    g_sp = np.moveaxis(grad, 1, -1).reshape(N * K, C).astype(np.float64)
    # Each element combines A * p_j and (eps/C) * w_j, which cancel; the bound follows the
    # size of the terms (docs/semantics.md §13), p_j with exp's condition number |x_j| + |lse|.
    x64 = rows.astype(np.float64)
    p = np.exp(x64 - lse[:, None])
    w64 = w.astype(np.float64)
    tt = t.reshape(-1)
    A = 0.9 * w64[np.where(tt >= 0, tt, 0)] + 0.1 / C * w64.sum()
    mag = 1 + np.abs(x64) + np.abs(lse)[:, None]
    tol = K_GRAD * u(dtype) * (A[:, None] * p * mag + 0.1 / C * w64[None, :] + p)
    valid = tt >= 0
    # the target element also holds -(1 - eps) * w_t (its p_t - 1 is formed from the sums)
    tol[np.flatnonzero(valid), tt[valid]] += K_GRAD * u(dtype) * 0.9 * w64[tt[valid]]
    tol[~valid] = 0.0                       # ignored samples: exactly +0.0 on both paths
    assert_close(g_sp, r_grad, tol, "spatial vs rows gradient")
    x_in = x.copy()
    loss_in, grad_in = nbxent.cross_entropy_with_grad(x_in, t, out=x_in, **kw)
    assert loss_in.tobytes() == loss.tobytes() and grad_in.tobytes() == grad.tobytes()
