"""Vectorizable ``exp``, ``log`` and ``log1p`` for the CPU kernels.

Numba lowers ``math.exp`` to a scalar libm call, so a loop such as
``out[i] = math.exp(x[i] - m)`` runs one element at a time. ``exp_f32``,
``exp_f64``, ``log_f32`` and ``log1p_f32`` below are written only with
operations LLVM can widen (multiply, fused multiply-add, ``rint``, integer
shifts, bit casts, compare + select), so the same loop compiles to 8 float32
(4 float64) lanes per AVX2 instruction. The log functions are described after
the exp ones, below.

How to call them (from ``@njit`` code; that is where they pay)::

    from nbxent._cpu.fastmath import exp_f32, exp_f64

    @njit(parallel=True, cache=CACHE, fastmath={'contract', 'arcp', 'reassoc'})
    def kernel(x, m, out):                 # x, out float32 (n, c); m float32 (n,)
        for i in prange(x.shape[0]):
            mi = m[i]
            for j in range(x.shape[1]):
                out[i, j] = exp_f32(x[i, j] - mi)

* The argument must already have the function's dtype: ``exp_f32`` takes and
  returns float32 (use ``np.float32`` constants in the caller: a bare Python
  float literal is float64 in Numba and silently promotes the expression),
  ``exp_f64`` takes and returns float64. Other types do not compile.
* Both are ``inline='always'``: they are copied into the caller's loop body,
  which is what lets the loop vectorize. The caller's fastmath flags do not
  change a single result bit as long as they stay within
  ``{'contract', 'arcp', 'reassoc'}`` (tested): the rounding-sensitive steps are
  explicit ``llvm.fma`` calls and a scaling helper whose instructions carry
  their own flag, which Numba's fastmath rewrite leaves alone. ``nnan`` or
  ``ninf`` would break the special-value selects; never use them.

Algorithm (the float32 one is SLEEF's ``expf_u10``, which is also the exp that
torch 2.13's vectorized CPU softmax/log_softmax evaluate with AVX2+FMA, so the
values agree with torch bit for bit; the float64 polynomial is SLEEF's
``exp_u10`` minimax set):

    x = min(max(x, -104), 100)    (float64: -746, 710)    # NaN passes; exp is 0 / inf there anyway
    q = rint(x / ln 2)                                    # nearest integer
    s = (x - q*L2U) - q*L2L                               # Cody-Waite, two fmas;
                                                          # L2U has few bits, so q*L2U is exact
    exp(s) ~= 1 + (s + s**2 * P(s))                       # |s| <= ln(2)/2, minimax P
    exp(x) = exp(s) * 2**(q >> 1) * 2**(q - (q >> 1))     # 2**k from exponent bits;
                                                          # two exact factors, one rounding

    NaN in -> x + x out (the same NaN, quieted)

The split scale gives correct gradual underflow (one rounding into the
subnormal range) and overflows exactly where the rounded result does.

Special values and ranges:

=================  =====================================  =====================================
input              exp_f32                                exp_f64
=================  =====================================  =====================================
NaN                NaN                                    NaN
+inf / -inf        +inf / +0.0                            +inf / +0.0
overflow to +inf   x > 88.7228391 (where rounding says)   x > 709.782712893384
subnormal results  -103.972 < x < -87.3365, gradual       -745.1332 < x < -708.3964, gradual
+0.0 results       x < -103.972 (where rounding says)     x < -745.1332
=================  =====================================  =====================================

Accuracy (``tests/test_fastmath.py`` checks <= 1 ulp on ~1.8e6 float32 and
~1.5e6 float64 points; ``benchmarks/bench_fastmath.py --exhaustive`` scans
every float32):

* ``exp_f32``: max 0.988 ulp of the exact value over all 2.24e9 float32 in
  [-104, 89] (worst x = 59.275005); no result is more than 1 ulp from the
  correctly rounded float32; overflow and the last nonzero subnormal occur at
  exactly the same x as for the correctly rounded function. Bit-identical to
  torch 2.13's CPU softmax exp (SLEEF ``expf_u10``, AVX2) on the 50 000
  values the tests compare.
* ``exp_f64``: max 0.975 ulp vs an 80-bit long-double reference over 3e7
  random points in [-746, 710] and log-spaced tiny |x|; none more than 1 ulp
  from the correctly rounded value.

Speed (one thread, ``out[i] = exp(x[i] - m)`` over a row of 32000, AMD EPYC
znver3 with AVX2 + FMA and no AVX-512, a busy shared 2-core VM: ranges over
runs; the ratios are what carries over):

* float32: 1.2-1.6 Gelem/s; 4.4-6.2x the same loop with ``math.exp`` (0.2-0.37
  Gelem/s), 2.4-3.1x ``np.exp`` on the row (0.4-0.7 Gelem/s).
* float64: 0.37-0.39 Gelem/s; 3.5-3.8x ``math.exp`` and ``np.exp`` (0.10 Gelem/s).

The loop body is 8 float32 (4 float64) lanes: vroundps/vfmadd213ps/vpslld on
ymm registers, about 33 instructions per 8 results
(``benchmarks/bench_fastmath.py`` prints the counts).

``log_f32`` / ``log1p_f32``
---------------------------

Same calling rules as ``exp_f32`` (float32 in and out, ``inline='always'``,
caller flags within ``{'contract', 'arcp', 'reassoc'}`` change no bit: every
floating-point instruction of theirs carries a flag of its own, so Numba's
fastmath pass adds nothing to them, and the exact steps below stay exact).

Algorithm (table-free, no float64)::

    u = m * 2**k, m in [sqrt(1/2), sqrt(2))     # bit pattern minus that of sqrt(1/2),
                                                # arithmetic shift: k; m from the rest
    f = m - 1                                   # exact (Sterbenz)
    log(u) = (k*LN2_HI + f) + (f**2 * Q(f) + k*LN2_LO + c)
             # 1st group: an exact Fast2Sum pair; 2nd: at most 0.2 of the result
    Q(f) ~= (log1p(f) - f) / f**2               # degree 9, rel. error 1.6e-8

    log_f32(x):   u = x (x * 2**24, k - 24 for subnormal x), c = 0
    log1p_f32(z): u = 1 + z rounded, err = its exact error (TwoSum),
                  c = err / u  (log1p(z) = log(u) + log1p(err/u), |err/u| <= 2**-24)

``LN2_HI`` has 15 significant bits, so ``k*LN2_HI`` is exact for every k that
occurs (|k| <= 152). Only the small part is rounded before the last addition,
and it is at most a fifth of the result, so its rounding errors shrink five-fold
on the way: the total stays below one ulp (measured below).

=================  ==========================  =================================
input              log_f32                     log1p_f32
=================  ==========================  =================================
NaN                NaN                         NaN
+inf               +inf                        +inf
+0.0 / -0.0        -inf / -inf                 +0.0 / -0.0 (sign kept)
below the domain   x < 0: NaN                  z < -1: NaN; z = -1: -inf
subnormal          exact scaling, then as      log1p(z) = z (correctly rounded)
                   normal (log(2**-149) =
                   -103.27893)
=================  ==========================  =================================

Accuracy, measured over all 2**32 float32 bit patterns against float64 libm:
``log_f32`` max 0.8404 ulp (x = 1.2721652), ``log1p_f32`` max 0.8508 ulp
(z = 0.4054828); so none is more than one step from the correctly rounded
float32, and every NaN/inf/zero result equals libm's.
``tests/test_fastmath.py`` checks <= 1 ulp on ~1.6e6 points each (a uniform
bit-pattern sample plus every pattern near 0, 1, -1, sqrt(2)^+-1 and the
subnormal edge).

Speed (one thread, ``out[i] = f(x[i])`` on 4e6 float32 in [0, 1), same busy
2-core VM; ratios carry over): ``log_f32`` 1.5 ns/element vs 6.7 for
``math.log`` (scalar ``logf``), ``log1p_f32`` 1.4 ns vs 21.6 for ``math.log1p``:
4.4x and 15x. About 30 instructions per 8 results (vfmadd..ps, vpsrad, one
vdivps for ``log1p``).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from nbxent._core.jit import CACHE

__all__ = ["exp_f32", "exp_f64", "log_f32", "log1p_f32", "exp_diff", "exp_below", "maxnum",
           "cast_like"]

# Flag carried by the two scaling multiplies below. Numba's fastmath pass only
# adds the caller's flags to instructions that have none, so a harmless flag
# ('contract' has nothing to fuse in a lone multiply) means 'reassoc' never
# permits regrouping u * 2**a * 2**b into u * 2**(a+b), which would overflow
# or double-round at the ends of the range.
_OWN_FLAGS = ("contract",)


@intrinsic
def _rint(typingctx, x):
    """Round to the nearest integer, ties to even (``llvm.rint``; widens to vroundps)."""
    if x not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.rint", [args[0].type])
        return builder.call(fn, args)

    return x(x), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma``; widens to vfmadd)."""
    if a not in (types.float32, types.float64) or not a == b == c:
        return None

    def codegen(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.fma", [args[0].type] * 3)
        return builder.call(fn, args)

    return a(a, a, a), codegen


@intrinsic
def _scale_pow2(typingctx, u, q):
    """``u * 2**q`` for an integer-valued float ``q``, as two exact power-of-two factors.

    Each factor, 2**(q//2) and 2**(q - q//2), is a normal number built from
    exponent bits on int32 (float32) or int64 (float64) lanes, so the product
    is rounded once even when it is subnormal, and overflows only when the
    rounded result does. Valid for q in [-252, 254] (float32) or
    [-2044, 2046] (float64); the callers clamp x so that q stays far inside,
    which also keeps the float -> int conversion away from LLVM poison (NaN).
    """
    if u not in (types.float32, types.float64) or q != u:
        return None
    nbits, mant, bias = (32, 23, 127) if u == types.float32 else (64, 52, 1023)

    def codegen(context, builder, sig, args):
        uval, qval = args
        fty = uval.type
        ity = ir.IntType(nbits)
        qi = builder.fptosi(qval, ity)
        half = builder.ashr(qi, ir.Constant(ity, 1))
        rest = builder.sub(qi, half)

        def pow2(k):
            return builder.bitcast(builder.shl(builder.add(k, ir.Constant(ity, bias)),
                                               ir.Constant(ity, mant)), fty)

        scaled = builder.fmul(uval, pow2(half), flags=_OWN_FLAGS)
        return builder.fmul(scaled, pow2(rest), flags=_OWN_FLAGS)

    return u(u, u), codegen


# float32 constants (SLEEF expf_u10). Module-level np.float32 globals are
# frozen into the kernels as float32; a bare Python float would be float64.
_F32_R_LN2 = np.float32(1.442695040888963407359924681001892137426645954152985934135449406931)
_F32_NEG_L2U = np.float32(-0.693145751953125)           # ln 2 rounded to 16 bits: q*L2U exact
_F32_NEG_L2L = np.float32(-1.428606765330187045e-06)    # ln 2 - L2U
_F32_C5 = np.float32(0.000198527617612853646278381)
_F32_C4 = np.float32(0.00139304355252534151077271)
_F32_C3 = np.float32(0.00833336077630519866943359)
_F32_C2 = np.float32(0.0416664853692054748535156)
_F32_C1 = np.float32(0.166666671633720397949219)
_F32_C0 = np.float32(0.5)
_F32_ONE = np.float32(1.0)
_F32_UNDER = np.float32(-104.0)   # exp(-104) < 2**-150: the arithmetic rounds it to +0
_F32_OVER = np.float32(100.0)     # exp(100) > FLT_MAX: the arithmetic rounds it to inf

# float64 constants (SLEEF exp_u10).
_F64_R_LN2 = 1.442695040888963407359924681001892137426645954152985934135449406931
_F64_NEG_L2U = -0.693147180559662956511601805686950683593750   # 32 significant bits
_F64_NEG_L2L = -0.282352905630315771225884481750134360255254120680009e-12
_F64_C10 = 2.08860621107283687536341e-09
_F64_C9 = 2.51112930892876518610661e-08
_F64_C8 = 2.75573911234900471893338e-07
_F64_C7 = 2.75572362911928827629423e-06
_F64_C6 = 2.4801587159235472998791e-05
_F64_C5 = 0.000198412698960509205564975
_F64_C4 = 0.00138888888889774492207962
_F64_C3 = 0.00833333333331652721664984
_F64_C2 = 0.0416666666666665047591422
_F64_C1 = 0.166666666666666851703837
_F64_C0 = 0.5
_F64_UNDER = -746.0   # exp(-746) < 2**-1075: the arithmetic rounds it to +0
_F64_OVER = 710.0     # exp(710) > DBL_MAX: the arithmetic rounds it to inf


@njit(inline="always", cache=CACHE)
def exp_f32(x):
    """``exp(x)`` for a float32 ``x``, vectorizable, max error 0.988 ulp (see module doc)."""
    # Clamping first keeps q in [-150, 145]: exp(-104) rounds to +0 and exp(100)
    # to inf by the arithmetic itself. Written so that NaN passes through (one
    # vmaxps + one vminps); its lanes' q is then undefined, and the final
    # select returns the NaN itself for them.
    xc = _F32_UNDER if x < _F32_UNDER else x
    xc = _F32_OVER if xc > _F32_OVER else xc
    q = _rint(xc * _F32_R_LN2)
    s = _fma(q, _F32_NEG_L2U, xc)
    s = _fma(q, _F32_NEG_L2L, s)
    p = _fma(_F32_C5, s, _F32_C4)
    p = _fma(p, s, _F32_C3)
    p = _fma(p, s, _F32_C2)
    p = _fma(p, s, _F32_C1)
    p = _fma(p, s, _F32_C0)
    u = _F32_ONE + _fma(s * s, p, s)
    u = _scale_pow2(u, q)
    # x + x: NaN in, the same NaN out, quieted like any arithmetic would
    return u if x == x else x + x


@njit(inline="always", cache=CACHE)
def exp_f64(x):
    """``exp(x)`` for a float64 ``x``, vectorizable, max error 0.975 ulp (see module doc)."""
    xc = _F64_UNDER if x < _F64_UNDER else x   # q in [-1076, 1024]; as in exp_f32
    xc = _F64_OVER if xc > _F64_OVER else xc
    q = _rint(xc * _F64_R_LN2)
    s = _fma(q, _F64_NEG_L2U, xc)
    s = _fma(q, _F64_NEG_L2L, s)
    s2 = s * s
    hi = _fma(_F64_C10, s, _F64_C9)
    hi = _fma(hi, s, _F64_C8)
    hi = _fma(hi, s, _F64_C7)
    hi = _fma(hi, s, _F64_C6)
    hi = _fma(hi, s, _F64_C5)
    p = _fma(hi, s, _F64_C4)
    p = _fma(p, s, _F64_C3)
    p = _fma(p, s, _F64_C2)
    p = _fma(p, s, _F64_C1)
    p = _fma(p, s, _F64_C0)
    u = 1.0 + _fma(s2, p, s)
    u = _scale_pow2(u, q)
    return u if x == x else x + x


# ------------------------------------------------------------------------------ log
# Flag carried by every floating-point instruction of log_f32 / log1p_f32. They rely
# on exact steps (Fast2Sum, TwoSum) that 'reassoc' would fold to zero and on roundings
# that 'contract' would fuse away; an instruction with a flag of its own is left alone
# by Numba's fastmath pass. 'afn' concerns only calls to library functions, so on an
# add or a multiply it permits nothing.
_EXACT_FLAGS = ("afn",)


def _binop(name):
    def impl(typingctx, a, b):
        if a not in (types.float32, types.float64) or a != b:
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1], flags=_EXACT_FLAGS)

        return a(a, a), codegen
    return intrinsic(impl)


