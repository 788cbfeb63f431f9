"""Spatial kernel of class-index cross_entropy: ``(N, C, K)`` inputs with ``K > 1``.

Signature, one per float dtype (see nbxent/xent/cpu_index.py for the argument conventions):

    index_block(x, n, k0, k1, t, w, sumw, g, opts, loss, grad, tile, sc)

A work item is one batch index ``n`` and a block of positions ``k0 <= k < k1``. The class
stride is ``K``, so one class of the block, ``x[n, c, k0:k1]``, is contiguous: every pass
runs the class loop outside and a vector loop over the block's positions inside, with the
running max, sums and scales held in small per-block arrays (no stride-``K`` gathers).
``tile`` (``(C + 5, KBLOCK)``, x's dtype: the block, its max, and four work rows that
hold in turn the target logit, the float32 log1p rows and the gradient scales) and ``sc``
(``(SC_ROWS, KBLOCK)`` float64; its last row holds the int32 target classes) are
scratch, allocated once per group of work items by the driver. Passes:

1. the block is copied into the contiguous ``(C, nb)`` tile while ``m_k = max_c x[n, c, k]``
   runs and ``x_t`` is picked out by selects (one read of the logits; see the kernel for
   why the copy);
2. ``e = exp(x - m_k)`` (exact shift), stored back into the tile and summed in float64
   into ``s_other_k`` with the target's own term left out; meanwhile the next block's
   logits (and, with a separate gradient buffer, its gradient lines) are prefetched class
   by class, so that its copy loop does not wait on memory;
3. per position, vectorized: ``e_t = exp(x_t - m_k)`` (float64), the loss from
   ``log1p(z)`` with ``z = s_other`` (target is the max, ``e_t = 1``) or ``(s_other - 1)
   + e_t`` (float32: :func:`_log1p_pos`, vectorized; float64: libm), and the gradient
   scales;
4. the gradient is written from the tile class by class, the target's element chosen by
   a select from ``p_t - 1 = -s_other / s`` (no cancellation when ``p_t ~ 1``, as
   ``expm1(-loss_t)``).

Targets are compared as int32 (16 lanes where the vectors are 512 bits wide): the class
index fits, since the tile holds ``C`` rows. The target's term is masked out of the sum by
a multiply with a selected 0 or 1: ``e * 0`` is NaN only when ``e`` is, and then the loss
is NaN anyway. Selects go through :func:`select`, whose result is never stored back into
the slot it read (that pattern compiles to a masked store, microcoded on some CPUs).
Summing ``C`` float64 terms in class order gives a relative error of at most
``(C - 1) * u64`` in ``s``, far below the float32 result's last bit. Every loop is
elementwise over positions (no reduction across lanes), so the bits do not depend on the
host's vector width, and the prefetches change no result.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from nbxent._core.jit import CACHE, GRAD_INTO, GRAD_NONE
from nbxent._cpu.fastmath import cast_like, exp_diff, exp_f64, log1p_f32, maxnum
from nbxent._cpu.rows import FASTMATH
from nbxent.xent.formulas import index_grad_scale, index_grad_target, index_loss, index_value

#: Spatial positions per work item: a few vector widths, and C of them (logits plus
#: gradient) stay in L1/L2 for the usual class counts.
KBLOCK = 256
#: Rows of the float64 scratch ``sc`` of :func:`index_block`.
SC_ROWS = 13

_F32_ONE = np.float32(1.0)
_TINY_Z = 2.0 ** -20


@intrinsic
def select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select`` (widens to a blend).

    Numba lowers a conditional expression to branches, which LLVM turns into a masked
    store when the result goes into an array slot (microcoded on some CPUs).
    """
    if not isinstance(cond, types.Boolean) or a != b:
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[0], args[1], args[2])

    return a(cond, a, b), codegen


def _prefetcher(rw, doc):
    def impl(typingctx, arr, i):
        if not isinstance(arr, types.Array):
            return None
        if isinstance(i, types.Integer):
            if arr.ndim != 1:
                return None
        elif not (isinstance(i, types.UniTuple) and isinstance(i.dtype, types.Integer)
                  and i.count == arr.ndim):
            return None

        def codegen(context, builder, sig, args):
            aty, ity = sig.args
            ary = context.make_array(aty)(context, builder, args[0])
            if isinstance(ity, types.Integer):
                idx = [context.cast(builder, args[1], ity, types.intp)]
            else:
                idx = [context.cast(builder, builder.extract_value(args[1], d), ity.dtype,
                                    types.intp) for d in range(ity.count)]
            ptr = cgutils.get_item_pointer(context, builder, aty, ary, idx, wraparound=False)
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
            # locality 3 (measured: the lower localities arrived too late here), data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, rw),
                              ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.void(arr, i), codegen
    impl.__doc__ = doc
    return intrinsic(impl)


