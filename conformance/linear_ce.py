"""linear_cross_entropy in the harness: cases, torch's errors, tolerance units and the oracles.

The loss is ``cross_entropy(input @ linear_weight.T + linear_bias, target, weight, ...)``
(torch 2.13 ``F.linear_cross_entropy``, its reference path; docs/linear.md). Every entry
point reduces it to the cross_entropy machinery on the materialised logits:

* float64 oracle: the logits formed in float64, then the cross_entropy float64 reference
  (conformance/oracles/scipy_ref.py) on them;
* exact oracle: the logits formed exactly in mpmath (a product of two doubles has 106 bits,
  a sum of a few such products fits in 50 digits), then the loss at 50 digits;
* torch oracle: ``F.linear_cross_entropy`` itself in float64 (conformance/oracles/torch_ref.py);
* tolerance units: cross_entropy's units at the exact logits plus the GEMM's term below.

The GEMM's term. A logit ``z_j = sum_k h_k W_jk + b_j`` formed in a dtype of unit roundoff
``u`` by any summation order (a dot product of ``H`` terms, the bias add, and one rounding
to the storage dtype when the accumulator is wider) has

    |dz_j| <= gamma(H + 2) * A_j,   A_j = sum_k |h_k W_jk| + |b_j|,   gamma(n) = n u / (1 - n u)

(Higham, Accuracy and Stability, Lemma 3.1 and eq. 3.5). A per-sample loss is
``l = sum_j c_j (lse - z_j)`` with ``c_j = (1 - eps) w_t [j = t] + (eps / C) w_j``; since
``lse`` is a softmax-weighted mean of the logits, ``|d lse| <= max_j |dz_j|``, so

    |dl| <= 2 * max_j |dz_j| * sum_j |c_j|.

That is added to Q (bounds taken at face value, ``k_sum = 1``), in units of ``eps = 2u``:
``gamma(n) / eps = n / (2 (1 - n u))``, with ``u = 2**-11`` (float16's, the largest tested)
in the denominator so one number serves every dtype. The reduction sums these terms and the
'mean' divides them by ``|sum w_t|``, as for the rest of Q. Ignored samples add nothing.
"""
from __future__ import annotations

import mpmath
import numpy as np
from hypothesis import strategies as st

from conformance import tolerances
from conformance.model import Case
from conformance.oracles import mpmath_ref, scipy_ref, validate
from conformance.strategies import _reduction, _scales, rare

#: The largest unit roundoff tested (float16), used in gamma's denominator.
U_MAX = 2.0 ** -11


# ---- cases ----------------------------------------------------------------------------------

@st.composite
def linear_case(draw, loss: str, f) -> Case:
    """A linear_cross_entropy case on tiny shapes; every option off when hypothesis shrinks it."""
    dtype = draw(st.sampled_from(f.dtypes))
    N, H, C = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 8))
    unbatched = f.has("unbatched") and rare(draw, 8)          # input (H,), target () or (C,)
    prob = f.has("prob_target") and rare(draw, 5)             # target: probabilities of the logits' shape
    if f.has("empty") and not unbatched and rare(draw, 12):
        N = 0
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from(_scales(dtype, [1.0, 0.1, 4.0, 30.0])))
    rows = () if unbatched else (N,)
    arrays = {"input": (rng.standard_normal(rows + (H,)) * scale).astype(dtype),
              "linear_weight": rng.standard_normal((C, H)).astype(dtype)}
    if prob:
        t = rng.dirichlet(np.ones(C), size=rows or None).astype(dtype) if C else np.zeros(rows + (0,), dtype)
    else:
        t = rng.integers(0, C, size=rows).astype(np.int64)
    kw: dict = {}
    if f.has("linear_bias") and draw(st.booleans()):
        arrays["linear_bias"] = rng.standard_normal(C).astype(dtype)
    if f.has("weight") and draw(st.booleans()):
        arrays["weight"] = rng.uniform(0.0, 2.0, C).astype(dtype)
    # with probabilities torch rejects any explicit ignore_index (docs/linear.md): an error case
    if f.has("ignore_index") and (not prob or f.has("errors") and rare(draw, 4)) and draw(st.booleans()):
        ii = draw(st.sampled_from([-100, -1, int(rng.integers(0, C))]))
        kw["ignore_index"] = ii
        if not prob:
            t[rng.random(rows) < 0.3] = ii
    if f.has("label_smoothing") and draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.1, 0.25, 1.0]))
    _reduction(draw, f, kw)
    if f.has("errors") and rare(draw, 12):
        bad = draw(st.sampled_from(["target_out_of_range", "in_features", "batch"]))
        if bad == "target_out_of_range" and N and not prob:
            t[(0,) * t.ndim] = C
        elif bad == "in_features":
            arrays["linear_weight"] = rng.standard_normal((C, H + 1)).astype(dtype)
        elif bad == "batch" and not unbatched:
            t = np.concatenate([t, t[:1] if N else np.zeros((1,) + t.shape[1:], t.dtype)]).astype(t.dtype)
    arrays["target"] = t
    if f.has("backward"):
        # the gradient protocol's upstream gradient is ones (linear_cross_entropy_with_grad: of loss.sum())
        red = kw.get("reduction", "mean")
        arrays["grad_output"] = np.ones(rows if red == "none" else (), dtype)
    return Case(loss, arrays, kw)


