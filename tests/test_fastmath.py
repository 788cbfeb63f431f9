"""Accuracy, special values, flag independence and vectorization of nbxent._cpu.fastmath.

Error is measured in ulps of the exact value, ``|y - f(x)| / ulp(f(x))``,
where ``ulp`` is the spacing of the float format at the exact value (subnormal
spacing below the smallest normal). The references are more accurate than the
bound they check by many orders of magnitude:

* float32: ``np.exp`` / ``np.log`` / ``np.log1p`` in float64 (error <= 1 float64 ulp =
  2**-29 float32 ulp).
* float64: ``np.exp`` in x87 extended precision (``np.longdouble``, 64-bit
  significand: error ~2**-11 float64 ulp); mpmath at 40 digits on the boundary
  points, and everywhere when ``longdouble`` is not wider than float64.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import njit, prange

from nbxent._cpu.fastmath import exp_below, exp_diff, exp_f32, exp_f64, log1p_f32, log_f32

# The flags the CE/BCE kernels are allowed to use; exp must not depend on them.
KERNEL_FM = {"contract", "arcp", "reassoc"}

# Accuracy contract from the module docstring: at most 1 ulp of the exact
# value (SLEEF's u10 polynomials; measured maxima 0.986 float32, 0.975 float64).
# The float32 reference contributes at most 2**-29 ulp, the float64 one ~2**-11,
# so the bound is checked with that much added and no more.
MAX_ULP_F32 = 1.0 + 2.0**-29
MAX_ULP_F64 = 1.0 + 2.0**-10

F32_MAX = float(np.finfo(np.float32).max)


@njit(fastmath=KERNEL_FM)
def _map32_fm(x, out):
    for i in range(x.size):
        out[i] = exp_f32(x[i])


@njit
def _map32_plain(x, out):
    for i in range(x.size):
        out[i] = exp_f32(x[i])


@njit(parallel=True, fastmath=KERNEL_FM)
def _map32_parallel_shifted(x, m, out):
    # The shape a fused CE kernel uses: exp(x - row max) inside prange.
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = exp_f32(x[i, j] - m[i])


@njit(fastmath=KERNEL_FM)
def _map64_fm(x, out):
    for i in range(x.size):
        out[i] = exp_f64(x[i])


@njit
def _map64_plain(x, out):
    for i in range(x.size):
        out[i] = exp_f64(x[i])


def _exp32(x, fn=_map32_fm):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    fn(x, out)
    return out


def _exp64(x, fn=_map64_fm):
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    fn(x, out)
    return out


def _ulp_of(exact, nmant, emin):
    """Spacing of a float format with ``nmant`` fraction bits at the (positive) exact value."""
    _, e = np.frexp(exact)
    return np.ldexp(np.ones_like(exact), np.maximum(e - 1, emin) - nmant)


def _ulp_errors(y, exact, nmant, emin, finfo_max):
    """Error of ``y`` in ulps of ``exact``; 0 where both overflow (y = inf, exact > max + ulp/2)."""
    exact = np.asarray(exact)
    wide = exact.dtype
    ulp = _ulp_of(exact, nmant, emin)
    overflow = exact >= wide.type(finfo_max) + ulp / 2
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(y.astype(wide) - exact) / ulp
    return np.where(overflow & np.isposinf(y), 0.0, err)


def _report(x, y, err, bound):
    k = int(np.argmax(err))
    return (f"{int((err > bound).sum())} of {err.size} beyond {bound} ulp; worst {float(err[k]):.4f} ulp "
            f"at x={x[k]!r} (bits {np.asarray(x[k]).view(np.uint32 if x.dtype == np.float32 else np.uint64)!r}): "
            f"got {y[k]!r}")


def _f32_from_bits(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def _f32_bits(v):
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def _f32_sample():
    """Every 4099th bit pattern of all 2**32, plus every pattern in the boundary regions."""
    parts = [np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)]
    radius = 2**15
    for center in (88.72283935546875,    # overflow threshold
                   -87.33654475,          # results become subnormal
                   -103.97207708,         # results become 0
                   -104.0, 100.0,         # the input clamps
                   1.0, -1.0, 0.34657359, -0.34657359):  # |s| = ln2/2: q changes
        b = _f32_bits(center)
        parts.append(np.arange(b - radius, b + radius, dtype=np.int64).astype(np.uint32))
    parts.append(np.arange(0, 2**16, dtype=np.uint32))                 # +0 and +subnormals
    parts.append(np.arange(0, 2**16, dtype=np.uint32) | np.uint32(2**31))  # -0 and -subnormals
    x = _f32_from_bits(np.concatenate(parts))
    return x[np.isfinite(x)]


def test_exp_f32_ulp_error_over_the_domain():
    x = _f32_sample()
    y = _exp32(x)
    with np.errstate(over="ignore"):  # x > 709 overflows the float64 reference to inf, as it should
        exact = np.exp(x.astype(np.float64))
    err = _ulp_errors(y, exact, 23, -126, F32_MAX)
    assert err.max() <= MAX_ULP_F32, _report(x, y, err, MAX_ULP_F32)
    # Within one step of the correctly rounded value. Rounding the float64 reference
    # to float32 could pick the wrong neighbour only within 2**-29 ulp of a midpoint,
    # which would show up here as a reported 2-step case to inspect, not pass silently.
    with np.errstate(over="ignore"):
        cr = exact.astype(np.float32)
    steps = np.abs(y.view(np.int32).astype(np.int64) - cr.view(np.int32).astype(np.int64))
    assert steps.max() <= 1, _report(x, y, steps.astype(float), 1)


def test_exp_f32_gradual_underflow_and_overflow_edges():
    # Smallest x with a nonzero result, largest with a finite one: compared with
    # the correctly rounded float32 of the float64 exp at every pattern nearby.
    x = _f32_from_bits(np.arange(_f32_bits(-103.96), _f32_bits(-103.99), dtype=np.uint32))
    y = _exp32(x)
    cr = np.exp(x.astype(np.float64)).astype(np.float32)
    assert np.all((y == 0) == (cr == 0)), "zero/nonzero boundary differs from correct rounding"
    assert np.all(np.abs(y.view(np.int32) - cr.view(np.int32)) <= 1)
    x = _f32_from_bits(np.arange(_f32_bits(88.72), _f32_bits(88.73), dtype=np.uint32))
    y = _exp32(x)
    with np.errstate(over="ignore"):
        cr = np.exp(x.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isinf(y), np.isinf(cr)), "overflow boundary differs from correct rounding"


@pytest.mark.parametrize("fn", [_map32_fm, _map32_plain], ids=["kernel-flags", "no-flags"])
def test_exp_f32_special_values_exact(fn):
    nan_bits = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF]  # quiet, negative, signalling payloads
    x = np.array([0.0, -0.0, np.inf, -np.inf, F32_MAX, -F32_MAX, 1e-45, -1e-45, 200.0, -200.0],
                 dtype=np.float32)
    y = _exp32(x, fn)
    expected = np.array([1, 1, np.inf, 0, np.inf, 0, 1, 1, np.inf, 0], dtype=np.float32)
    assert np.array_equal(y, expected), y
    assert not np.signbit(y).any(), "exp never returns -0.0"
    assert np.isnan(_exp32(_f32_from_bits(nan_bits), fn)).all()


def test_exp_f32_bits_do_not_depend_on_the_fastmath_flags():
    x = _f32_sample()
    a, b = _exp32(x, _map32_fm), _exp32(x, _map32_plain)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_exp_f32_inside_a_parallel_row_kernel():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((37, 1029)) * 30).astype(np.float32)
    x[3, 5], x[4, :] = np.nan, -np.inf
    x[4, 0] = 0.0
    m = x.max(axis=1)
    m[3] = x[3, np.isfinite(x[3])].max()
    out = np.empty_like(x)
    _map32_parallel_shifted(x, m, out)
    ref = _exp32((x - m[:, None]).ravel(), _map32_plain).reshape(x.shape)
    assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))


def test_exp_f32_matches_torch_softmax_bits():
    # torch's CPU softmax evaluates SLEEF expf_u10; on a row [0, x] with x < -17
    # the sum rounds to 1, so softmax[1] is exactly torch's exp(x).
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.uniform(-103.5, -17.5, 50_000).astype(np.float32)
    rows = np.zeros((x.size, 2), dtype=np.float32)
    rows[:, 1] = x
    expected = torch.softmax(torch.from_numpy(rows), dim=1)[:, 1].numpy()
    y = _exp32(x)
    mismatch = y.view(np.uint32) != expected.view(np.uint32)
    assert not mismatch.any(), _report(x, y, mismatch.astype(float), 0)


def _wide_reference(x):
    """exp(x) at >= 64 significant bits: long double where it is x87 extended, else mpmath."""
    if np.finfo(np.longdouble).nmant >= 63:
        return np.exp(x.astype(np.longdouble))
    import mpmath
    with mpmath.workdps(40):
        return np.array([float(mpmath.exp(mpmath.mpf(float(v)))) for v in x], dtype=np.float64)


def _f64_sample(rng):
    uniform = rng.uniform(-746.0, 710.0, 1_000_000)
    small = rng.choice([-1.0, 1.0], 400_000) * np.exp(rng.uniform(-745, 6.5, 400_000))
    edges = []
    for center in (709.782712893384, -708.3964185322641, -745.1332191019411,
                   0.34657359027997264, -0.34657359027997264, 1.0, -1.0):
        c = np.float64(center)
        steps = np.arange(-2000, 2001)
        edges.append(c + steps * np.spacing(c))                          # bit neighbours
        edges.append(c + rng.uniform(-1e-6, 1e-6, 4000) * max(1.0, abs(center)))
    return np.concatenate([uniform, small] + edges)


def test_exp_f64_ulp_error():
    rng = np.random.default_rng(20261122)
    x = _f64_sample(rng)
    if np.finfo(np.longdouble).nmant < 63:
        x = x[::64]  # mpmath reference: ~25k points keep the run short
    y = _exp64(x)
    exact = _wide_reference(x)
    err = _ulp_errors(y, exact, 52, -1022, float(np.finfo(np.float64).max))
    err = np.where(np.isfinite(exact) | np.isposinf(y), err, np.inf)
    assert err.max() <= MAX_ULP_F64, _report(x, y, err, MAX_ULP_F64)


def test_exp_f64_boundaries_against_mpmath():
    mpmath = pytest.importorskip("mpmath")
    xs = [709.782712893384, 709.7827128933841, -708.3964185322641, -708.4, -745.1332191019411,
          -745.1332191019412, -745.13321910194122, -744.44007192138122, -0.34657359027997264,
          0.34657359027997264, 1e-300, -1e-300, 2.0**-30, 1.0]
    x = np.array(xs, dtype=np.float64)
    y = _exp64(x)
    for xi, yi in zip(x, y):
        with mpmath.workdps(60):
            exact = mpmath.exp(mpmath.mpf(float(xi)))
            _, e = mpmath.frexp(exact)
            ulp = mpmath.ldexp(1, max(int(e) - 1, -1022) - 52)
            if exact > mpmath.mpf(np.finfo(np.float64).max) + ulp / 2:
                assert yi == np.inf, (xi, yi)
                continue
            err = float(abs(mpmath.mpf(float(yi)) - exact) / ulp)
        # mpmath at 60 digits is exact for this purpose: the bound is the contract itself.
        assert err <= 1.0, f"exp_f64({xi!r}) = {yi!r}: {err:.4f} ulp"


@pytest.mark.parametrize("fn", [_map64_fm, _map64_plain], ids=["kernel-flags", "no-flags"])
def test_exp_f64_special_values_exact(fn):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e308, -1e308, 5e-324, 800.0, -800.0])
    y = _exp64(x, fn)
    expected = np.array([1, 1, np.inf, 0, np.nan, np.nan, np.inf, 0, 1, np.inf, 0])
    assert np.array_equal(y, expected, equal_nan=True), y
    assert not np.signbit(y[~np.isnan(y)]).any()


def test_exp_f64_bits_do_not_depend_on_the_fastmath_flags():
    x = _f64_sample(np.random.default_rng(3))
    a, b = _exp64(x, _map64_fm), _exp64(x, _map64_plain)
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))


@njit(fastmath=KERNEL_FM)
def _map_below_fm(x, m, out):
    for i in range(x.size):
        out[i] = exp_below(x[i], m[i])


@njit
def _map_below_plain(x, m, out):
    for i in range(x.size):
        out[i] = exp_below(x[i], m[i])


@njit(fastmath=KERNEL_FM)
def _map_diff_fm(x, m, out):
    for i in range(x.size):
        out[i] = exp_diff(x[i], m[i])


def _below_pairs(dtype, rng, n=400_000):
    """``(x, m)`` with ``x - m <= 43``: shifts of every magnitude, differences across the
    whole range of the exp (subnormal and zero results included), and the special values."""
    big = 3e38 if dtype == np.float32 else 1e308
    m = (rng.standard_normal(n) * rng.choice([1e-30, 1e-3, 1.0, 30.0, 1e3, 1e30, big / 4], n))
    with np.errstate(over="ignore", invalid="ignore"):    # d = -inf where |d| > DBL_MAX
        d = -np.abs(rng.standard_normal(n) * rng.choice([1e-6, 1.0, 30.0, 90.0, 110.0, 720.0, 760.0,
                                                         big], n))
        m = m.astype(dtype)
        x = np.minimum((m.astype(np.float64) + d).astype(dtype), m)
    up = rng.random(n) < 0.2                                 # 0 < x - m <= 43
    x[up] = np.minimum((m[up].astype(np.float64) + rng.uniform(0.0, 43.0, up.sum())).astype(dtype),
                       (m[up].astype(np.float64) + 43.0).astype(dtype))
    x[:100], m[:100] = -np.inf, dtype(1.0)                  # x = -inf: 0
    x[100:200] = np.nan                                      # NaN
    x[200:300], m[200:300] = dtype(2.0), np.inf              # finite - inf: 0
    x[300:400], m[300:400] = np.inf, np.inf                  # inf - inf: NaN
    x[400:500], m[400:500] = -np.inf, -np.inf                # -inf - -inf: NaN
    x[500:600], m[500:600] = -big, big                       # the difference overflows: 0
    return np.ascontiguousarray(x), np.ascontiguousarray(m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_exp_below_has_the_bits_of_exp_diff_and_no_flag_changes_them(dtype):
    # exp_below is exp_diff with steps that are exact for x - m <= 43 left out: same bits there
    x, m = _below_pairs(dtype, np.random.default_rng(11))
    outs = []
    for fn in (_map_below_fm, _map_below_plain, _map_diff_fm):
        out = np.empty_like(x)
        fn(x, m, out)
        outs.append(out)
    itype = np.uint32 if dtype == np.float32 else np.uint64
    assert ((outs[0] > 0) & (outs[0] < np.finfo(dtype).tiny)).sum() > 100, "no subnormal result sampled"
    for other in outs[1:]:
        same = (outs[0].view(itype) == other.view(itype)) | (np.isnan(outs[0]) & np.isnan(other))
        k = int(np.argmin(same))
        assert same.all(), f"{int((~same).sum())} differ; first x={x[k]!r} m={m[k]!r}: {outs[0][k]!r} vs {other[k]!r}"


#: exp(x - m) for an inexact float32 difference: exp_f32's 0.988 ulp (the same polynomial
#: and scaling) plus the rounding of the reduced argument ``r + err`` (relative 2**-24 of
#: ``|r| <= ln2/2``, so at most 0.347 ulp of the result); measured 1.13 ulp on 4e7 pairs,
#: 1 in 1e6 beyond 1 ulp. The float64 reference adds 2**-29.
MAX_ULP_BELOW_F32 = 0.988 + 0.347 + 2.0**-29


def test_exp_below_f32_ulp_error():
    # |x|, |m| in [1e-3, 128]: both float32 on a grid of 2**-34 below 2**8, so the float64
    # difference is exact and exp of it (float64) is the reference (2**-29 ulp).
    rng = np.random.default_rng(12)
    n = 600_000
    m = (rng.uniform(1e-3, 128.0, n) * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    x = (m.astype(np.float64) - rng.uniform(0.0, 110.0, n)).astype(np.float32)
    x = np.where(np.abs(x) < 1e-3, np.float32(-1e-3), x)
    x = np.minimum(x, m)
    out = np.empty_like(x)
    _map_below_fm(x, m, out)
    exact = np.exp(x.astype(np.float64) - m.astype(np.float64))
    err = _ulp_errors(out, exact, 23, -126, F32_MAX)
    assert err.max() <= MAX_ULP_BELOW_F32, _report(x - m, out, err, MAX_ULP_BELOW_F32)


def _host_has(*features):
    import llvmlite.binding as llvm
    flags = llvm.get_host_cpu_features()
    return all(flags.get(f, False) for f in features)


# Packed round-to-integer mnemonics: AVX/AVX2 hosts get ``vroundps/pd``; AVX-512
# hosts get ``vrndscaleps/pd`` (the EVEX form LLVM prefers there, also on ymm).
_PACKED_RINT = ("vround", "vrndscale")


@pytest.mark.skipif(not _host_has("avx2", "fma"), reason="vector width check needs an AVX2+FMA host")
@pytest.mark.parametrize(
    "fn,dtype,suffix", [(_map32_fm, np.float32, "ps"), (_map64_fm, np.float64, "pd")], ids=["f32", "f64"]
)
def test_loop_over_exp_is_vectorized(fn, dtype, suffix):
    # LLVM widened the loop body: packed (ymm/zmm) fma, round and integer shifts
    # appear; a scalar loop would use only vfmadd..ss/sd on xmm registers.
    # Compile here for the contiguous 1-D signature, so the check does not
    # depend on another test having compiled the function first.
    x = np.zeros(8, dtype=dtype)
    fn(x, np.empty_like(x))
    sig = next(s for s in fn.signatures if s[0].dtype == numba.from_dtype(np.dtype(dtype)) and s[0].layout == "C")
    asm = fn.inspect_asm(sig)
    lines = [ln for ln in asm.splitlines() if "%ymm" in ln or "%zmm" in ln]
    mnemonics = [ln.split()[0] for ln in lines]
    assert any(m.startswith("vfmadd") and m.endswith(suffix) for m in mnemonics), "no packed fma"
    assert any(m.startswith(_PACKED_RINT) and m.endswith(suffix) for m in mnemonics), "no packed rint"
    assert any(m.startswith(("vpsll", "vpsra")) for m in mnemonics), "no packed exponent shifts"


def test_wrong_argument_type_does_not_compile():
    from numba.core.errors import TypingError

    @njit
    def f(v):
        return exp_f32(v)

    with pytest.raises(TypingError):
        f(1.0)  # a Python float is float64: the float32 function must refuse it


# --------------------------------------------------------------------- log / log1p
# Contract from the module docstring: at most 1 ulp of the exact value (measured over every
# float32: 0.8404 ulp log_f32, 0.8508 ulp log1p_f32); the float64 reference adds <= 2**-29 ulp.
MAX_ULP_LOG32 = 1.0 + 2.0**-29


@njit(fastmath=KERNEL_FM)
def _log32_fm(x, out):
    for i in range(x.size):
        out[i] = log_f32(x[i])


@njit
def _log32_plain(x, out):
    for i in range(x.size):
        out[i] = log_f32(x[i])


@njit(fastmath=KERNEL_FM)
def _log1p32_fm(x, out):
    for i in range(x.size):
        out[i] = log1p_f32(x[i])


@njit
def _log1p32_plain(x, out):
    for i in range(x.size):
        out[i] = log1p_f32(x[i])


LOGS = {"log": (_log32_fm, _log32_plain, np.log), "log1p": (_log1p32_fm, _log1p32_plain, np.log1p)}


def _run32(fn, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    fn(x, out)
    return out


def _around(center, radius=2**14):
    b = _f32_bits(center)
    return _f32_from_bits(np.arange(b - radius, b + radius, dtype=np.int64).astype(np.uint32))


def _log_sample(name):
    """Every 4099th bit pattern of all 2**32 plus every pattern where the reduction changes."""
    parts = [_f32_from_bits(np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32))]
    parts.append(_f32_from_bits(np.arange(0, 2**16, dtype=np.uint32)))     # +0 and subnormals
    parts.append(_f32_from_bits(np.arange(0, 2**16, dtype=np.uint32) | np.uint32(2**31)))
    if name == "log":  # m crosses sqrt(2) (k changes), x = 1 (log = 0), the subnormal edge
        centers = (1.0, 2.0**0.5, 2.0**-0.5, 2.0**0.5 * 2.0**-100, 2.0**-126, 2.0**100, 3.0e38)
    else:  # z = 0, z = -1, 1 + z crosses sqrt(2) or sqrt(1/2), 1 + z crosses a power of 2
        centers = (0.0, -1.0 + 2.0**-10, -1.0 + 2.0**-20, 2.0**0.5 - 1, 2.0**-0.5 - 1, 1.0,
                   -0.5, 2.0**24, 3.0e38)
    parts += [_around(c) for c in centers]
    parts.append(_f32_from_bits(np.arange(_f32_bits(-1.0) - 2**14, _f32_bits(-1.0) + 1,
                                          dtype=np.int64).astype(np.uint32)))  # just above -1
    x = np.concatenate(parts)
    return x[np.isfinite(x)]


@pytest.mark.parametrize("name", LOGS)
def test_log_f32_and_log1p_f32_ulp_error(name):
    fm, _, ref = LOGS[name]
    x = _log_sample(name)
    y = _run32(fm, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = ref(x.astype(np.float64))
    finite = np.isfinite(exact)
    err = _ulp_errors(y[finite], exact[finite], 23, -126, F32_MAX)
    assert err.max() <= MAX_ULP_LOG32, _report(x[finite], y[finite], err, MAX_ULP_LOG32)
    # within one step of the correctly rounded float32 (see the exp test for why this is safe)
    cr = exact[finite].astype(np.float32)
    steps = np.abs(y[finite].view(np.int32).astype(np.int64) - cr.view(np.int32).astype(np.int64))
    assert steps.max() <= 1, _report(x[finite], y[finite], steps.astype(float), 1)
    # outside the finite range: the same inf / NaN as the reference
    nf = ~finite
    assert np.array_equal(y[nf], exact[nf].astype(np.float32), equal_nan=True)


@pytest.mark.parametrize("name", LOGS)
@pytest.mark.parametrize("flags", ["kernel-flags", "no-flags"])
def test_log_f32_and_log1p_f32_special_values_exact(name, flags):
    fm, plain, _ = LOGS[name]
    fn = fm if flags == "kernel-flags" else plain
    nan_bits = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF]
    assert np.isnan(_run32(fn, _f32_from_bits(nan_bits))).all()
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    if name == "log":
        x = [0.0, -0.0, 1.0, np.inf, -np.inf, -1.0, -tiny, tiny, F32_MAX]
        want = [-np.inf, -np.inf, 0.0, np.inf, np.nan, np.nan, np.nan, -103.27893, 88.72284]
    else:
        x = [0.0, -0.0, -1.0, np.inf, -np.inf, -1.5, -F32_MAX, tiny, -tiny, F32_MAX]
        want = [0.0, -0.0, -np.inf, np.inf, np.nan, np.nan, np.nan, tiny, -tiny, 88.72284]
    y = _run32(fn, x)
    want = np.array(want, dtype=np.float32)
    assert np.array_equal(y, want, equal_nan=True), y
    assert np.array_equal(np.signbit(y[~np.isnan(y)]), np.signbit(want[~np.isnan(want)])), y


@pytest.mark.parametrize("name", LOGS)
def test_log_f32_and_log1p_f32_bits_do_not_depend_on_the_fastmath_flags(name):
    fm, plain, _ = LOGS[name]
    x = _log_sample(name)
    assert np.array_equal(_run32(fm, x).view(np.uint32), _run32(plain, x).view(np.uint32))


@pytest.mark.skipif(not _host_has("avx2", "fma"), reason="vector width check needs an AVX2+FMA host")
@pytest.mark.parametrize("fn", [_log32_fm, _log1p32_fm], ids=["log", "log1p"])
def test_loop_over_log_is_vectorized(fn):
    _run32(fn, np.ones(8))
    asm = fn.inspect_asm(fn.signatures[0])
    lines = [ln for ln in asm.splitlines() if "%ymm" in ln or "%zmm" in ln]
    assert any("vfmadd" in ln and ln.split()[0].endswith("ps") for ln in lines), "no packed fma"
    assert any(ln.split()[0].startswith("vpsra") for ln in lines), "no packed exponent shift"
