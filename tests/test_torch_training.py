"""A small training loop: nbxent.torch.cross_entropy gives torch.nn.functional's loss curve.

An MLP (16 -> 32 -> 5, tanh) on seeded synthetic data, full-batch SGD with momentum,
300 steps, in float64 and float32; the same model, data and optimiser are run once with
each loss. The curves may differ by

    bound_k = 2 * T_k  +  2 * sqrt(n * (k + 1)) * R_k

* ``T_k``: the harness's value tolerance (conformance.tolerances) for the step's logits:
  each implementation's loss is within ``T_k`` of the exact loss of the logits it is given,
  so two correct ones are within ``2 T_k`` (this is the whole difference at step 0, where
  the parameters are identical).
* Later steps also differ because the parameters drift apart: the two losses' gradients
  w.r.t. the logits differ by at most twice the harness's gradient tolerance per element.
  ``R_k`` is this trajectory's measured response to such a difference: torch's own loop is
  rerun with the tolerance added to its logit gradient at every step with a random sign,
  and ``R_k = max_{j <= k} |L_perturbed(j) - L_torch(j)|``. The response is linear at this
  size; a worst-case (sign-aligned) error is larger than a random-sign one by a factor of
  about ``sqrt(n)`` per step over the ``n = N*C`` gradient elements (an aligned sum of n
  terms against a random walk of them) and ``sqrt(k + 1)`` over the steps, and twice for
  the two implementations.

Measured with these seeds (torch 2.13 CPU): float64 max |dL| 4.4e-16 (at step 0: one
rounding of a loss of 2.03; ~1e-17 once training has converged to L ~ 4e-3), float32
1.2e-7 (step 0), ~7e-9 later.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nbxent.torch as nt
from conformance.model import Case
from conformance.tolerances import tolerance

N, D, H, C = 256, 16, 32, 5
STEPS = 300


@pytest.fixture(autouse=True)
def one_torch_thread():
    # torch's intra-op threads contend with the shared cores (16 ms instead of 0.1 ms per
    # call); the loop's answers do not depend on the thread count at these sizes.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data():
    g = torch.Generator().manual_seed(20261203)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    w_true = torch.randn(D, C, generator=g, dtype=torch.float64)
    y = (X @ w_true + 0.5 * torch.randn(N, C, generator=g, dtype=torch.float64)).argmax(1)
    init = [torch.randn(s, generator=g, dtype=torch.float64) * 0.3
            for s in [(H, D), (H,), (C, H), (C,)]]
    return X, y, init


def _train(loss_fn, dtype, grad_noise_seed=None):
    """(loss curve, logits of every step) of one seeded run."""
    X, y, init = _data()
    model = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.Tanh(), torch.nn.Linear(H, C))
    with torch.no_grad():
        for p, v in zip(model.parameters(), init):
            p.copy_(v)
    model = model.to(dtype)
    X = X.to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    signs = torch.Generator().manual_seed(grad_noise_seed) if grad_noise_seed is not None else None
    curve, logits_seen = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        logits = model(X)
        if signs is not None:
            tol = torch.from_numpy(_grad_tolerance(logits.detach(), y)).to(dtype)
            s = torch.randint(0, 2, logits.shape, generator=signs).to(dtype) * 2 - 1
            logits.register_hook(lambda g, d=tol * s: g + d)
        loss = loss_fn(logits, y)
        loss.backward()
        opt.step()
        curve.append(loss.item())
        logits_seen.append(logits.detach())
    return np.array(curve), logits_seen, y


def _case(logits, y, grad=False):
    arrays = {"input": logits.numpy(), "target": y.numpy()}
    if grad:
        arrays["grad_output"] = np.array(1.0, dtype=logits.numpy().dtype)
    return Case("cross_entropy", arrays, {"reduction": "mean"})


def _dtype_name(t):
    return str(t.dtype).removeprefix("torch.")


def _grad_tolerance(logits, y):
    return tolerance(_case(logits, y, grad=True), "grad", _dtype_name(logits))[0]


def _torch_curve_and_bound(dtype):
    """torch's curve, the bound of the module docstring per step, and 2*T_0."""
    theirs, logits, y = _train(F.cross_entropy, dtype)
    perturbed, _, _ = _train(F.cross_entropy, dtype, grad_noise_seed=7)
    T = np.array([float(tolerance(_case(lg, y), "value", _dtype_name(lg))[0]) for lg in logits])
    R = np.maximum.accumulate(np.abs(perturbed - theirs))
    bound = 2 * T + 2 * np.sqrt(N * C * (np.arange(STEPS) + 1)) * R
    return theirs, bound, 2 * T[0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_training_curve_matches_torch(dtype):
    ours, _, _ = _train(nt.cross_entropy, dtype)
    theirs, bound, step0 = _torch_curve_and_bound(dtype)
    assert theirs[-1] < 0.05 * theirs[0], "the loop must actually train"
    diff = np.abs(ours - theirs)
    worst = int(np.argmax(diff / bound))
    assert (diff <= bound).all(), (
        f"{dtype}: {int((diff > bound).sum())} of {STEPS} steps beyond the bound; worst step "
        f"{worst}: |dL| = {diff[worst]:.3g} > {bound[worst]:.3g} (loss {theirs[worst]:.6g})")
    # at step 0 the parameters are identical: the value tolerance alone applies
    assert diff[0] <= step0


def test_the_curve_check_detects_a_wrong_gradient():
    # a gradient 1% too large (a rounding-free scaling bug) moves the curve beyond the bound
    def scaled(logits, y):
        logits.register_hook(lambda g: g * 1.01)
        return nt.cross_entropy(logits, y)

    ours, _, _ = _train(scaled, torch.float32)
    theirs, bound, _ = _torch_curve_and_bound(torch.float32)
    assert (np.abs(ours - theirs) > bound).any()