#: ``prefetch(arr, i)``: ``arr[i]`` (``i`` an integer for 1-D ``arr``, else a tuple of
#: ``arr.ndim`` integers) will be read soon (``llvm.prefetch``); no effect on results.
prefetch = _prefetcher(0, "Hint that ``arr[i]`` will be read soon; no effect on results.")
#: ``prefetch_w(arr, i)``: as :data:`prefetch`, for an element about to be written.
prefetch_w = _prefetcher(1, "Hint that ``arr[i]`` will be written soon; no effect on results.")


@njit(cache=CACHE, error_model="numpy")
def _log1p_pos_f32(z):
    """``log1p(z)`` for float64 ``z >= 0`` (or NaN) to ~1e-13 relative, vectorizable.

    ``y0 = log1p_f32(z)`` (<= 1 ulp of float32) refined by one Newton step for
    ``exp(y) = 1 + z`` in float64, ``y1 = y0 + ((1 + z) exp(-y0) - 1)``: the step leaves
    ``(y0 - y)**2 / 2`` (a few 1e-15 relative) plus the rounding of ``1 + z`` (1e-16
    absolute: 1e-10 relative at the smallest z taken here). Below ``2**-20`` the series
    ``z (1 - z (1/2 - z/3))`` is used (truncation ``z**4 / 4``). Used for float32 inputs,
    whose results are rounded to float32 (6e-8 relative) in the end.
    """
    y0 = np.float64(log1p_f32(np.float32(z)))
    y1 = y0 + ((1.0 + z) * exp_f64(-y0) - 1.0)
    small = z * (1.0 - z * (0.5 - z * (1.0 / 3.0)))
    y = small if z < _TINY_Z else y1
    return y if z < np.inf else z      # +inf stays +inf (NaN: both branches are NaN)


def _pos_losses(mx, m64, xt, so, e_t, z, z32, y0, lt, nb):  # pragma: no cover - overloaded
    """Per-position ``loss_t`` into ``lt``; by the dtype of the block max ``mx``."""


@overload(_pos_losses)
def _ov_pos_losses(mx, m64, xt, so, e_t, z, z32, y0, lt, nb):
    if mx.dtype == types.float32:
        def impl(mx, m64, xt, so, e_t, z, z32, y0, lt, nb):
            # log1p_f32 guess + one float64 Newton step (see _log1p_pos_f32), vectorized
            _log1p_arg(m64, xt, so, e_t, z, nb)
            _to_f32(z, z32, nb)
            _log1p_guess(z32, y0, nb)
            _losses_newton(m64, xt, z, y0, lt, nb)
        return impl
    if mx.dtype == types.float64:
        def impl(mx, m64, xt, so, e_t, z, z32, y0, lt, nb):
            _losses_libm(m64, xt, so, e_t, lt, nb)   # float64 results need libm's accuracy
        return impl
    return None


def _pos_log(s, m):  # pragma: no cover - replaced by the overload in compiled code
    return math.log(s)


@overload(_pos_log)
def _ov_pos_log(s, m):
    if m == types.float32:
        def impl(s, m):
            return _log1p_pos_f32(s - 1.0)       # s >= 1: s - 1 loses nothing that counts
        return impl
    if m == types.float64:
        def impl(s, m):
            return math.log(s)
        return impl
    return None


# The per-position loops are functions of their own, each over few arrays and one float
# width: a loop that mixes the float32 polynomial with float64 stores, or needs many runtime
# overlap checks, stays scalar (measured: 72 ns per position instead of a few).
@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _target_exp(xt, mx, m64, e_t, nb):
    for kk in range(nb):
        m = np.float64(mx[kk])
        m64[kk] = m
        e_t[kk] = exp_diff(xt[kk], m)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _log1p_arg(m64, xt, so, e_t, z, nb):
    # log(s) = log1p(z), z = s - 1: s_other itself when the target is the max (e_t = 1;
    # the log1p form keeps tiny losses), else (s_other - 1) + e_t (s_other >= 1 holds the
    # max's own term)
    for kk in range(nb):
        z[kk] = so[kk] if xt[kk] == m64[kk] else (so[kk] - 1.0) + e_t[kk]