def catalogue(dtype: str):
    """Named cases: exact logits, a dominant bias, every target ignored, torch's errors; the valid
    ones with the gradient protocol's upstream ones (``grad_output``), so their gradients are checked."""
    for case in _catalogue(dtype):
        if case.expect_error is None:
            case.arrays["grad_output"] = np.ones(_out_shape(case.arrays, case.kwargs), dtype)
        yield case


def _catalogue(dtype: str):
    dt = np.dtype(dtype)
    h = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dt)
    W = np.array([[2.0, 0.0], [0.0, 0.0], [-1.0, 1.0]], dt)
    t = np.array([0, 1, 2])
    yield Case("linear_cross_entropy", {"input": h, "linear_weight": W, "target": t}, {"reduction": "none"},
               origin="lce_exact_logits", reason="small-integer products: the logits are exact in every dtype")
    yield Case("linear_cross_entropy", {"input": h, "linear_weight": W, "target": t,
                                        "linear_bias": np.array([0.0, 0.0, 40.0], dt)}, {"reduction": "sum"},
               origin="lce_bias_dominates", reason="a bias that decides the argmax: a candidate ignoring it fails")
    yield Case("linear_cross_entropy", {"input": h, "linear_weight": W, "target": np.full(3, -100)},
               {"reduction": "mean", "ignore_index": -100}, origin="lce_all_ignored",
               reason="docs/linear.md: every target ignored, 'mean' is NaN (0/0)")
    rng = np.random.default_rng(12)
    hr, Wr = rng.standard_normal((4, 5)).astype(dt), rng.standard_normal((6, 5)).astype(dt)
    tr = np.array([0, 5, 2, 2])
    wr = np.array([0.5, 1.0, 2.0, 0.25, 1.5, 1.0], dt)
    yield Case("linear_cross_entropy", {"input": hr, "linear_weight": Wr, "target": tr, "weight": wr},
               {"reduction": "mean", "label_smoothing": 0.1}, origin="lce_weighted_smoothed_mean",
               reason="docs/linear.md: weighted mean with smoothing divides by sum w[t]")
    yield Case("linear_cross_entropy", {"input": hr, "linear_weight": Wr, "target": np.array([0, 5, -1, 2])},
               {"reduction": "none", "ignore_index": -1}, origin="lce_ignored_row",
               reason="an ignored sample's 'none' loss is exactly 0")
    yield Case("linear_cross_entropy", {"input": hr * dt.type(30), "linear_weight": Wr, "target": tr},
               {"reduction": "sum"}, origin="lce_large_logits",
               reason="logits of size ~100: the GEMM's absolute error dominates the tolerance")
    yield Case("linear_cross_entropy", {"input": hr, "linear_weight": Wr[:1], "target": np.zeros(4, np.int64)},
               {"reduction": "mean", "ignore_index": 3}, origin="lce_one_class",
               reason="C = 1: every loss is exactly 0")
    yield Case("linear_cross_entropy", {"input": h, "linear_weight": np.ones((3, 3), dt), "target": t}, {},
               origin="lce_err_in_features", reason="docs/linear.md: H mismatch raises RuntimeError",
               expect_error="RuntimeError")
    yield Case("linear_cross_entropy", {"input": h, "linear_weight": W, "target": np.array([0, 1, 5])}, {},
               origin="lce_err_target_range", reason="docs/linear.md: target out of range raises IndexError",
               expect_error="IndexError")


