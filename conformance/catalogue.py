"""Named edge cases, run before fuzzing; each says why it exists.

:func:`entries` yields :class:`conformance.model.Case` objects (origin = the
entry's name, reason = why). Valid cases carry a ``grad_output`` so the
gradient is checked too; invalid ones carry ``expect_error``, the exception type
torch 2.13 raises (docs/semantics.md §11). Most entries are made in every requested
dtype; a few exist for one dtype only (the float32 large-vocabulary sum).
"""
from __future__ import annotations

import numpy as np

from conformance import losses
from conformance.model import Case
from conformance.oracles.scipy_ref import ScipyOracle

inf, nan = np.inf, np.nan
_X23 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
_X33 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.0, 3.0, 1.0]]
_X43 = _X33 + [[2.0, 2.0, 2.0]]
_W3 = [0.2, 1.0, 3.0]
_REDS = ("none", "mean", "sum")


def grad_output_for(shape, dtype) -> np.ndarray:
    """A deterministic upstream gradient of a loss output's shape and dtype (mixed signs, no zeros
    except where the linspace crosses 0; 0.75 for a 0-d output)."""
    shape = tuple(shape)
    n = int(np.prod(shape))
    g = np.linspace(-1.0, 1.5, num=max(1, n))[:n].reshape(shape)
    return (g if shape else np.asarray(0.75)).astype(dtype)


def _with_grad(case: Case, dtype) -> Case:
    """Add a deterministic upstream gradient of the output's shape and dtype."""
    ref = ScipyOracle().evaluate(case, want_grad=False)
    if ref.error is None:
        case.arrays["grad_output"] = grad_output_for(ref.value.shape, ref.dtype or dtype)
    return case


def _mk(loss, name, reason, dtype, arrays, kwargs=None, expect_error=None):
    """A catalogue case: float arrays in ``dtype`` (index targets stay int64), plus a grad_output."""
    conv = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        conv[k] = a.astype(dtype) if a.dtype.kind == "f" and a.dtype != dtype else a   # astype keeps F order
    case = Case(loss, conv, dict(kwargs or {}), origin=name, reason=reason, expect_error=expect_error)
    return case if expect_error else _with_grad(case, dtype)


def _t(v, dt=np.int64):
    return np.asarray(v, dtype=dt)


