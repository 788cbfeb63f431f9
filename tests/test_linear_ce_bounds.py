"""Float64 reference and derived error bounds for linear_cross_entropy (and their own tests).

The reference materialises the logits in float64 from the candidate's own inputs and runs
nbxent's cross_entropy on them; the bounds say how far any correct evaluation in the
candidate's dtype may be from it. Notation: ``u`` is the unit roundoff of the dtype the
GEMMs run in (float32 for float16 input), ``gamma(n) = n u / (1 - n u)`` Higham's bound
for a dot product / sum of n terms (componentwise: ``|fl(A B) - A B| <= gamma(K) |A| |B|``,
whatever the blocking, chunking or summation order).

Per logit row ``r`` (a sample, or a (sample, position) pair of a K-dimensional loss) with
logits ``z`` and loss ``l_r = sum_j c_rj (lse_r - z_rj)`` (``c`` = the target's weighted
coefficients: ``(1-eps) w_t [j=t] + eps/C w_j``, or ``w_j q_j`` for probabilities):

* logits: ``|dz_rj| <= gamma(H+1) * a_rj`` with ``a_rj = sum_k |h_k W_jk| + |b_j|``;
  ``alpha_r = max_j a_rj``. Each ``lse - z_j`` moves by at most ``2 gamma(H+1) alpha_r``.
* the cross-entropy on the rounded logits: ``K u`` per unit of ``|lse| + |z_j|`` (and of
  ``1 + |z_j| + |lse|`` for ``p_j``, the condition number of exp), K = 16 as in
  tests/ce_support.py (about 8 dependent roundings, twice over for headroom).
* loss: ``dl_r <= sum_j |c_rj| (2 gamma(H+1) alpha_r + K u (|lse_r| + |z_rj|))``, plus one
  rounding of each per-sample value and of the result (``u |l|``); 'mean' divides by |W|.
* logit gradient ``G = A p - c`` (``A = sum_j c_j``): ``dG <= |A| p (2 gamma(H+1) alpha +
  K u (1 + |z| + |lse|)) + K u |c|`` (softmax: ``dp_j = p_j (dz_j - sum_k p_k dz_k)``).
* ``grad_input = s G @ W``: ``s (dG @ |W| + gamma(V) |G| @ |W|) + 2 u |result|`` (the second
  rounding: the scale ``s = 1/W``); ``grad_weight = s G.T @ h``: the same with
  ``gamma(N)`` over the rows (any split into chunks is one summation order of N terms);
  ``grad_bias``: ``s (sum dG + gamma(N) sum |G|)``.

The float64 reference commits the same kind of error with u = 2**-53: the tolerance is the
candidate's bound plus the reference's. float16 results add one rounding to half.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import nbxent
from conformance.compare import compare

K = 16


def u(dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


def gamma(n, uu):
    return n * uu / (1 - n * uu)


def _rows(a, C, D):
    """(n, C*D) logits-like array -> (n*D, C) rows of classes."""
    n = a.shape[0]
    return a.reshape(n, C, D).transpose(0, 2, 1).reshape(n * D, C)


def _unrows(a, n, C, D):
    return a.reshape(n, D, C).transpose(0, 2, 1).reshape(n, C * D)


def reference(h, W, target, *, linear_bias=None, weight=None, reduction="mean",
              ignore_index=None, label_smoothing=0.0):
    """Float64 loss and gradients from materialised logits, plus what the bounds need."""
    h2 = np.asarray(h, np.float64).reshape(-1, h.shape[-1])
    n, H = h2.shape
    C = W.shape[0]
    out_features = W.shape[1:-1]
    D = int(np.prod(out_features))
    W2 = np.asarray(W, np.float64).reshape(C * D, H)
    b2 = np.zeros(C * D) if linear_bias is None else np.asarray(linear_bias, np.float64).reshape(-1)
    z = h2 @ W2.T + b2
    prob = target.shape == ((C,) if h.ndim == 1 else (n, C)) + out_features
    ii = -100 if ignore_index is None else ignore_index
    tgt = np.asarray(target).reshape((n, C) + out_features if prob else (n,) + out_features)
    zr = z.reshape((n, C) + out_features)
    per, G = nbxent.cross_entropy_with_grad(zr, tgt, weight, ii, "none", label_smoothing)
    per = per.reshape(-1)
    G = G.reshape(n, C * D)
    # coefficients c (rows of classes) of l_r = sum_j c_rj (lse_r - z_rj)
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    eps = label_smoothing if label_smoothing > 0 else 0.0
    if prob:
        q = _rows(tgt.reshape(n, C * D).astype(np.float64), C, D)
        q = (1 - eps) * q + eps / C if eps > 0 else q
        c = w[None, :] * q
        denom = float(n * D)
    else:
        t = tgt.reshape(-1).astype(np.int64)
        valid = t != ii
        c = np.zeros((n * D, C))
        rows = np.flatnonzero(valid)
        c[rows, t[rows]] = (1 - eps) * w[t[rows]]
        c[valid] += (eps / C) * w[None, :]
        denom = float(np.sum(w[np.where(valid, t, 0)] * valid))
    zrows = _rows(z, C, D)
    lse = logsumexp(zrows, axis=1, keepdims=True)
    p = np.exp(zrows - lse)
    with np.errstate(all="ignore"):
        s = 1.0 / denom if reduction == "mean" else 1.0
        if reduction == "none":
            loss = per.reshape(() if h.ndim == 1 else (n,) + out_features)
        elif reduction == "sum":
            loss = np.asarray(per.sum())
        else:
            loss = np.asarray(per.sum() / denom)
        gh = s * (G @ W2)
        gW = s * (G.T @ h2)
        gb = s * G.sum(axis=0)
    a = np.abs(h2) @ np.abs(W2).T + np.abs(b2)
    return dict(loss=loss, grad_input=gh.reshape(h.shape), grad_weight=gW.reshape(W.shape),
                grad_bias=gb.reshape((C,) + out_features), per=per, G=G, c=c, p=p, lse=lse,
                zrows=zrows, alpha=_rows(a, C, D).max(axis=1, keepdims=True) if C else a[:, :1],
                h2=h2, W2=W2, s=s, denom=denom, reduction=reduction, n=n, C=C, D=D, H=H,
                unbatched=h.ndim == 1)


def _bounds_one(ref, uu):
    n, C, D, H = ref["n"], ref["C"], ref["D"], ref["H"]
    c, p, lse, z, alpha = np.abs(ref["c"]), ref["p"], np.abs(ref["lse"]), ref["zrows"], ref["alpha"]
    with np.errstate(all="ignore"):
        dlog = 2 * gamma(H + 1, uu) * alpha
        dl = (c * (dlog + K * uu * (lse + np.abs(z)))).sum(axis=1)
        A = c.sum(axis=1, keepdims=True)
        dG = A * p * (dlog + K * uu * (1 + np.abs(z) + lse)) + K * uu * c
    dl, dG = np.nan_to_num(dl), np.nan_to_num(dG)
    dG = _unrows(dG, n, C, D)
    aG = np.abs(ref["G"])
    s = abs(ref["s"]) if np.isfinite(ref["s"]) else 0.0
    per = np.abs(ref["per"])
    red = ref["reduction"]
    if red == "none":
        tl = (dl + uu * per).reshape(ref["loss"].shape)
    elif red == "sum":
        tl = dl.sum() + uu * per.sum() + uu * abs(float(ref["loss"]))
    else:
        tl = s * (dl.sum() + uu * per.sum()) + 2 * uu * abs(float(np.nan_to_num(ref["loss"])))
    aW, ah = np.abs(ref["W2"]), np.abs(ref["h2"])
    th = s * (dG @ aW + gamma(C * D, uu) * aG @ aW)
    tw = s * (dG.T @ ah + gamma(n, uu) * aG.T @ ah)
    tb = s * (dG.sum(axis=0) + gamma(n, uu) * aG.sum(axis=0))
    return dict(loss=np.asarray(tl), grad_input=th, grad_weight=tw, grad_bias=tb)


def tolerances(ref, dtype):
    """Per-element tolerance of each output for a candidate computing in ``dtype``."""
    dt = np.dtype(dtype)
    compute = np.float32 if dt == np.float16 else dt
    cand = _bounds_one(ref, u(compute))
    own = _bounds_one(ref, u(np.float64))
    out = {}
    for k in cand:
        want = np.nan_to_num(np.abs(ref[k]))
        t = (cand[k] + own[k]).reshape(np.shape(ref[k]))
        t = t + 2 * u(compute) * want   # the scale s (two roundings) and the final rounding
        if dt == np.float16:
            t = t + u(np.float16) * want + float(np.finfo(np.float16).smallest_subnormal)
        out[k] = t
    return out


NAMES = ("loss", "grad_input", "grad_weight", "grad_bias")


def check(got, ref, dtype, what="", tol=None):
    """Assert each of ``got`` (loss, grad_input, grad_weight, grad_bias) is within its bound."""
    tol = tolerances(ref, dtype) if tol is None else tol
    for name, g in zip(NAMES, got):
        if g is None:
            continue
        g = np.asarray(g)
        assert g.shape == np.shape(ref[name]), f"{what} {name}: shape {g.shape} != {np.shape(ref[name])}"
        assert g.dtype == np.dtype(dtype) or name == "loss", f"{what} {name}: dtype {g.dtype}"
        cmp = compare(g, ref[name], tol[name], dtype, "derived bound (test_linear_ce_bounds)")
        assert cmp.pattern_ok, f"{what} {name}: NaN/inf pattern differs: {cmp.pattern_examples}"
        assert cmp.value_ok, f"{what} {name}: {cmp.measure}"


# --------------------------------------------------------------- tests of the bounds themselves

def _case(dtype, seed=0, N=24, H=16, V=40):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, H)).astype(dtype)
    W = (rng.standard_normal((V, H)) / np.sqrt(H)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    t = rng.integers(0, V, N)
    t[::5] = -100
    return h, W, b, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_accepts_the_candidate_and_rejects_a_perturbation(dtype):
    h, W, b, t = _case(dtype)
    ref = reference(h, W, t, linear_bias=b, reduction="sum")
    got = nbxent.linear_cross_entropy_with_grad(h, W, t, linear_bias=b, reduction="sum",
                                                chunk_size=5)
    check(got, ref, dtype, "candidate")
    tol = tolerances(ref, dtype)
    # not vacuous: the bound is far below the size of the values it guards (a wrong formula
    # term is O(1) relative), and a relative error of 1e3 u in one element is caught
    for name in NAMES:
        scale = np.abs(ref[name]).max()
        assert np.max(tol[name]) < 1e-2 * scale, (name, np.max(tol[name]), scale)
    bad = np.array(got[1], copy=True)
    bad[3, 2] += 1e3 * u(dtype) * max(abs(bad[3, 2]), 1.0) + 10 * tol["grad_input"][3, 2]
    with pytest.raises(AssertionError, match="grad_input"):
        check((None, bad, None, None), ref, dtype, "perturbed")


def test_ignored_rows_must_be_exact_zeros():
    h, W, b, t = _case(np.float32)
    ref = reference(h, W, t, linear_bias=b)
    tol = tolerances(ref, np.float32)
    assert np.all(tol["grad_input"][t == -100] == 0)
    bad = np.array(ref["grad_input"], dtype=np.float32)
    bad[0] = 1e-30   # row 0 is ignored
    with pytest.raises(AssertionError, match="grad_input"):
        check((None, bad, None, None), ref, np.float32, "ignored row")