def expected_error(loss: str, arrays: dict, kwargs: dict) -> str | None:
    """The exception type torch 2.13's ``F.linear_cross_entropy`` raises, or None (docs/linear.md)."""
    x, W, t = arrays["input"], arrays["linear_weight"], np.asarray(arrays["target"])
    b = arrays.get("linear_bias")
    if x.ndim not in (1, 2) or W.ndim < 2 or x.shape[-1] != W.shape[-1] or x.dtype != W.dtype:
        return "RuntimeError"
    if b is not None and (b.shape != W.shape[:-1] or b.dtype != x.dtype):
        return "RuntimeError"
    if not np.issubdtype(t.dtype, np.floating) and t.dtype not in (np.int64, np.uint8):
        return "RuntimeError"                          # "expected target dtype to be Long or Byte"
    if np.issubdtype(t.dtype, np.floating) and kwargs.get("ignore_index") is not None:
        return "RuntimeError"      # "ignore_index cannot be specified when target contains probabilities"
    ce = {"input": np.zeros(_logit_shape(x, W), x.dtype), "target": t.astype(np.int64, copy=False)
          if t.dtype == np.uint8 else t}
    if "weight" in arrays:
        ce["weight"] = arrays["weight"]
    return validate.class_error("cross_entropy", ce, kwargs)


# ---- logits ---------------------------------------------------------------------------------

def _logit_shape(x, W) -> tuple[int, ...]:
    return x.shape[:-1] + W.shape[:-1]


def logits64(arrays: dict) -> np.ndarray:
    """The logits in float64, shaped as torch shapes them (``(N, C)`` or ``(C,)``)."""
    x = np.asarray(arrays["input"], np.float64)
    W = np.asarray(arrays["linear_weight"], np.float64)
    z = x @ W.reshape(-1, W.shape[-1]).T
    if "linear_bias" in arrays:
        z = z + np.asarray(arrays["linear_bias"], np.float64).reshape(-1)
    return z.reshape(_logit_shape(x, W))


def _ce_arrays(arrays: dict, z) -> dict:
    out = {"input": z, "target": arrays["target"]}
    if "weight" in arrays:
        out["weight"] = arrays["weight"]
    return out


# ---- oracles --------------------------------------------------------------------------------

def float64_loss(loss, arrays, kwargs, want_grad):
    """(value, packed gradients or None, result dtype): cross_entropy's float64 reference on float64
    logits; the gradients (:func:`pack`) from its logit gradient ``G`` with upstream ones."""
    with np.errstate(all="ignore"):
        value, _, _ = scipy_ref.class_loss("cross_entropy", _ce_arrays(arrays, logits64(arrays)), kwargs, False)
        grad = None
        if want_grad:
            G = logit_grad(arrays, kwargs)
            grad = pack(*linear_grads(arrays, G))
    return value, grad, str(arrays["input"].dtype)


# ---- gradients --------------------------------------------------------------------------------
# The gradient protocol (docs/candidates.md): ``linear_cross_entropy_with_grad(...)`` returns
# ``(loss, grad_input, grad_linear_weight, grad_linear_bias or None)``, the gradients of
# ``loss.sum()`` (upstream ones, as ``nbxent.linear_cross_entropy_with_grad``). The harness
# judges them as one array: :func:`pack` of the three (the bias's only when there is one).

def _out_shape(arrays, kwargs):
    x = arrays["input"]
    return x.shape[:-1] if kwargs.get("reduction", "mean") == "none" else ()


def logit_grad(arrays, kwargs) -> np.ndarray:
    """d loss.sum() / d logits in float64, shaped as the logits (cross_entropy's float64 reference)."""
    ce = _ce_arrays(arrays, logits64(arrays))
    ce["grad_output"] = np.ones(_out_shape(arrays, kwargs))
    with np.errstate(all="ignore"):
        _, G, _ = scipy_ref.class_loss("cross_entropy", ce, kwargs, True)
    return np.asarray(G, np.float64)