_add = _binop("fadd")
_sub = _binop("fsub")
_mul = _binop("fmul")
_div = _binop("fdiv")


@intrinsic
def _split_sqrt2(typingctx, u):
    """``(m, k)``: ``u = m * 2**k``, ``m`` in [sqrt(1/2), sqrt(2)), ``k`` an integer-valued float.

    For positive normal finite ``u`` only (callers select other inputs away). Integer
    work on the bit pattern: subtracting the pattern of sqrt(1/2) makes the exponent
    field count from there, an arithmetic shift reads ``k``, and removing ``k`` from
    the exponent field leaves ``m``.
    """
    if u not in (types.float32, types.float64):
        return None
    nbits, mant, off = (32, 23, 0x3F3504F3) if u == types.float32 else (64, 52, 0x3FE6A09E667F3BCD)
    tup = types.UniTuple(u, 2)

    def codegen(context, builder, sig, args):
        fty = args[0].type
        ity = ir.IntType(nbits)
        bits = builder.bitcast(args[0], ity)
        k = builder.ashr(builder.sub(bits, ir.Constant(ity, off)), ir.Constant(ity, mant))
        m = builder.bitcast(builder.sub(bits, builder.shl(k, ir.Constant(ity, mant))), fty)
        kf = builder.sitofp(k, fty)
        return context.make_tuple(builder, tup, (m, kf))

    return tup(u), codegen