@njit(cache=CACHE, error_model="numpy")
def _to_f32(src, dst, nb):
    for kk in range(nb):
        dst[kk] = np.float32(src[kk])


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _log1p_guess(z32, y0, nb):
    for kk in range(nb):
        y0[kk] = log1p_f32(z32[kk])


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _losses_newton(m64, xt, z, y0, lt, nb):
    """``loss_t = (m - x_t) + log1p(z)``, ``log1p`` as in :func:`_log1p_pos_f32`."""
    for kk in range(nb):
        zz = z[kk]
        g = np.float64(y0[kk])
        y1 = g + ((1.0 + zz) * exp_f64(-g) - 1.0)
        small = zz * (1.0 - zz * (0.5 - zz * (1.0 / 3.0)))
        y = small if zz < _TINY_Z else y1
        y = y if zz < np.inf else zz
        m = m64[kk]
        # the target at a +-inf row max: torch's inf - inf
        bad = xt[kk] == m and (m == np.inf or m == -np.inf)
        lt[kk] = np.nan if bad else (m - xt[kk]) + y


@njit(cache=CACHE, error_model="numpy")
def _pos_lse(m64, xt, so, e_t, tcf, out, nb):
    # Each position's log-sum-exp from the max, m + log(s): x_t + loss_t would cancel when
    # x_t lies far below the max. log1p(s_other) when the target is the max (e_t = 1);
    # ignored positions (tcf < 0) summed the whole column into s_other.
    for kk in range(nb):
        sok = so[kk]
        if tcf[kk] < 0.0:
            out[kk] = m64[kk] + math.log(sok)
        elif xt[kk] == m64[kk]:
            out[kk] = m64[kk] + math.log1p(sok)
        else:
            out[kk] = m64[kk] + math.log(sok + e_t[kk])


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _values(wt, lt, lse, tcf, out, C, opts, nb):
    # the per-position value from nll = w_t * loss_t (-0.0 * w_t for a zero loss, as
    # torch), without smoothing; +0.0 where ignored (tcf < 0)
    for kk in range(nb):
        wtk = wt[kk]
        ltk = lt[kk]
        nll = -0.0 * wtk if ltk == 0.0 else wtk * ltk
        val = index_value(nll, 0.0, lse[kk], C, opts)
        out[kk] = val if tcf[kk] >= 0.0 else 0.0


@njit(cache=CACHE, error_model="numpy")
def _losses_libm(m64, xt, so, e_t, lt, nb):
    for kk in range(nb):
        lt[kk] = index_loss(m64[kk], xt[kk], so[kk], e_t[kk])


@njit(cache=CACHE, error_model="numpy")
def _prefetch_row(a, n, c, k0, nk, line):
    # a[n, c, k0:k0 + nk], one hint per cache line (indices, not a slice: no view to count)
    for j in range(0, nk, line):
        prefetch(a, (n, c, k0 + j))


@njit(cache=CACHE, error_model="numpy")
def _prefetch_row_w(a, n, c, k0, nk, line):
    for j in range(0, nk, line):
        prefetch_w(a, (n, c, k0 + j))


@njit(cache=CACHE, error_model="numpy")
def _target_class(tk, ii, tc, nb):
    # the target class, -1 where ignored (ignore_index may lie in [0, C) or beyond int32)
    for kk in range(nb):
        tv = tk[kk]
        tc[kk] = select(tv != ii, np.int32(tv), np.int32(-1))