def linear_grads(arrays, G):
    """(grad_input, grad_linear_weight, grad_linear_bias or None) from the logit gradient ``G``:
    ``G @ W``, ``G.T @ input``, ``G.sum(0)`` (float64, NaN propagating as in torch's GEMMs)."""
    x = np.asarray(arrays["input"], np.float64)
    W = np.asarray(arrays["linear_weight"], np.float64)
    G2, x2 = G.reshape(-1, W.shape[0]), x.reshape(-1, W.shape[-1])
    gi = (G2 @ W).reshape(x.shape)
    gW = G2.T @ x2
    gb = G2.sum(axis=0) if "linear_bias" in arrays else None
    return gi, gW, gb


def pack(gi, gW, gb=None) -> np.ndarray:
    """The gradients as the harness compares them: raveled and concatenated, input's first."""
    parts = [np.asarray(g).ravel() for g in (gi, gW, gb) if g is not None]
    return np.concatenate(parts) if parts else np.zeros(0)


def packed_parts(arrays) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of each packed gradient, in order (for messages: which gradient an index is in)."""
    out = [("grad_input", arrays["input"].shape), ("grad_linear_weight", arrays["linear_weight"].shape)]
    if "linear_bias" in arrays:
        out.append(("grad_linear_bias", arrays["linear_bias"].shape))
    return out


def exact_loss(loss, arrays, kwargs, want_grad):
    """(value, None) as mpf: exact logits, then the class-index loss at the working precision."""
    x, W = arrays["input"].astype(np.float64), arrays["linear_weight"].astype(np.float64)
    b = arrays.get("linear_bias")
    x2 = x.reshape(-1, x.shape[-1])
    C, H = W.shape[0], W.shape[-1]
    t = np.asarray(arrays["target"]).reshape(-1).astype(np.int64)
    ii = kwargs.get("ignore_index", -100)
    ii = -100 if ii is None else ii
    red = kwargs.get("reduction", "mean")
    eps = float(kwargs.get("label_smoothing", 0.0))
    eps = mpmath.mpf(eps) if eps > 0 else mpmath.mpf(0)
    w = [mpmath.mpf(1)] * C if "weight" not in arrays else [mpmath.mpf(float(v)) for v in arrays["weight"]]
    if np.issubdtype(np.asarray(arrays["target"]).dtype, np.floating):
        return _exact_prob(x2, W, b, np.asarray(arrays["target"], np.float64).reshape(-1, C), w, eps, red,
                           x.shape[:-1])
    per, denom = [], mpmath.mpf(0)
    for s in range(x2.shape[0]):
        if t[s] == ii:
            per.append(mpmath.mpf(0))
            continue
        z = [mpmath.fsum(mpmath.mpf(x2[s, k]) * mpmath.mpf(W[j, k]) for k in range(H))
             + (mpmath.mpf(float(b[j])) if b is not None else 0) for j in range(C)]
        lse = mpmath_ref._lse(z)
        loss_s = w[t[s]] * (lse - z[t[s]])
        if eps > 0:
            loss_s = (1 - eps) * loss_s + eps / C * mpmath.fsum(w[c] * (lse - z[c]) for c in range(C))
        per.append(loss_s)
        denom += w[t[s]]
    if red == "none":
        return np.array(per, dtype=object).reshape(np.shape(arrays["target"])), None
    total = mpmath.fsum(per)
    if red == "sum":
        return np.array(total, dtype=object), None
    # torch divides the nll and smoothing sums by W separately: W == 0 gives NaN (docs/semantics.md §0)
    return np.array(mpmath_ref.NAN if denom == 0 else total / denom, dtype=object), None


def _exact_logits(h, W, b):
    C, H = W.shape[0], W.shape[-1]
    return [mpmath.fsum(mpmath.mpf(h[k]) * mpmath.mpf(W[j, k]) for k in range(H))
            + (mpmath.mpf(float(b[j])) if b is not None else 0) for j in range(C)]


def _exact_prob(x2, W, b, q, w, eps, red, out_shape):
    """Probability targets: ``sum_c w_c q'_c (lse - z_c)``, ``q' = (1 - eps) q + eps/C``; 'mean' over
    the samples (docs/semantics.md §0: the probability mean divides by N, not by the weights)."""
    C = W.shape[0]
    per = []
    for s in range(x2.shape[0]):
        z = _exact_logits(x2[s], W, b)
        lse = mpmath_ref._lse(z)
        qs = [(1 - eps) * mpmath.mpf(q[s, c]) + eps / C if eps > 0 else mpmath.mpf(q[s, c]) for c in range(C)]
        per.append(mpmath.fsum(mpmath_ref._mul(w[c] * qs[c], lse - z[c]) for c in range(C)))
    if red == "none":
        return np.array(per, dtype=object).reshape(out_shape), None
    total = mpmath.fsum(per) if per else mpmath.mpf(0)
    if red == "sum":
        return np.array(total, dtype=object), None
    return np.array(mpmath_ref.NAN if not per else total / len(per), dtype=object), None


# ---- tolerance units ------------------------------------------------------------------------

def gamma_units(n: int) -> float:
    """``gamma(n) = n u / (1 - n u)`` in units of ``eps = 2u`` (module docstring)."""
    return n / (2.0 * (1.0 - n * U_MAX))


def gemm_units(case: Case) -> np.ndarray:
    """Per-sample bound of the loss error the logits' rounding causes, in eps, before reduction."""
    a = case.arrays
    x, W = np.abs(np.asarray(a["input"], np.float64)), np.abs(np.asarray(a["linear_weight"], np.float64))
    H, C = W.shape[-1], W.shape[0]
    A = x.reshape(-1, H) @ W.reshape(-1, H).T
    if "linear_bias" in a:
        A = A + np.abs(np.asarray(a["linear_bias"], np.float64)).reshape(-1)
    eps = float(case.kwargs.get("label_smoothing", 0.0))
    eps = eps if eps > 0 else 0.0
    w = np.ones(C) if "weight" not in a else np.abs(np.asarray(a["weight"], np.float64))
    if np.issubdtype(np.asarray(a["target"]).dtype, np.floating):
        # probabilities: c_j = w_j ((1 - eps) q_j + eps/C); the 'mean' divides by the sample count
        q = np.abs(np.asarray(a["target"], np.float64)).reshape(-1, C)
        csum = (w * ((1 - eps) * q + eps / max(C, 1))).sum(axis=1)
        wt = np.ones(q.shape[0])
    else:
        t = np.asarray(a["target"]).reshape(-1).astype(np.int64)
        ii = case.kwargs.get("ignore_index", -100)
        valid = t != (-100 if ii is None else ii)
        wt = np.where(valid, w[np.where(valid, t, 0)], 0.0) if C else np.zeros(t.shape)
        csum = np.where(valid, (1 - eps) * wt + eps / max(C, 1) * w.sum(), 0.0)
    dz = gamma_units(H + 2) * (A.max(axis=1) if A.size else np.zeros(A.shape[0]))
    return 2.0 * dz * csum, wt


