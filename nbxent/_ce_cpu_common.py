"""Numba helpers shared by the cross_entropy / nll_loss CPU kernels.

* ``exp_diff(x, m)``: ``exp(x - m)`` as if the difference were exact, for float32 or float64,
  vectorizable (the SLEEF-style exp of :mod:`nbxent._fastmath` with the subtraction's
  rounding error folded into the reduced argument; <= 1 ulp). The one exp of every kernel.
* ``maxnum(a, b)``: ``llvm.maxnum`` (NaN-ignoring max) for elementwise running maxima.
* ``cast_like(v, z)``: ``v`` converted to the type of ``z``; keeps per-element arithmetic
  in the input's dtype (a bare float64 scalar would promote a float32 loop).
* Row scans of a max-shifted log-sum-exp: ``seg_max``/``row_max``, ``sum_exp`` (sum, or sum
  and store each term, or in place), ``block_sum_exp``, ``sum_wx`` (label smoothing),
  ``scale_seg`` (the gradient's final scaling).
* ``weight_sum`` / ``neumaier_sum``: serial, fixed-order, compensated float64 sums used by
  every reduction (bit-identical for any thread count; more accurate than torch's cascade).

Helpers are separate ``@njit`` functions (LLVM inlines them into the callers' loops);
numba-level ``inline="always"`` re-typed them at every call site and made the first
compile slower with no speed gain.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from llvmlite import ir
from numba.extending import intrinsic, overload

from nbxent._common import CACHE
from nbxent._fastmath import (_F32_C0, _F32_C1, _F32_C2, _F32_C3, _F32_C4, _F32_C5,
                              _F32_NEG_L2L, _F32_NEG_L2U, _F32_ONE, _F32_OVER, _F32_R_LN2,
                              _F32_UNDER, _F64_C0, _F64_C1, _F64_C2, _F64_C3, _F64_C4,
                              _F64_C5, _F64_C6, _F64_C7, _F64_C8, _F64_C9, _F64_C10,
                              _F64_NEG_L2L, _F64_NEG_L2U, _F64_OVER, _F64_R_LN2, _F64_UNDER,
                              _fma, _rint, _scale_pow2)

_F32_ZERO = np.float32(0.0)

#: fastmath flags of the row kernels: reassociation lets the float32 block sums and the
#: gradient loop widen; never nnan/ninf (NaN/inf semantics are part of the contract).
FASTMATH = {"contract", "arcp", "reassoc"}

#: Terms per block of a vectorized sum (see LANES): the block's terms (x's dtype) and
#: their float64 lanes, 6 KB for float32, stay in L1.
BLOCK = 512


def cast_like(v, z):  # pragma: no cover - replaced by the overload inside compiled code
    return type(z)(v)


@overload(cast_like)
def _ov_cast_like(v, z):
    if z == types.float32:
        def impl(v, z):
            return np.float32(v)
        return impl
    if z == types.float64:
        def impl(v, z):
            return np.float64(v)
        return impl
    return None


# The exps below are _fastmath's exp_f32 / exp_f64 with one change: the argument is
# ``x - m`` given as two operands, and the rounding error of that subtraction is added to
# the reduced argument. ``d = x - m`` rounds with an error up to half an ulp of ``d``, which
# a plain exp turns into a relative error of ``|d| * u`` (60 ulp at ``d = -120``). 2Sum
# (six flops, no branch) gives the exact error ``err`` (``d + err == x - m``); with the
# reduced argument ``r = d - q ln2`` (|r| <= ln2/2), ``r + err`` rounds once, so the result
# is as accurate as exp of the exact difference. Compiled WITHOUT fastmath on purpose
# (reassociation would fold ``err`` to 0); LLVM inlines them into the vectorized callers
# with their own strict flags. ~25% over the plain exp (a separate ``e + e * err`` fix-up
# with a branch-free Fast2Sum cost 75%).

@njit(cache=CACHE, error_model="numpy")
def _exp_diff_f32(x, m):
    d = x - m
    bv = d - x
    err = (x - (d - bv)) + ((-m) - bv)
    xc = _F32_UNDER if d < _F32_UNDER else d
    xc = _F32_OVER if xc > _F32_OVER else xc
    # Clamped, inf or NaN: the result is 0, inf or NaN whatever err is (err may be NaN).
    err = err if xc == d else _F32_ZERO
    q = _rint(xc * _F32_R_LN2)
    r = _fma(q, _F32_NEG_L2U, xc)
    r = _fma(q, _F32_NEG_L2L, r) + err
    p = _fma(_F32_C5, r, _F32_C4)
    p = _fma(p, r, _F32_C3)
    p = _fma(p, r, _F32_C2)
    p = _fma(p, r, _F32_C1)
    p = _fma(p, r, _F32_C0)
    u = _F32_ONE + _fma(r * r, p, r)
    u = _scale_pow2(u, q)
    return u if d == d else d + d


@njit(cache=CACHE, error_model="numpy")
def _exp_diff_f64(x, m):
    d = x - m
    bv = d - x
    err = (x - (d - bv)) + ((-m) - bv)
    xc = _F64_UNDER if d < _F64_UNDER else d
    xc = _F64_OVER if xc > _F64_OVER else xc
    err = err if xc == d else 0.0
    q = _rint(xc * _F64_R_LN2)
    r = _fma(q, _F64_NEG_L2U, xc)
    r = _fma(q, _F64_NEG_L2L, r) + err
    hi = _fma(_F64_C10, r, _F64_C9)
    hi = _fma(hi, r, _F64_C8)
    hi = _fma(hi, r, _F64_C7)
    hi = _fma(hi, r, _F64_C6)
    hi = _fma(hi, r, _F64_C5)
    p = _fma(hi, r, _F64_C4)
    p = _fma(p, r, _F64_C3)
    p = _fma(p, r, _F64_C2)
    p = _fma(p, r, _F64_C1)
    p = _fma(p, r, _F64_C0)
    u = 1.0 + _fma(r * r, p, r)
    u = _scale_pow2(u, q)
    return u if d == d else d + d


def exp_diff(x, m):  # pragma: no cover - replaced by the overload inside compiled code
    """``exp(x - m)`` as if ``x - m`` were exact (see the comment above)."""
    return math.exp(x - m)


@overload(exp_diff)
def _ov_exp_diff(x, m):
    if x == types.float32 and m == types.float32:
        def impl(x, m):
            return _exp_diff_f32(x, m)
        return impl
    if x == types.float64 and m == types.float64:
        def impl(x, m):
            return _exp_diff_f64(x, m)
        return impl
    return None


@intrinsic
def maxnum(typingctx, a, b):
    """The larger of ``a`` and ``b``, a NaN operand ignored (``llvm.maxnum``; widens to vmaxps).

    Written as ``v if v > m else m`` into an array slot, the max becomes a masked store
    (vmaskmovps, microcoded on this CPU: 8x slower than vmaxps + a blend for the NaN case).
    """
    if a not in (types.float32, types.float64) or a != b:
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return a(a, a), codegen


#: Partial maxima of the row max: 8 float32 vectors (measured on 8192 float32: 0.11 ns per
#: element; 32 lanes get fully unrolled and are not vectorized, 0.69 ns).
MAX_LANES = 64


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def seg_max(x, n, lo, hi):
    """Max of ``x[n, lo:hi]`` (needs ``hi > lo``), NaN skipped; all ``-inf``/NaN gives ``-inf``.

    A skipped NaN still reaches the loss through ``exp(NaN - m)`` in the sum. Long
    segments run elementwise maxes into ``MAX_LANES`` partial maxima (LLVM vectorizes an
    elementwise max, not a max reduction without ``nnan``).
    """
    seg = x[n, lo:hi]
    size = seg.shape[0]
    m = cast_like(-np.inf, seg[0])
    if size >= 4 * MAX_LANES:
        lanes = np.full(MAX_LANES, m)
        body = size - size % MAX_LANES
        for j in range(0, body, MAX_LANES):
            chunk = seg[j:j + MAX_LANES]
            for k in range(MAX_LANES):
                lanes[k] = maxnum(lanes[k], chunk[k])
        for k in range(MAX_LANES):
            v = lanes[k]
            m = v if v > m else m
        for j in range(body, size):
            v = seg[j]
            m = v if v > m else m
    else:
        for j in range(size):
            v = seg[j]
            m = v if v > m else m
    return m


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def row_max(x, n, C):
    """Max of ``x[n, :C]`` (see :func:`seg_max`); needs ``C >= 1``."""
    return seg_max(x, n, 0, C)


#: Every vectorized sum runs in ``LANES`` lanes: term ``j`` of a block of ``BLOCK`` goes to
#: lane ``j`` (an elementwise add, fused into the exp loop), and the lanes are summed in
#: float64 by a fixed pairwise tree at the end. No loop reduces across its vector, so the
#: order (hence the bits) does not depend on the host's vector width; LLVM's own
#: reductions sum in as many lanes as the vectors hold (8 float32 with AVX2, 16 with
#: AVX-512, times its interleave). A lane holds ``CB / BLOCK = 16`` terms at most, in x's
#: dtype: the rounding of a float32 lane stays below the float32 result's last bit.
LANES = BLOCK


@njit(cache=CACHE, error_model="numpy")
def lane_span(used):
    """Lanes a sum over ``used`` (<= LANES) lanes spans: the smallest power of two >= used."""
    h = 1
    while h < used:
        h *= 2
    return h


@njit(cache=CACHE, error_model="numpy")
def fold_lanes(acc, f64, used):
    """``sum(acc[:used])`` in float64 by a fixed pairwise tree over ``lane_span(used)`` lanes.

    Lanes past ``used`` must be 0; ``f64`` is float64 scratch of ``LANES`` (may be ``acc``
    itself when that is float64). Compiled without fastmath: no flag lets LLVM regroup the
    tree, and each level is elementwise, so the order depends on ``used`` only.
    """
    h = lane_span(used)
    if h == 1:
        return np.float64(acc[0]) if used > 0 else 0.0
    h //= 2
    for k in range(h):
        f64[k] = np.float64(acc[k]) + np.float64(acc[k + h])
    while h > 1:
        h //= 2
        for k in range(h):
            f64[k] = f64[k] + f64[k + h]
    return f64[0]


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _exp_lanes(a, m, acc):
    for c in range(a.shape[0]):
        acc[c] += exp_diff(a[c], m)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _exp_lanes_into(a, b, m, acc):
    for c in range(a.shape[0]):
        e = exp_diff(a[c], m)
        b[c] = e
        acc[c] += e


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _exp_lanes_inplace(b, m, acc):
    # in place through one array: two aliasing array arguments fail LLVM's runtime
    # overlap check and run the scalar fallback loop (5x slower)
    for c in range(b.shape[0]):
        e = exp_diff(b[c], m)
        b[c] = e
        acc[c] += e


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def sum_exp(src, dst, n, lo, hi, m, store, skip, acc, f64):
    """``sum_{lo <= c < hi, c != skip} exp(src[n, c] - m)`` (exact shift) as float64.

    Block by block of ``BLOCK`` terms, each term added to its lane of ``acc`` (x's dtype,
    ``LANES``) in the exp loop itself; :func:`fold_lanes` (``f64``: float64 scratch of
    ``LANES``) sums the lanes at the end. ``store``: 0 sum only; 1 also write each term to
    ``dst[n, c]``; 2 the same in place (``src`` is ``dst``'s memory, read through ``dst``).
    ``skip`` (-1: none): the column whose term stays out of the sum (its lane is restored
    after its block; a stored term there is left for the caller to overwrite).
    """
    used = min(hi - lo, LANES)
    zero = cast_like(0.0, m)
    for k in range(lane_span(used)):
        acc[k] = zero
    j = lo
    while j < hi:
        j1 = min(j + BLOCK, hi)
        inside = j <= skip < j1
        keep = acc[skip - j] if inside else zero
        # A slice indexed from 0 lets Numba prove the index non-negative (no wraparound
        # select), which keeps the loop a plain contiguous vector loop.
        if store == 2:
            _exp_lanes_inplace(dst[n, j:j1], m, acc)
        elif store == 1:
            _exp_lanes_into(src[n, j:j1], dst[n, j:j1], m, acc)
        else:
            _exp_lanes(src[n, j:j1], m, acc)
        if inside:
            acc[skip - j] = keep
        j = j1
    return fold_lanes(acc, f64, used)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def block_sum_exp(x, n, lo, hi, m, acc, f64):
    """``sum_{lo <= c < hi} exp(x[n, c] - m)`` as float64 (:func:`sum_exp`, nothing stored)."""
    return sum_exp(x, x, n, lo, hi, m, 0, -1, acc, f64)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _add_wx(a, b, acc):
    for c in range(a.shape[0]):
        acc[c] += np.float64(b[c]) * np.float64(a[c])


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def sum_wx(x, n, lo, hi, w, f64):
    """``sum_{lo <= c < hi} w[c] * x[n, c]`` in float64 (the label-smoothing term).

    In the float64 lanes ``f64`` (scratch of ``LANES``), summed by :func:`fold_lanes`.
    """
    used = min(hi - lo, LANES)
    for k in range(lane_span(used)):
        f64[k] = 0.0
    j = lo
    while j < hi:
        j1 = min(j + BLOCK, hi)
        _add_wx(x[n, j:j1], w[j:j1], f64)
        j = j1
    return fold_lanes(f64, f64, used)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def scale_seg(dst, n, lo, hi, c_p, c_w, w, with_w):
    """``dst[n, c] = c_p * dst[n, c] [- c_w * w[c]]`` for lo <= c < hi."""
    b = dst[n, lo:hi]
    if with_w:
        ws = w[lo:hi]
        for c in range(b.shape[0]):
            b[c] = c_p * b[c] - c_w * ws[c]
    else:
        for c in range(b.shape[0]):
            b[c] = c_p * b[c]


@njit(cache=CACHE, error_model="numpy")
def weight_sum(w):
    """``sum_c w[c]`` in float64, compensated, left to right (one definition for all paths)."""
    s = 0.0
    comp = 0.0
    for i in range(w.shape[0]):
        a = np.float64(w[i])
        t = s + a
        if abs(s) >= abs(a):
            comp += (s - t) + a
        else:
            comp += (a - t) + s
        s = t
    return s + comp if math.isfinite(s) else s


@njit(cache=CACHE, error_model="numpy")
def neumaier_sum(v, negate):
    """Compensated left-to-right sum of float64 ``v`` (of ``-v`` when ``negate``); +0.0 if empty."""
    s = 0.0
    comp = 0.0
    for i in range(v.shape[0]):
        a = -v[i] if negate else v[i]
        t = s + a
        if abs(s) >= abs(a):
            comp += (s - t) + a
        else:
            comp += (a - t) + s
        s = t
    if not math.isfinite(s):
        # inf/NaN: the plain sum already carries torch's answer; comp would be NaN.
        return s
    return s + comp