@njit(cache=CACHE, error_model="numpy")
def _targets(tc, w, xt32, mx, xt, tcf, wt, nb):
    # Per position: x_t (the max where ignored), the target class as float64 (-1: ignored)
    # and its weight; one output per loop, so that each vectorizes.
    for kk in range(nb):
        xt[kk] = np.float64(select(tc[kk] >= 0, xt32[kk], mx[kk]))
    for kk in range(nb):
        tcf[kk] = np.float64(tc[kk])
    for kk in range(nb):
        tv = tc[kk]
        wt[kk] = select(tv >= 0, np.float64(w[max(tv, 0)]), 0.0)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _grad_p(g, i0, so, e_t, wt, lse, tcf, sumw, opts, out, nb):
    # index_grad_scale / s; where ignored: 0, or NaN when the log-softmax is NaN
    gst = opts.gstride
    for kk in range(nb):
        gs = g[(i0 + kk) * gst]
        sok = so[kk]
        ign = select(sok != sok, np.nan, 0.0)
        cp = index_grad_scale(gs, wt[kk], sumw, lse[kk], opts) / (sok + e_t[kk])
        out[kk] = select(tcf[kk] >= 0.0, cp, ign)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _grad_w(g, i0, so, tcf, opts, out, nb):
    # g_s * eps / C, the factor of w_j under smoothing; as _grad_p where ignored
    gst = opts.gstride
    for kk in range(nb):
        sok = so[kk]
        ign = select(sok != sok, np.nan, 0.0)
        out[kk] = select(tcf[kk] >= 0.0, g[(i0 + kk) * gst] * opts.epsc, ign)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _grad_t(g, i0, so, e_t, wt, lse, sumw, opts, out, nb):
    # d/dx_t with p_t - 1 = (e_t - s) / s = -s_other / s: no cancellation however close
    # p_t is to 1 (ignored positions: never read)
    gst = opts.gstride
    for kk in range(nb):
        sok = so[kk]
        s = sok + e_t[kk]
        out[kk] = index_grad_target(g[(i0 + kk) * gst], wt[kk], sumw, -sok / s, e_t[kk] / s,
                                    lse[kk], opts)