# ln 2 split for the float32 log: LN2_HI has 15 significant bits, so k*LN2_HI is exact
# for |k| < 2**9 (|k| <= 152 here); LN2_LO = ln 2 - LN2_HI rounded.
_F32_LN2_HI = np.float32(0.693145751953125)
_F32_LN2_LO = np.float32(1.428606765330187e-06)
# (log1p(f) - f) / f**2 on f in [sqrt(1/2) - 1, sqrt(2) - 1]: degree-9 Chebyshev fit
# (mpmath.chebyfit), coefficients rounded to float32; relative error 1.6e-8 (2**-25.9),
# of a term that is at most 0.2 of the result: below 0.05 ulp of the result.
_F32_LOG_Q = tuple(np.float32(float.fromhex(h)) for h in (
    "0x1.1542680000000p-4", "-0x1.d962f80000000p-4", "0x1.e3d3380000000p-4",
    "-0x1.fcc1ae0000000p-4", "0x1.237a560000000p-3", "-0x1.5559e60000000p-3",
    "0x1.99a1300000000p-3", "-0x1.0000080000000p-2", "0x1.55554e0000000p-2",
    "-0x1.0000000000000p-1"))
(_F32_Q9, _F32_Q8, _F32_Q7, _F32_Q6, _F32_Q5, _F32_Q4, _F32_Q3, _F32_Q2, _F32_Q1,
 _F32_Q0) = _F32_LOG_Q
