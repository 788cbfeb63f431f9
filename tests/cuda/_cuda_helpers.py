"""Oracles and the one comparison helper of the CUDA tests.

The oracle is torch float64 autograd on the same (upcast) values; tolerances are
derived from the compared dtype's epsilon and the scale of the terms that were
combined (policy in :func:`tol`), never a flat "generous" number.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EPS = {np.dtype(np.float16): float(np.finfo(np.float32).eps),  # float16 is computed in float32
       np.dtype(np.float32): float(np.finfo(np.float32).eps),
       np.dtype(np.float64): float(np.finfo(np.float64).eps)}


def tol(dtype, scale, ulps=8.0):
    """Absolute tolerance ``ulps * eps(dtype) * scale``.

    ``scale`` is the magnitude of the terms the kernel combined (e.g. ``1 + max|x|``
    for a log-sum-exp, the sum of |terms| for a reduction); 8 ulps covers the
    handful of roundings in one formula (shift, exp, sum, log1p, product) and
    the float64 tree sum across blocks, whose error is far below float32's.
    """
    return ulps * EPS[np.dtype(dtype)] * np.asarray(scale, dtype=np.float64)


def host(a):
    """A result as a NumPy array (device arrays are copied back)."""
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    return np.asarray(a)


def assert_close(name, got, want, atol):
    """Elementwise |got - want| <= atol, NaN where NaN, equal infinities; says where and how bad."""
    got = np.asarray(host(got), dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), want.shape)
    nan_bad = np.isnan(got) != np.isnan(want)
    inf_bad = (np.isinf(want) | np.isinf(got)) & ~(got == want) & ~np.isnan(want)
    fin = np.isfinite(want) & np.isfinite(got)
    with np.errstate(invalid="ignore"):
        err = np.where(fin, np.abs(got - want), 0.0)
    bad = nan_bad | inf_bad | (err > atol)
    if bad.any():
        idx = np.argwhere(bad)[:5].tolist() if bad.ndim else [()]
        worst = np.unravel_index(np.argmax(err - atol), err.shape) if err.ndim else ()
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.size} bad; max abs err {err.max():.3e} at {worst} "
            f"(tol there {atol[worst]:.3e}); first bad {idx}; got {got[tuple(idx[0])]!r} "
            f"want {want[tuple(idx[0])]!r}")


def torch_ce(x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
             nll=False, g=None):
    """torch float64 loss and input (and probability-target) gradients."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    prob = np.asarray(t).shape == np.asarray(x).shape
    tt = torch.tensor(np.asarray(t, dtype=np.float64), requires_grad=True) if prob else torch.tensor(
        np.asarray(t, dtype=np.int64))
    w = None if weight is None else torch.tensor(np.asarray(weight, dtype=np.float64))
    if nll:
        loss = F.nll_loss(xt, tt, weight=w, ignore_index=ignore_index, reduction=reduction)
    else:
        loss = F.cross_entropy(xt, tt, weight=w, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing)
    gg = torch.ones_like(loss) if g is None else torch.tensor(np.asarray(g, dtype=np.float64))
    loss.backward(gg)
    gt = tt.grad.numpy() if prob else None
    return loss.detach().numpy(), xt.grad.numpy(), gt


def torch_bce(x, y, weight=None, reduction="mean", pos_weight=None, logits=False, g=None):
    """torch float64 loss and input/target gradients of BCE / BCE-with-logits."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    yt = torch.tensor(np.asarray(y, dtype=np.float64), requires_grad=True)
    w = None if weight is None else torch.tensor(np.asarray(weight, dtype=np.float64))
    if logits:
        pw = None if pos_weight is None else torch.tensor(np.asarray(pos_weight, dtype=np.float64))
        loss = F.binary_cross_entropy_with_logits(xt, yt, weight=w, reduction=reduction,
                                                  pos_weight=pw)
    else:
        loss = F.binary_cross_entropy(xt, yt, weight=w, reduction=reduction)
    gg = torch.ones_like(loss) if g is None else torch.tensor(np.asarray(g, dtype=np.float64))
    loss.backward(gg)
    return loss.detach().numpy(), xt.grad.numpy(), yt.grad.numpy()
