"""The spatial cross_entropy kernel (nbxent/xent/cpu_spatial.py) on the shapes and targets
its blocking and int32 target classes could get wrong: class counts of either parity (the
target logit alternates between two rows), position counts below and across the block
size (the next block's prefetch), and ignore_index inside [0, C) or beyond int32."""
from __future__ import annotations

import numpy as np
import pytest

import nbxent
from nbxent.xent.cpu_spatial import KBLOCK

from ce_support import K_GRAD, K_VALUE, assert_close, ce_scales, u


def _spatial_vs_rows(x, t, ignore_index):
    """Loss and gradient ('none') of (N, C, K) ``x`` against the same samples as rows."""
    N, C, K = x.shape
    kw = {"reduction": "none", "ignore_index": ignore_index}
    loss, grad = nbxent.cross_entropy_with_grad(x, t, **kw)
    rows = np.ascontiguousarray(np.moveaxis(x, 1, -1).reshape(N * K, C))
    tt = t.reshape(-1)
    r_loss, r_grad = nbxent.cross_entropy_with_grad(rows, tt, **kw)
    dt = x.dtype
    scale, lse = ce_scales(rows, tt, ignore_index=ignore_index)
    assert_close(loss.reshape(-1), r_loss, K_VALUE * u(dt) * scale, "spatial vs rows loss")
    g_sp = np.moveaxis(grad, 1, -1).reshape(N * K, C).astype(np.float64)
    # p_j carries exp's condition number |x_j| + |lse|; the target element also holds -1
    # (its p_t - 1 is formed from the sums); ignored samples are exactly +0.0 on both paths
    x64 = rows.astype(np.float64)
    p = np.exp(x64 - lse[:, None])
    tol = K_GRAD * u(dt) * (p * (1 + np.abs(x64) + np.abs(lse)[:, None]) + p)
    valid = tt != ignore_index
    tol[np.flatnonzero(valid), tt[valid]] += K_GRAD * u(dt)
    tol[~valid] = 0.0
    assert_close(g_sp, r_grad, tol, "spatial vs rows gradient")
    return loss, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [1, 2, 3, 21])
@pytest.mark.parametrize("K", [5, KBLOCK + 3])
def test_spatial_matches_rows(dtype, C, K):
    rng = np.random.default_rng(C * 1000 + K)
    N = 3
    x = (rng.standard_normal((N, C, K)) * 3).astype(dtype)
    t = rng.integers(0, C, (N, K))
    t[:, ::7] = -100
    loss, grad = _spatial_vs_rows(x, t, -100)
    x_in = x.copy()
    loss_in, grad_in = nbxent.cross_entropy_with_grad(x_in, t, out=x_in, reduction="none")
    assert loss_in.tobytes() == loss.tobytes() and grad_in.tobytes() == grad.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ignore_index_inside_the_classes(dtype):
    # every position whose target is 1 is ignored; class 1 still counts in every sum
    rng = np.random.default_rng(3)
    N, C, K = 2, 5, KBLOCK + 40
    x = (rng.standard_normal((N, C, K)) * 3).astype(dtype)
    t = rng.integers(0, C, (N, K))
    loss, grad = _spatial_vs_rows(x, t, 1)
    ign = t == 1
    assert ign.any() and not ign.all()
    assert np.all(loss[ign] == 0.0) and np.all(np.moveaxis(grad, 1, -1)[ign] == 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ignore_index_beyond_int32(dtype):
    # 2**32 + 3 truncates to class 3 in int32: targets of class 3 must stay valid, and the
    # result must be that of the same positions ignored through -100
    rng = np.random.default_rng(4)
    N, C, K = 2, 6, KBLOCK + 17
    x = (rng.standard_normal((N, C, K)) * 3).astype(dtype)
    t = rng.integers(0, C, (N, K))
    t[:, ::5] = -100
    big = 2**32 + 3
    t_big = np.where(t == -100, big, t)
    assert np.any(t == 3)
    loss, grad = nbxent.cross_entropy_with_grad(x, t, reduction="none")
    loss_b, grad_b = _spatial_vs_rows(x, t_big, big)
    assert loss_b.tobytes() == loss.tobytes() and grad_b.tobytes() == grad.tobytes()