_F32_ZERO = np.float32(0.0)
_F32_INF = np.float32(np.inf)
_F32_NAN = np.float32(np.nan)
_F32_TINY = np.float32(2.0**-126)   # smallest normal float32
_F32_TWO24 = np.float32(2.0**24)    # scales a subnormal up to a normal number exactly
_F32_NEG24 = np.float32(-24.0)


@njit(inline="always", cache=CACHE)
def _log_core_f32(u, k0, c):
    """``log(u) + k0*ln 2 + c`` for positive normal finite float32 ``u``, ``|c| <= 2**-24``.

    ``log(u) = k*ln 2 + log1p(f)`` with ``f = m - 1`` exact (Sterbenz, m in
    [sqrt(1/2), sqrt(2))). The large part ``k*LN2_HI + f`` is formed exactly as a
    Fast2Sum pair (``|k*LN2_HI| >= ln 2 > |f|`` when k != 0, and exact when k = 0); the
    small part ``f**2*Q(f) + k*LN2_LO + c`` is at most 0.2 of the result, so its
    rounding errors count for a fifth of an ulp. One rounding joins the two.
    """
    m, k = _split_sqrt2(u)
    k = _add(k, k0)
    f = _sub(m, _F32_ONE)
    a = _mul(k, _F32_LN2_HI)
    s = _add(a, f)
    e = _add(_sub(a, s), f)
    q = _fma(_F32_Q9, f, _F32_Q8)
    q = _fma(q, f, _F32_Q7)
    q = _fma(q, f, _F32_Q6)
    q = _fma(q, f, _F32_Q5)
    q = _fma(q, f, _F32_Q4)
    q = _fma(q, f, _F32_Q3)
    q = _fma(q, f, _F32_Q2)
    q = _fma(q, f, _F32_Q1)
    q = _fma(q, f, _F32_Q0)
    tail = _fma(_mul(f, f), q, _fma(k, _F32_LN2_LO, c))
    return _add(s, _add(e, tail))