def _ce(dt):
    L = "cross_entropy"
    for r in _REDS:
        yield _mk(L, f"ce_spec_weighted_{r}", "docs/semantics.md §3.1: the weighted mean divides by sum w[t] over non-ignored "
                  "samples, not by N", dt, dict(input=_X43, target=_t([2, 0, 1, -100]), weight=_W3), dict(reduction=r))
        yield _mk(L, f"ce_smoothing_weighted_{r}", "docs/semantics.md §5.1: the smoothing term weights class c by w_c and shares "
                  "the denominator; ignored rows add nothing", dt,
                  dict(input=_X33, target=_t([2, 0, -100]), weight=_W3), dict(reduction=r, label_smoothing=0.2))
        yield _mk(L, f"ce_prob_targets_{r}", "docs/semantics.md §6: soft targets need not sum to 1, may be negative; mean "
                  "divides by the sample count, not by the weights", dt,
                  dict(input=_X23, target=[[2.0, 3.0, -1.0], [0.2, 0.3, 0.5]], weight=_W3),
                  dict(reduction=r, label_smoothing=0.3))
        yield _mk(L, f"ce_C1_{r}", "docs/semantics.md §1.3: one class: log_softmax is exactly 0, loss and gradient 0", dt,
                  dict(input=[[0.5], [-1.0]], target=_t([0, 0])), dict(reduction=r))
        yield _mk(L, f"ce_empty_batch_{r}", "docs/semantics.md §1.2: N = 0: mean is nan, sum 0, none empty", dt,
                  dict(input=np.zeros((0, 3)), target=_t(np.zeros(0))), dict(reduction=r))
        yield _mk(L, f"ce_spatial_{r}", "docs/semantics.md §1.1: (N, C, d1, d2) with the class on axis 1, ignore and weight", dt,
                  dict(input=np.arange(24.0).reshape(2, 3, 2, 2) / 7 - 1,
                       target=_t([[[0, 1], [2, -100]], [[2, 2], [1, 0]]]), weight=_W3), dict(reduction=r))
    yield _mk(L, "ce_all_ignored_mean", "docs/semantics.md §3.2/§10.2: every target ignored: mean is nan, gradient exactly 0",
              dt, dict(input=_X23, target=_t([-100, -100]), weight=_W3), dict(label_smoothing=0.3))
    yield _mk(L, "ce_zero_weight_denominator", "docs/semantics.md §3.1/§10.2: weights of the targets sum to 0: mean is nan "
              "and the gradient of every valid row nan", dt,
              dict(input=_X23, target=_t([0, 2]), weight=[0.0, 1.0, 0.0]))
    yield _mk(L, "ce_ignore_index_is_a_class", "docs/semantics.md §4: ignore_index may be a valid class", dt,
              dict(input=_X33, target=_t([0, 1, 2])), dict(ignore_index=0, reduction="none"))
    yield _mk(L, "ce_nan_in_ignored_row", "docs/semantics.md §9: NaN in an ignored row must not reach the loss (its "
              "gradient is nan in torch, docs/semantics.md §10.2)", dt,
              dict(input=[[nan, 0.0, 1.0], [0.5, 0.2, 0.1]], target=_t([-100, 1])), dict(label_smoothing=0.1))
    yield _mk(L, "ce_pos_inf_logit", "docs/semantics.md §9/§14: +inf logit off the target: torch gives nan, the exact "
              "limit is +inf (either is accepted; the limit is reported as torch_differs)", dt,
              dict(input=[[inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, 0.0, 1.0]], target=_t([1, 0, 1])),
              dict(reduction="none"))
    yield _mk(L, "ce_huge_logits", "logits of 1e4: a loss computed without the max shift overflows", dt,
              dict(input=[[1e4, -1e4, 0.0], [-3e3, 5e3, 5e3 - 1]], target=_t([1, 2])), dict(reduction="none"))
    yield _mk(L, "ce_confident_rows", "target logit 30 above the rest: a tiny exact loss (torch float32 "
              "returns -0.0: allowed, the error is bounded by the size of the logits)", dt,
              dict(input=[[30.0, 0.0, 0.0], [0.0, -5.0, 60.0]], target=_t([0, 2])), dict(reduction="none"))
    yield _mk(L, "ce_unbatched_weight_mean", "docs/semantics.md §3.3: a (C,) input: mean is the unweighted loss", dt,
              dict(input=[0.5, -1.0, 2.0], target=_t(1), weight=[1.0, 3.0, 1.0]))
    yield _mk(L, "ce_smoothing_one", "docs/semantics.md §5.2: label_smoothing = 1 is the pure uniform target", dt,
              dict(input=_X23, target=_t([1, 2])), dict(label_smoothing=1.0, reduction="none"))
    yield _mk(L, "ce_negative_smoothing_ignored", "docs/semantics.md §5.2: label_smoothing < 0 silently behaves like 0", dt,
              dict(input=_X23, target=_t([0, 2])), dict(label_smoothing=-0.1))
    yield _mk(L, "ce_smoothing_nan", "docs/semantics.md §5.2: a NaN label_smoothing fails torch's range check "
              "silently and behaves like 0", dt, dict(input=_X23, target=_t([1, 2])),
              dict(label_smoothing=float("nan"), reduction="none"))
    yield _mk(L, "ce_elementwise_mean", "docs/semantics.md §3: 'elementwise_mean' is torch's deprecated alias of "
              "'mean'", dt, dict(input=_X23, target=_t([1, 2])), dict(reduction="elementwise_mean"))
    yield _mk(L, "ce_unbatched_1d_target", "docs/semantics.md §13: a (C,) input with a 1-element 1-D target: the "
              "forward is accepted; torch's own backward raises, so a gradient may raise or be right", dt,
              dict(input=[0.5, -1.0, 2.0], target=_t([1])), dict(reduction="sum"))
    xs = np.random.default_rng(3).standard_normal((1, 1000))
    yield _mk(L, "ce_smoothing_one_1000_classes", "label_smoothing = 1 at C = 1000: the target's gradient is "
              "softmax_t - 1/C, a cancellation-free form keeps it within a few ulp (torch: 3-17 ulp)", dt,
              dict(input=xs, target=_t([417])), dict(label_smoothing=1.0))
    xi = np.random.default_rng(5).standard_normal((2, 1000))
    xi[0, 10] = inf
    yield _mk(L, "ce_pos_inf_logit_1000_classes", "docs/semantics.md §14 at C = 1000: torch gives nan, the exact "
              "limit +inf (and a gradient of nan); the exact oracle reaches this size", dt,
              dict(input=xi, target=_t([3, 4])), dict(reduction="none"))
    xn = np.random.default_rng(6).standard_normal((3, 600))
    xn[1, 7] = nan
    yield _mk(L, "ce_nan_in_ignored_row_large", "the rule for NaN in an ignored row (docs/conformance.md): its "
              "gradient may be torch's nan or exactly 0, at any size", dt,
              dict(input=xn, target=_t([3, -100, 5])), dict(reduction="sum"))
    x = np.random.default_rng(7).standard_normal((5, 4))
    yield _mk(L, "ce_fortran_order", "a Fortran-ordered input (class axis contiguous in memory the other way)",
              dt, dict(input=np.asfortranarray(x.astype(dt)), target=_t([0, 3, 1, 2, 3])), dict(reduction="none"))
    big = np.zeros((5, 8))
    big[:, ::2] = x
    yield _mk(L, "ce_strided_input", "a non-contiguous (every other column) input", dt,
              dict(input=big.astype(dt)[:, ::2], target=_t([0, 3, 1, 2, 3])), dict(reduction="sum"))
    if dt == "float32":
        xv = np.full((2, 100_000), -1.2)
        xv[:, 0] = 0.0
        yield _mk(L, "ce_large_vocab_constant_tail", "C = 1e5 float32 with a constant tail: every exp term is "
                  "the same, so a serial float32 sum rounds the same way 1e5 times (error 9.5e-4 vs torch's "
                  "8.1e-5; the bound is 2.0e-4)", dt, dict(input=xv, target=_t([1, 5])), dict(reduction="none"))
    yield from _ce_llm(dt)