@njit(cache=CACHE, error_model="numpy")
def _to_dtype(src, dst, nb):
    for kk in range(nb):
        dst[kk] = cast_like(src[kk], dst[kk])


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def index_block(x, n, k0, k1, t, w, sumw, g, opts, loss, grad, tile, sc):
    """Losses (and gradient) of positions ``k0 .. k1`` of batch index ``n``; see module doc."""
    ii, grad_mode = opts.ignore_index, opts.grad_mode
    C = x.shape[1]
    K = x.shape[2]
    nb = k1 - k0
    # The block's C class segments lie K elements apart: with K a multiple of 1024 they all
    # map to the same cache sets and evict each other between passes. One streaming copy
    # into a contiguous (C, nb) tile makes every later pass an L1/L2 hit; the gradient is
    # built from the tile. (In place, GRAD_IN_PLACE, is then free: the block is read in
    # full before anything is written.) The max runs in the copy loop.
    tk = t[n * K + k0:n * K + k1]
    # The block after this one, in the driver's order: its class rows are prefetched one
    # by one while this block's exps run, so its copy loop finds them in cache.
    nxt = k1 < K
    kn = k1 if nxt else 0
    nn = n if nxt else n + 1
    nbn = min(KBLOCK, K - kn) if nn < x.shape[0] else 0
    line = 64 // x.itemsize
    s_other = sc[0, :nb]
    wx = sc[1, :nb]
    xt = sc[2, :nb]
    e_t = sc[3, :nb]
    wt = sc[4, :nb]
    pm1 = sc[5, :nb]
    tcf = sc[6, :nb]     # the class left out of each position's sum, as float64 (-1: ignored)
    cpw = sc[7, :nb]
    tc = sc[SC_ROWS - 1].view(np.int32)[:nb]   # the same as int32 (C < 2**31: the tile exists)
    _target_class(tk, ii, tc, nb)
    mx = tile[C, :nb]
    # x_t gathered by selects, alternating between two rows: a select whose result goes
    # back into the slot it read becomes a masked store.
    xa = tile[C + 1, :nb]
    xb = tile[C + 2, :nb]
    tr = tile[0, :nb]
    xr = x[n, 0, k0:k1]
    for kk in range(nb):
        v = xr[kk]
        tr[kk] = v
        mx[kk] = v
        xa[kk] = v
    for c in range(1, C):
        tr = tile[c, :nb]
        xr = x[n, c, k0:k1]
        src, dst = (xa, xb) if c % 2 == 1 else (xb, xa)
        c32 = np.int32(c)     # int32 compares: 16 lanes, not 8
        for kk in range(nb):
            v = xr[kk]
            tr[kk] = v
            mx[kk] = maxnum(mx[kk], v)
            dst[kk] = select(tc[kk] == c32, v, src[kk])
    xt32 = xa if C % 2 == 1 else xb
    _targets(tc, w, xt32, mx, xt, tcf, wt, nb)
    s_other[:] = 0.0
    wx[:] = 0.0
    zero = cast_like(0.0, mx[0])
    one = cast_like(1.0, mx[0])
    for c in range(C):
        tr = tile[c, :nb]
        c32 = np.int32(c)
        if opts.smooth:
            wc = np.float64(w[c])
            for kk in range(nb):
                wx[kk] += wc * np.float64(tr[kk])
        # Two short loops over few arrays each, not one over five: LLVM gives up on
        # vectorizing a loop that needs too many runtime overlap checks.
        # (One loop computing the exp and accumulating mixes float32 and float64 lanes
        # and stays scalar; the tile is in L1, so storing the exps costs little.)
        for kk in range(nb):
            tr[kk] = exp_diff(tr[kk], mx[kk])
        # the target's term times 0 (NaN stays NaN; ignored positions, tc = -1, keep all)
        for kk in range(nb):
            s_other[kk] += np.float64(tr[kk] * select(tc[kk] == c32, zero, one))
        if nbn > 0:
            _prefetch_row(x, nn, c, kn, nbn, line)
            if grad_mode == GRAD_INTO:
                _prefetch_row_w(grad, nn, c, kn, nbn, line)
    # Per position, vectorized: e_t = exp(x_t - m) in float64 (exact shift), the loss, the
    # gradient scales. Ignored positions (tcf < 0) are masked by selects.
    m64 = sc[8, :nb]
    z = sc[9, :nb]
    _target_exp(xt, mx, m64, e_t, nb)
    lt = sc[10, :nb]
    _pos_losses(mx, m64, xt, s_other, e_t, z, tile[C + 3, :nb], tile[C + 4, :nb], lt, nb)
    base = loss[n * K + k0:n * K + k1]
    lse = sc[11, :nb]
    if opts.want_lse or opts.zl:                 # only the z-loss and a returned lse read it
        _pos_lse(m64, xt, s_other, e_t, tcf, lse, nb)
        if opts.want_lse:
            opts.lse[n * K + k0:n * K + k1] = lse
    else:
        lse[:] = 0.0
    if opts.smooth:
        for kk in range(nb):
            wtk = wt[kk]
            ltk = lt[kk]
            nll = -0.0 * wtk if ltk == 0.0 else wtk * ltk
            # -sum_c w_c * lp_c with lp_c = (x_c - m) - log(s)
            s = s_other[kk] + e_t[kk]
            m64k = m64[kk]
            smooth_sum = -((wx[kk] - sumw * m64k) - sumw * _pos_log(s, mx[kk]))
            val = index_value(nll, smooth_sum, lse[kk], C, opts)
            base[kk] = val if tcf[kk] >= 0.0 else 0.0
    else:
        _values(wt, lt, lse, tcf, base, C, opts, nb)
    if grad_mode == GRAD_NONE:
        return
    # The gradient scales, per position (branch-free loops of one output each, vectorized):
    # c_p (the factor of p_j; 0, or NaN when the log-softmax is NaN, where ignored), c_w
    # (of w_j, smoothing only) and the target's own value, all in x's dtype.
    c_p = tile[C + 1, :nb]
    c_w = tile[C + 2, :nb]
    c_t = tile[C + 3, :nb]
    i0 = n * K + k0
    _grad_p(g, i0, s_other, e_t, wt, lse, tcf, sumw, opts, xt, nb)
    _to_dtype(xt, c_p, nb)
    if opts.smooth:
        _grad_w(g, i0, s_other, tcf, opts, cpw, nb)
        _to_dtype(cpw, c_w, nb)
    _grad_t(g, i0, s_other, e_t, wt, lse, sumw, opts, pm1, nb)
    _to_dtype(pm1, c_t, nb)
    # Class by class: the target's element is chosen by a select (no scatter afterwards);
    # an ignored position's column is c_p throughout, so that a NaN weight of a class no
    # sample targets stays out of it.
    for c in range(C):
        tr = tile[c, :nb]
        gr = grad[n, c, k0:k1]
        c32 = np.int32(c)
        if opts.smooth:
            wc = w[c]
            for kk in range(nb):
                tv = tc[kk]
                v = select(tv == c32, c_t[kk], c_p[kk] * tr[kk] - c_w[kk] * wc)
                gr[kk] = select(tv < 0, c_p[kk], v)
        else:
            for kk in range(nb):
                tv = tc[kk]
                v = select(tv == c32, c_t[kk], c_p[kk] * tr[kk])
                gr[kk] = select(tv < 0, c_p[kk], v)