@njit(inline="always", cache=CACHE)
def log_f32(x):
    """``log(x)`` for a float32 ``x``, vectorizable, max error 0.85 ulp (see module doc).

    Subnormal ``x`` is scaled by 2**24 first. ``log(+-0) = -inf``, ``log(x < 0) = NaN``,
    ``log(inf) = inf``, NaN in gives NaN out.
    """
    sub = x < _F32_TINY
    u = _mul(x, _F32_TWO24) if sub else x
    k0 = _F32_NEG24 if sub else _F32_ZERO
    r = _log_core_f32(u, k0, _F32_ZERO)
    r = r if x < _F32_INF else _F32_INF     # +inf; NaN stays NaN below
    r = r if x > _F32_ZERO else -_F32_INF   # +-0 (and, below, negatives and NaN)
    return r if x >= _F32_ZERO else x + _F32_NAN  # negative: NaN; NaN: NaN (quieted)


@njit(inline="always", cache=CACHE)
def log1p_f32(z):
    """``log(1 + z)`` for a float32 ``z``, vectorizable, max error 0.86 ulp (see module doc).

    ``u = 1 + z`` rounded and its exact error ``err`` (TwoSum) give
    ``log1p(z) = log(u) + log1p(err/u) = log(u) + err/u`` to far below an ulp
    (``|err/u| <= 2**-24``). ``log1p(+-0) = +-0``, ``log1p(-1) = -inf``,
    ``log1p(z < -1) = NaN``, ``log1p(inf) = inf``, NaN in gives NaN out.
    """
    u = _add(_F32_ONE, z)
    b = _sub(u, _F32_ONE)
    err = _add(_sub(_F32_ONE, _sub(u, b)), _sub(z, b))
    # u >= 2**-24 whenever z > -1, so u is normal; the selects below replace the rest
    uu = u if u > _F32_ZERO else _F32_ONE
    r = _log_core_f32(uu, _F32_ZERO, _div(err, uu))
    r = r if z < _F32_INF else _F32_INF
    r = r if z != _F32_ZERO else z           # keeps the sign of zero
    r = r if u > _F32_ZERO else -_F32_INF    # z = -1 (and, below, z < -1 and NaN)
    return r if z >= -_F32_ONE else z + _F32_NAN