def _ce_llm(dt):
    """The LLM options (docs/semantics.md §13.1) with every existing option: only candidates that take
    ``lse_square_scale`` / ``softcap`` are sent these (case_features reads the keywords)."""
    L = "cross_entropy"
    Z, CAP = dict(lse_square_scale=1e-2), dict(softcap=2.0)
    for r in _REDS:
        yield _mk(L, f"ce_zloss_weighted_ignored_{r}", "§13.1: z lse^2 per valid sample, unweighted, its 'mean' "
                  "over the valid count (Liger), next to the weighted mean of the loss", dt,
                  dict(input=_X33, target=_t([2, 0, -100]), weight=_W3), dict(reduction=r, **Z))
        yield _mk(L, f"ce_softcap_smoothing_{r}", "§13.1: smoothing on the capped logits", dt,
                  dict(input=_X33, target=_t([2, 0, 1]), weight=_W3), dict(reduction=r, label_smoothing=0.2, **CAP))
        yield _mk(L, f"ce_zloss_softcap_prob_{r}", "§13.1: both options with probability targets (mean over S)", dt,
                  dict(input=_X23, target=[[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]]), dict(reduction=r, **Z, **CAP))
    yield _mk(L, "ce_zloss_softcap_kdim", "§13.1: both options on a K-dim input, one position ignored", dt,
              dict(input=np.random.default_rng(8).standard_normal((2, 4, 3)) * 3,
                   target=_t([[0, 3, -100], [2, 1, 1]])), dict(reduction="none", **Z, **CAP))
    yield _mk(L, "ce_zloss_unbatched", "§13.1: an unbatched input: one sample, 0-d result", dt,
              dict(input=[0.5, -1.0, 2.0], target=_t(1)), dict(**Z))
    yield _mk(L, "ce_zloss_all_ignored", "§13.1: every sample ignored: the z-loss's 'mean' is 0/0 = NaN too", dt,
              dict(input=_X23, target=_t([-100, -100])), dict(**Z))
    yield _mk(L, "ce_zloss_empty", "§13.1: an empty batch with the z-loss", dt,
              dict(input=np.zeros((0, 3)), target=_t([])), dict(reduction="sum", **Z))
    big = 3e4 if dt != "float16" else 6e4
    yield _mk(L, "ce_softcap_huge_and_infinite_logits", "§13.1: under a cap, huge and infinite logits are finite "
              "(+-inf -> +-c) and their gradient is 0", dt,
              dict(input=[[big, -inf, 0.5, inf], [3.0, -2.0, 0.0, 7.0]], target=_t([0, 3])),
              dict(reduction="none", softcap=30.0))
    for c in (1e-3, 1e6):
        yield _mk(L, f"ce_softcap_{c:g}", "§13.1: a tiny and a huge cap are stable (no 0/0, no subnormal x / c)",
                  dt, dict(input=_X33, target=_t([2, 0, 1])), dict(reduction="none", softcap=c))