def _coefficients(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the upstream factor ``g_s`` (1, or 1/W for 'mean'; 0 for an ignored row) and the target
    coefficients ``c_sj`` (``(1 - eps) w_t [j = t] + eps/C w_j``, or ``w_j q'_j``), float64 (S,), (S, C)."""
    a = case.arrays
    C = a["linear_weight"].shape[0]
    _, wt = gemm_units(case)
    eps = float(case.kwargs.get("label_smoothing", 0.0))
    eps = eps if eps > 0 else 0.0
    w = np.ones(C) if "weight" not in a else np.abs(np.asarray(a["weight"], np.float64))
    t = np.asarray(a["target"])
    if np.issubdtype(t.dtype, np.floating):
        c = w * ((1 - eps) * np.abs(t.astype(np.float64)).reshape(-1, C) + eps / max(C, 1))
        g = np.ones(c.shape[0])
    else:
        t = t.reshape(-1).astype(np.int64)
        ii = case.kwargs.get("ignore_index", -100)
        valid = t != (-100 if ii is None else ii)
        c = np.where(valid[:, None], eps / max(C, 1) * w, 0.0)
        r = np.flatnonzero(valid & (t >= 0) & (t < C))
        c[r, t[r]] += (1 - eps) * w[t[r]]
        g = valid.astype(np.float64)
    if case.kwargs.get("reduction", "mean") not in ("none", "sum"):
        d = abs(float(wt.sum()))
        g = g / d if d > 0 else g * 0.0
    return g, c


def grad_units(case: Case):
    """(E, Q) of the packed gradients (:func:`pack`), in eps.

    ``G``'s own units are cross_entropy's gradient units at the float64 logits, plus the logits'
    rounding: each ``lse - z_j`` moves by at most ``2 max_j |dz_j|``, so ``p_j`` by ``2 max|dz| p_j``
    to first order, and ``|dG_sj| <= 2 gamma(H+2) max_j A_sj |g_s B_s p_sj|`` with
    ``|g_s B_s p_sj| = |G_sj + g_s c_sj| <= |G_sj| + |g_s| c_sj``. Each gradient is then a
    product summing C (grad_input) or N (grad_linear_weight, grad_linear_bias) terms: its units
    are ``U_G @ |W|`` plus ``gamma(C + 1) |G| @ |W|`` (any summation order, one rounding to
    storage), and likewise with ``|input|`` and the sums over the samples.
    """
    a = case.arrays
    W = np.abs(np.asarray(a["linear_weight"], np.float64))
    H, C = W.shape[-1], W.shape[0]
    x2 = np.abs(np.asarray(a["input"], np.float64)).reshape(-1, H)
    z = logits64(a)
    ce = _ce_arrays(a, z)
    ce["grad_output"] = np.ones(_out_shape(a, case.kwargs))
    Eg, Qg = tolerances.class_units(Case("cross_entropy", ce, case.kwargs), "grad")
    S = x2.shape[0]
    Eg, Qg = np.asarray(Eg, np.float64).reshape(S, C), np.asarray(Qg, np.float64).reshape(S, C)
    G = np.abs(logit_grad(a, case.kwargs)).reshape(S, C)
    A = x2 @ W.T
    if "linear_bias" in a:
        A = A + np.abs(np.asarray(a["linear_bias"], np.float64)).reshape(-1)
    g, c = _coefficients(case)
    dz = gamma_units(H + 2) * (A.max(axis=1) if A.size else np.zeros(S))
    with np.errstate(all="ignore"):
        Qg = Qg + 2.0 * dz[:, None] * (G + np.abs(g)[:, None] * c)
    for arr in (Eg, Qg, G):
        arr[~np.isfinite(arr)] = 0.0
    E_parts = [Eg @ W, Eg.T @ x2] + ([Eg.sum(axis=0)] if "linear_bias" in a else [])
    Q_parts = [Qg @ W + gamma_units(C + 1) * (G @ W), Qg.T @ x2 + gamma_units(S + 1) * (G.T @ x2)]
    if "linear_bias" in a:
        Q_parts.append(Qg.sum(axis=0) + gamma_units(S + 1) * G.sum(axis=0))
    return pack(*E_parts), pack(*Q_parts)


def units(case: Case, kind: str):
    """(E, Q) of the loss value: cross_entropy's at the float64 logits, plus the GEMM's term in Q;
    of the packed gradients for ``kind == 'grad'`` (:func:`grad_units`)."""
    if kind == "grad":
        return grad_units(case)
    if kind != "value":
        raise ValueError(f"linear_cross_entropy: no tolerance units for {kind!r}")
    z = logits64(case.arrays)
    E, Q = tolerances.class_units(Case("cross_entropy", _ce_arrays(case.arrays, z), case.kwargs), "value")
    g, wt = gemm_units(case)
    g = np.where(np.isfinite(g), g, 0.0)
    red = case.kwargs.get("reduction", "mean")
    if red == "none":
        g = g.reshape(np.shape(Q))
    elif red == "sum":
        g = np.asarray(g.sum())
    else:
        d = abs(float(wt.sum()))
        g = np.asarray(g.sum() / d if d > 0 else 0.0)
    return E, np.asarray(Q) + g