# ----------------------------------------------------------------------------- exp(x - m)
# ``exp_diff(x, m)``: ``exp(x - m)`` as if the difference were exact, for float32 or
# float64, vectorizable: the one exp of every cross-entropy kernel.

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


# The exps below are exp_f32 / exp_f64 above with one change: the argument is
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
def _two_diff(x, m):
    """``(d, err)``: ``d = x - m`` rounded and its exact error (2Sum, ``d + err == x - m``)."""
    d = x - m
    bv = d - x
    return d, (x - (d - bv)) + ((-m) - bv)


@njit(cache=CACHE, error_model="numpy")
def _exp_core_f32(xc, err):
    """``(q, u)``: ``exp(xc + err) = u * 2**q`` for a clamped float32 ``xc`` (exp_f32's steps)."""
    q = _rint(xc * _F32_R_LN2)
    r = _fma(q, _F32_NEG_L2U, xc)
    r = _fma(q, _F32_NEG_L2L, r) + err
    p = _fma(_F32_C5, r, _F32_C4)
    p = _fma(p, r, _F32_C3)
    p = _fma(p, r, _F32_C2)
    p = _fma(p, r, _F32_C1)
    p = _fma(p, r, _F32_C0)
    return q, _F32_ONE + _fma(r * r, p, r)