def _nll(dt):
    L = "nll_loss"
    for r in _REDS:
        yield _mk(L, f"nll_weighted_ignored_{r}", "docs/semantics.md §3.1/§10.1: -w[t]*x[t], ignored rows 0, mean over sum w[t]",
                  dt, dict(input=_X43, target=_t([2, 0, 1, -100]), weight=_W3), dict(reduction=r))
    yield _mk(L, "nll_nan_elsewhere_harmless", "docs/semantics.md §9: NLL reads only x[s, t_s]; NaN elsewhere is harmless",
              dt, dict(input=[[nan, 0.0, 1.0], [0.5, 0.2, 0.1]], target=_t([1, 1])), dict(reduction="none"))
    yield _mk(L, "nll_negative_weights", "docs/semantics.md §3.1: negative weights are accepted; sum w[t] = 0 gives +-inf",
              dt, dict(input=_X23, target=_t([0, 2]), weight=[-2.0, 1.0, 1.0]))
    yield _mk(L, "nll_unbatched_weight", "docs/semantics.md §3.3: (C,) input with weight: mean cancels the weight", dt,
              dict(input=[0.5, -1.0, 2.0], target=_t(1), weight=[1.0, 3.0, 1.0]))
    yield _mk(L, "nll_all_ignored", "docs/semantics.md §3.2: every target ignored: mean nan, gradient 0", dt,
              dict(input=_X23, target=_t([-100, -100])))
    rng = np.random.default_rng(11)
    yield _mk(L, "nll_large_batch", "N = 5000: the batch reduction and the weight denominator", dt,
              dict(input=rng.standard_normal((5000, 4)), target=_t(rng.integers(0, 4, 5000)),
                   weight=rng.uniform(0.5, 2.0, 4)))


def _bce(dt):
    L = "binary_cross_entropy"
    x = [0.0, 1.0, 0.0, 1.0, 1e-30, 0.5, 0.0, 0.3]
    y = [1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.7]
    for r in _REDS:
        yield _mk(L, f"bce_clamp_{r}", "docs/semantics.md §7.1/§10.3: each log is clamped at -100 (x in {0, 1}); the gradient "
                  "denominator is floored at float32(1e-12)", dt, dict(input=x, target=y), dict(reduction=r))
    yield _mk(L, "bce_weight_broadcast", "docs/semantics.md §7.3: a (2, 1) weight broadcasts along the last dim", dt,
              dict(input=[[0.25, 0.5, 0.75], [0.1, 0.2, 0.9]], target=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]],
                   weight=[[2.0], [3.0]]), dict(reduction="none"))
    yield _mk(L, "bce_mean_ignores_weights", "docs/semantics.md §3.4: mean = sum(w*l)/numel, weights not in the denominator",
              dt, dict(input=[[0.25, 0.5, 0.75], [0.1, 0.2, 0.9]], target=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]],
                       weight=[1.0, 2.0, 3.0]))
    yield _mk(L, "bce_0d", "docs/semantics.md §1.4: a 0-d input gives a 0-d result", dt, dict(input=0.25, target=1.0))
    yield _mk(L, "bce_near_one", "x just below 1: log1p(-x) needs the log1p form", dt,
              dict(input=[1 - 2**-20, 2**-20, 1 - 2**-10], target=[0.0, 1.0, 0.25]), dict(reduction="none"))


def _bcewl(dt):
    L = "binary_cross_entropy_with_logits"
    x = [-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4]
    for v in (0.0, 1.0):
        yield _mk(L, f"bcewl_large_logits_y{int(v)}", "docs/semantics.md §8.2: large finite logits are stable", dt,
                  dict(input=x, target=[v] * 7), dict(reduction="none"))
    yield _mk(L, "bcewl_inf_logits", "docs/semantics.md §8.2/§14: infinite logits: torch gives nan except (+inf, y=0); the "
              "exact limit at (-inf, y>0) is +inf (reported as torch_differs)", dt,
              dict(input=[-inf, inf, -inf, inf], target=[0.0, 0.0, 1.0, 1.0]), dict(reduction="none"))
    yield _mk(L, "bcewl_pos_weight_last_dim", "docs/semantics.md §8.3: a (C,) pos_weight broadcasts against the LAST dim", dt,
              dict(input=np.linspace(-2, 2, 24).reshape(2, 3, 4), target=np.tile([1.0, 0.0, 0.5, 1.0], (2, 3, 1)),
                   pos_weight=[1.0, 2.0, 3.0, 4.0]), dict(reduction="none"))
    yield _mk(L, "bcewl_pos_weight_per_channel", "docs/semantics.md §8.3: a (C, 1) pos_weight is per channel of a (N, C, L) input", dt,
              dict(input=np.linspace(-2, 2, 24).reshape(2, 3, 4), target=np.ones((2, 3, 4)),
                   pos_weight=[[1.0], [2.0], [3.0]], weight=[[1.0, 0.5, 2.0, 0.0]]), dict(reduction="sum"))
    yield _mk(L, "bcewl_tiny_loss", "docs/semantics.md §14: y = 1 at large logits: the exact loss is ~1e-18, not 0", dt,
              dict(input=[40.0, 20.0, 60.0], target=[1.0, 1.0, 1.0]), dict(reduction="none"))
    yield _mk(L, "bcewl_targets_outside_01", "docs/semantics.md §8.2: targets outside [0, 1] are accepted", dt,
              dict(input=[0.5, -0.5], target=[2.0, -1.0]), dict(reduction="none"))
    yield _mk(L, "bcewl_scalar_pos_weight", "docs/semantics.md §8.3: 0-d pos_weight", dt,
              dict(input=[0.5, -1.0], target=[1.0, 0.0], pos_weight=2.0), dict(reduction="mean"))


def _X23f(dt):
    return np.asarray(_X23, dt)