@njit(cache=CACHE, error_model="numpy")
def _exp_core_f64(xc, err):
    """``(q, u)``: ``exp(xc + err) = u * 2**q`` for a clamped float64 ``xc`` (exp_f64's steps)."""
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
    return q, 1.0 + _fma(r * r, p, r)


@njit(cache=CACHE, error_model="numpy")
def _exp_diff_f32(x, m):
    d, err = _two_diff(x, m)
    xc = _F32_UNDER if d < _F32_UNDER else d
    xc = _F32_OVER if xc > _F32_OVER else xc
    # Clamped, inf or NaN: the result is 0, inf or NaN whatever err is (err may be NaN).
    err = err if xc == d else _F32_ZERO
    q, u = _exp_core_f32(xc, err)
    u = _scale_pow2(u, q)
    return u if d == d else d + d


@njit(cache=CACHE, error_model="numpy")
def _exp_diff_f64(x, m):
    d, err = _two_diff(x, m)
    xc = _F64_UNDER if d < _F64_UNDER else d
    xc = _F64_OVER if xc > _F64_OVER else xc
    err = err if xc == d else 0.0
    q, u = _exp_core_f64(xc, err)
    u = _scale_pow2(u, q)
    return u if d == d else d + d


def exp_diff(x, m):  # pragma: no cover - replaced by the overload inside compiled code
    """``exp(x - m)`` as if ``x - m`` were exact (see the comment above)."""
    return math.exp(x - m)


def _overload_by_dtype(func, impl_f32, impl_f64):
    """Register ``func(x, m)`` for two float32 or two float64 arguments (nothing else types)."""
    @overload(func)
    def _ov(x, m):
        if x == types.float32 and m == types.float32:
            return lambda x, m: impl_f32(x, m)
        if x == types.float64 and m == types.float64:
            return lambda x, m: impl_f64(x, m)
        return None


_overload_by_dtype(exp_diff, _exp_diff_f32, _exp_diff_f64)


# ``exp_below(x, m)``: ``exp_diff`` for ``x - m <= 43`` (the row scans shift by the max of
# the terms, or by a guess of it that they check), the same bits there for a few
# instructions less: no overflow clamp (exp(43) is far from overflowing), and ``2**q``
# with ``q <= 62`` as ``2**(q + K) * 2**-K``: ``u * 2**(q + K)`` is exact (a normal number
# for every q that occurs) and the constant factor rounds once, so the product is the one
# ``_scale_pow2`` forms, for one integer add and shift instead of three. NaN and
# ``x - m = -inf`` (``x = -inf``, or a difference that overflows) give NaN and 0 as in
# ``exp_diff``; ``x - m > 43`` is outside the contract (the result is then not exp).
# Accuracy (both functions, float32): the rounding of ``r + err`` adds up to 0.347 ulp to
# exp_f32's 0.988; measured max 1.13 ulp on 4e7 random pairs, 1 in 1e6 above 1 ulp
# (tests/test_fastmath.py). ~1.3x (float32) / 1.2x (float64) the speed of ``exp_diff``.