def _errors(dt):
    """Spec section 11: invalid arguments and the exception type torch raises."""
    z23 = np.zeros((2, 3), dt)
    t01 = _t([0, 1])
    E = []
    for L in ("cross_entropy", "nll_loss"):
        s = "ce" if L == "cross_entropy" else "nll"
        E += [
            (L, f"{s}_err_bad_reduction", dict(input=z23, target=t01), dict(reduction="bogus"), "ValueError"),
            (L, f"{s}_err_weight_length", dict(input=z23, target=t01, weight=np.ones(4, dt)), {}, "RuntimeError"),
            (L, f"{s}_err_target_ge_C", dict(input=z23, target=_t([0, 3])), {}, "IndexError"),
            (L, f"{s}_err_negative_target", dict(input=z23, target=_t([0, -1])), {}, "IndexError"),
            (L, f"{s}_err_batch_mismatch", dict(input=z23, target=_t([0, 1, 2])), {}, "ValueError"),
            (L, f"{s}_err_int32_target", dict(input=z23, target=_t([0, 1], np.int32)), {}, "RuntimeError"),
            (L, f"{s}_err_spatial_target_shape", dict(input=np.zeros((2, 3, 4), dt), target=_t(np.zeros((2, 5)))),
             {}, "RuntimeError"),
            (L, f"{s}_err_integer_input", dict(input=np.zeros((2, 3), np.int64), target=t01), {},
             "NotImplementedError"),
            (L, f"{s}_err_1d_input_2_targets", dict(input=np.zeros(3, dt), target=t01), {}, "ValueError"),
            (L, f"{s}_err_size1_batch_longer_target", dict(input=np.zeros((1, 3), dt), target=_t([0, 1, 2])), {},
             "ValueError"),
            (L, f"{s}_err_reduction_none_value", dict(input=z23, target=t01), dict(reduction=None), "ValueError"),
        ]
    other = np.float64 if dt == "float32" else np.float32
    # Rejected by torch, accepted by candidates that declare an extension (extensions.py): those check
    # them as values; the bool target, the integer weight and the out-of-range int8 target stay errors.
    E += [
        ("cross_entropy", "ce_err_int8_target", dict(input=_X23f(dt), target=_t([2, 0], np.int8)),
         dict(reduction="none"), "RuntimeError"),
        ("cross_entropy", "ce_err_uint8_spatial_target", dict(input=np.arange(12.0).reshape(2, 3, 2).astype(dt) / 5,
                                                              target=_t([[0, 1], [2, 1]], np.uint8)),
         dict(reduction="sum"), "RuntimeError"),
        ("cross_entropy", "ce_err_weight_dtype", dict(input=_X23f(dt), target=_t([2, 0]),
                                                      weight=np.asarray(_W3, other)), {}, "RuntimeError"),
        ("cross_entropy", "ce_err_bool_target", dict(input=z23, target=_t([0, 1], np.bool_)), {}, "RuntimeError"),
        ("nll_loss", "nll_err_int16_target_weight_f16", dict(input=_X23f(dt), target=_t([1, 2], np.int16),
                                                             weight=np.asarray(_W3, np.float16)),
         dict(reduction="mean"), "RuntimeError"),
        ("nll_loss", "nll_err_int8_target_ge_C", dict(input=z23, target=_t([0, 3], np.int8)), {}, "RuntimeError"),
        ("nll_loss", "nll_err_int_weight", dict(input=z23, target=t01, weight=np.ones(3, np.int64)), {},
         "RuntimeError"),
    ]
    E += [
        ("nll_loss", "nll_err_weight_dtype", dict(input=z23, target=t01, weight=np.ones(3, other)), {},
         "RuntimeError"),
        ("nll_loss", "nll_err_0d_input", dict(input=np.asarray(1.0, dt), target=_t(0)), {}, "ValueError"),
        ("cross_entropy", "ce_err_smoothing_gt_1", dict(input=z23, target=t01), dict(label_smoothing=1.01),
         "RuntimeError"),
        ("cross_entropy", "ce_err_float_index_target", dict(input=z23, target=np.asarray([0.0, 1.0], dt)), {},
         "RuntimeError"),
        ("cross_entropy", "ce_err_int_prob_target", dict(input=z23, target=np.zeros((2, 3), np.int64)), {},
         "RuntimeError"),
        ("cross_entropy", "ce_err_ignore_index_prob_target", dict(input=z23, target=np.zeros((2, 3), dt)),
         dict(ignore_index=1), "RuntimeError"),
        ("cross_entropy", "ce_err_prob_weight_length", dict(input=z23, target=np.zeros((2, 3), dt),
                                                            weight=np.ones(4, dt)), {}, "RuntimeError"),
        ("binary_cross_entropy", "bce_err_shape", dict(input=np.full(2, 0.5, dt), target=np.zeros(3, dt)), {},
         "ValueError"),
        ("binary_cross_entropy", "bce_err_target_broadcasts", dict(input=np.full((2, 3), 0.5, dt),
                                                                  target=np.zeros((1, 3), dt)), {}, "ValueError"),
        ("binary_cross_entropy_with_logits", "bcewl_err_target_broadcasts", dict(input=z23,
                                                                            target=np.zeros((1, 3), dt)), {},
         "ValueError"),
        ("binary_cross_entropy", "bce_err_input_range", dict(input=np.full(2, 1.5, dt), target=np.zeros(2, dt)),
         {}, "RuntimeError"),
        ("binary_cross_entropy", "bce_err_nan_input", dict(input=np.asarray([nan, 0.5], dt),
                                                          target=np.zeros(2, dt)), {}, "RuntimeError"),
        ("binary_cross_entropy", "bce_err_target_range", dict(input=np.full(2, 0.5, dt),
                                                             target=np.full(2, 2.0, dt)), {}, "RuntimeError"),
        ("binary_cross_entropy", "bce_err_dtype_mismatch", dict(input=np.full(2, 0.5, dt),
                                                               target=np.zeros(2, other)), {}, "RuntimeError"),
        ("binary_cross_entropy", "bce_err_weight_broadcast", dict(input=np.full((2, 3), 0.5, dt),
                                                                 target=np.zeros((2, 3), dt),
                                                                 weight=np.ones(2, dt)), {}, "RuntimeError"),
        ("binary_cross_entropy", "bce_err_weight_bigger", dict(input=np.full((2, 3), 0.5, dt),
                                                              target=np.zeros((2, 3), dt),
                                                              weight=np.ones((2, 2, 3), dt)), {}, "RuntimeError"),
        ("binary_cross_entropy", "bce_err_bad_reduction", dict(input=np.full(2, 0.5, dt), target=np.zeros(2, dt)),
         dict(reduction="Mean"), "ValueError"),
        ("binary_cross_entropy_with_logits", "bcewl_err_shape", dict(input=np.zeros(2, dt), target=np.zeros(3, dt)),
         {}, "ValueError"),
        ("binary_cross_entropy_with_logits", "bcewl_err_pos_weight", dict(input=z23, target=z23,
                                                                         pos_weight=np.ones(2, dt)), {},
         "RuntimeError"),
        ("binary_cross_entropy_with_logits", "bcewl_err_weight", dict(input=z23, target=z23, weight=np.ones(2, dt)),
         {}, "RuntimeError"),
        ("binary_cross_entropy_with_logits", "bcewl_err_int_target", dict(input=z23,
                                                                         target=np.zeros((2, 3), np.int64)), {},
         "RuntimeError"),
    ]
    for loss, name, arrays, kw, err in E:
        yield Case(loss, arrays, kw, origin=name, reason=f"docs/semantics.md §11: torch raises {err}", expect_error=err)


# The registry's catalogue entry points (conformance/losses/).
ce_cases, nll_cases, bce_cases, bcewl_cases = _ce, _nll, _bce, _bcewl


def entries(loss: str, dtypes=("float32", "float64")) -> list[Case]:
    """The catalogue cases of ``loss`` for each dtype in ``dtypes`` (float32/float64)."""
    out = []
    for dt in dtypes:
        if dt not in ("float32", "float64"):
            continue
        new = list(losses.get(loss).entry("catalogue")(dt)) + [c for c in _errors(dt) if c.loss == loss]
        for c in new:
            c.origin = f"{c.origin}[{dt}]"
        out += new
    return out