@intrinsic
def _scale_pow2_neg(typingctx, u, q):
    """``u * 2**q`` for an integer-valued float ``q`` in [-150, 62] (float32) or [-1077, 62].

    ``2**(q + K)`` from exponent bits (K = 64 / 512, so it is normal), then the exact power
    of two ``2**-K``: one rounding, the same product as :func:`_scale_pow2`.
    """
    if u not in (types.float32, types.float64) or q != u:
        return None
    nbits, mant, bias, k = (32, 23, 127, 64) if u == types.float32 else (64, 52, 1023, 512)

    def codegen(context, builder, sig, args):
        uval, qval = args
        fty = uval.type
        ity = ir.IntType(nbits)
        qi = builder.fptosi(qval, ity)
        up = builder.bitcast(builder.shl(builder.add(qi, ir.Constant(ity, bias + k)),
                                         ir.Constant(ity, mant)), fty)
        down = ir.Constant(fty, 2.0 ** -k)
        scaled = builder.fmul(uval, up, flags=_OWN_FLAGS)
        return builder.fmul(scaled, down, flags=_OWN_FLAGS)

    return u(u, u), codegen


@njit(cache=CACHE, error_model="numpy")
def _exp_below_f32(x, m):
    d, err = _two_diff(x, m)
    xc = _F32_UNDER if d < _F32_UNDER else d
    err = err if xc == d else _F32_ZERO
    q, u = _exp_core_f32(xc, err)
    u = _scale_pow2_neg(u, q)
    return u if d == d else d + d


@njit(cache=CACHE, error_model="numpy")
def _exp_below_f64(x, m):
    d, err = _two_diff(x, m)
    xc = _F64_UNDER if d < _F64_UNDER else d
    err = err if xc == d else 0.0
    q, u = _exp_core_f64(xc, err)
    u = _scale_pow2_neg(u, q)
    return u if d == d else d + d


def exp_below(x, m):  # pragma: no cover - replaced by the overload inside compiled code
    """``exp(x - m)`` for ``x - m <= 43`` as if ``x - m`` were exact (see the comment above)."""
    return math.exp(x - m)


_overload_by_dtype(exp_below, _exp_below_f32, _exp_below_f64)


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


# ------------------------------------------------------------------ log1p on [-1, 1] halves
# The binary cross-entropies take log1p of arguments whose sign is known: ``log1p(-p)`` of
# a probability p in [0, 1] and ``log1p(e)`` of ``e = exp(-|x|)`` in [0, 1]. There
# ``u = 1 + z`` and its exact error come from Fast2Sum (|1| >= |z|: two operations where
# TwoSum takes five) and most special-value selects of ``log1p_f32`` cannot fire, so the
# two functions below return the bits of ``log1p_f32`` on their domain with fewer
# instructions (tests/test_bce_speedpath.py compares them). Outside the domain the result
# is unspecified.

@njit(inline="always", cache=CACHE)
def log1m_f32(p):
    """``log1p(-p)`` for a float32 ``p`` in [0, 1] or NaN: the bits of ``log1p_f32(-p)``.

    ``log1m_f32(0) = -0.0``, ``log1m_f32(1) = -inf``, NaN in gives NaN out.
    """
    u = _sub(_F32_ONE, p)
    err = _sub(_sub(_F32_ONE, u), p)   # Fast2Sum: 1 - p = u + err exactly
    uu = u if u > _F32_ZERO else _F32_ONE
    r = _log_core_f32(uu, _F32_ZERO, _div(err, uu))
    r = r if p != _F32_ZERO else -p       # log1p(-0) = -0
    return r if u > _F32_ZERO else -_F32_INF if p == _F32_ONE else p + _F32_NAN


@njit(inline="always", cache=CACHE)
def log1p_unit_f32(z):
    """``log1p(z)`` for a float32 ``z`` in [0, 1] or NaN: the bits of ``log1p_f32(z)``.

    ``log1p_unit_f32(+-0) = +-0``, NaN in gives NaN out.
    """
    u = _add(_F32_ONE, z)
    err = _sub(z, _sub(u, _F32_ONE))   # Fast2Sum: 1 + z = u + err exactly
    r = _log_core_f32(u, _F32_ZERO, _div(err, u))  # u in [1, 2]: normal
    r = r if z != _F32_ZERO else z        # keeps the sign of zero
    return r if z == z else z + _F32_NAN
