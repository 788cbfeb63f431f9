"""Argument checking and normalisation for cross_entropy / nll_loss.

Two parts, so that the CUDA backend reuses the first on device arrays:

* **Metadata part** (:func:`plan_cross_entropy`, :func:`plan_nll_loss`,
  :func:`check_grad_output_shape`, :func:`parse_wrt`): looks only at ``.shape``, ``.ndim``
  and ``.dtype``, so NumPy arrays and CUDA device arrays both work. Returns a frozen
  :class:`CEPlan` or raises torch's exception type with a message naming the function, the argument and the value.
* **Value part** (the ``host_*`` normalisers): reads host memory. The targets' range
  check (:func:`nbxent.xent.cpu_index.scan_targets`) runs before any kernel indexes with
  a target.

CEPlan fields (everything a kernel launcher needs; nothing refers to memory):

=================  ==========================================================================
``fname``          ``'cross_entropy'`` or ``'nll_loss'`` (used in messages)
``is_nll``         True for nll_loss (raw log-probabilities, no smoothing)
``prob``           True for probability targets (``target.shape == input.shape``)
``unbatched``      True for a ``(C,)`` input (one sample; the output is always 0-d)
``N, C, K``        batch, classes, ``prod(d1..dk)`` (1 for 1-D/2-D inputs). The input is
                   viewed as ``(N, C, K)`` C-order: class stride ``K``, sample ``s = n*K + k``
``spatial``        ``(d1, ..., dk)``; ``()`` for 1-D/2-D inputs
``S``              number of samples ``N*K``
``out_shape``      shape of the ``'none'`` output (``()`` when unbatched)
``result_shape``   shape of the returned loss: ``out_shape`` for ``'none'``, else ``()``
``reduction``      ``NONE=0, MEAN=1, SUM=2`` (nbxent._core.reduction)
``eps``            effective label smoothing: ``eps`` if ``eps > 0`` else ``0.0`` (NaN/negative -> 0)
``ignore_index``   int; for probability targets it is negative and has no effect
``has_weight``     whether a class weight was given (else the kernels get ones)
``input_dtype``    dtype of the input; the gradient w.r.t. the input has this dtype
``target_dtype``   dtype of the target as given
``result_dtype``   dtype of the loss: input dtype (index targets) or
                   ``result_type(input, target[, weight])`` (probability targets)
``compute_dtype``  float32 or float64: what kernels compute in (float16, bfloat16 -> float32)
``lse_square_scale``  the z-loss coefficient ``z`` (0.0: off); cross_entropy only
``softcap``        the logit cap ``c`` (0.0: off), logits become ``c * tanh(x / c)``
=================  ==========================================================================

Torch's rules are in docs/semantics.md §1, §2, §4, §5, §11, §13; the deliberate differences
are listed in README.md.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nbxent._core.arrays import is_array as _is_array
from nbxent._core.arrays import require_array as _require_array
from nbxent._core.arrays import target_out_of_bounds
from nbxent._core.dtypes import compute_dtype, is_float, result_type, torch_dtype_name
from nbxent._core.reduction import MEAN, NONE, parse_reduction

__all__ = [
    "CEPlan", "XentOptions", "CudaXentOptions", "kernel_options", "cuda_kernel_options",
    "z_grad_ratio", "parse_llm_options",
    "plan_cross_entropy", "plan_nll_loss", "check_grad_output", "check_grad_output_shape",
    "parse_wrt", "values_without_classes", "host_input", "host_target_index", "host_target_prob",
    "host_weight", "host_grad_output",
]

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


@dataclass(frozen=True)
class CEPlan:
    """Everything decided from shapes, dtypes and options (see the module docstring)."""

    fname: str
    is_nll: bool
    prob: bool
    unbatched: bool
    N: int
    C: int
    K: int
    spatial: tuple
    out_shape: tuple
    result_shape: tuple
    reduction: int
    eps: float
    ignore_index: int
    has_weight: bool
    input_dtype: np.dtype
    target_dtype: np.dtype
    result_dtype: np.dtype
    compute_dtype: np.dtype
    #: An error torch raises only after its target range check (so an out-of-range target
    #: wins): the backends raise it as RuntimeError once the targets are known to be in range.
    deferred_error: str = ""
    #: The z-loss coefficient: ``z * lse**2`` per non-ignored sample (0.0: off).
    lse_square_scale: float = 0.0
    #: The logit cap ``c > 0`` (0.0: off).
    softcap: float = 0.0

    @property
    def S(self) -> int:
        """Number of samples ``N*K``."""
        return self.N * self.K

    @property
    def input_shape(self) -> tuple:
        """The input's shape."""
        if self.unbatched:
            return (self.C,)
        return (self.N, self.C) + tuple(self.spatial)


class XentOptions(NamedTuple):
    """The scalar options every CPU cross-entropy / nll_loss kernel reads, as one record.

    Fields have fixed types (Numba types the record by them), so each kernel keeps one
    compiled signature per float dtype whatever the values. Built by :func:`kernel_options`.
    """

    ignore_index: int   #: targets equal to it contribute nothing
    eps: float          #: effective label smoothing (0.0 when off)
    smooth: bool        #: label smoothing on (eps > 0)
    omeps: float        #: 1 - eps
    epsc: float         #: eps / C
    grad_mode: int      #: GRAD_NONE / GRAD_INTO / GRAD_IN_PLACE (nbxent._core.jit)
    gstride: int        #: 0: one upstream gradient for every sample; 1: one per sample
    grad_target: bool   #: probability targets: also write d loss / d target
    has_weight: bool    #: whether W sums the class weights (else it counts samples)
    mean: bool          #: the serial rows driver divides by W itself
    zl: bool            #: z-loss on (its gradient term is skipped, not multiplied by 0)
    zg: float           #: 2 * z * (g_z / g_s): the z-loss's factor of ``lse * p_j`` per g_s
    capped: bool        #: softcap on
    cap: float          #: the cap c (1.0 when off, never read then)
    cap_fast: bool      #: float32 compute: the vectorized tanh (nbxent/xent/cpu_capped.py)
    want_lse: bool      #: write each sample's log-sum-exp into ``lse``
    lse: np.ndarray     #: float64 ``(S,)`` output buffer (empty unless ``want_lse``)


#: The lse buffer of a call that does not want one: empty, and writeable like a real one
#: (a read-only array is another Numba type, so another compiled signature).
_NO_LSE = np.empty(0)


def z_grad_ratio(plan: CEPlan, W: float, n_valid: int) -> float:
    """``g_z / g_s``: the z-loss's upstream gradient per unit of the main loss's.

    The z-loss is unweighted and its ``'mean'`` divides by the count of non-ignored
    samples (Liger-Kernel's convention, docs/semantics.md §13.1), while the main loss's
    ``'mean'`` divides by ``W = sum w[t]``: the kernels get ``g_s = g / W``, so the z-loss
    term needs ``W / n_valid``. 1 for 'none', 'sum' and probability targets (both divide by S).
    """
    if plan.reduction != MEAN or plan.prob or not plan.has_weight or n_valid == 0:
        return 1.0
    return float(W) / n_valid


def kernel_options(plan: CEPlan, grad_mode: int = 0, gstride: int = 0,
                   grad_target: bool = False, mean: bool = False, zratio: float = 1.0,
                   lse=None) -> XentOptions:
    """The kernels' option record for ``plan`` (values converted to the record's types).

    ``zratio``: :func:`z_grad_ratio`; ``lse``: a float64 ``(S,)`` buffer for the per-sample
    log-sum-exp, or None.
    """
    eps = float(plan.eps)
    z = float(plan.lse_square_scale)
    cap = float(plan.softcap)
    return XentOptions(ignore_index=int(plan.ignore_index), eps=eps, smooth=eps > 0.0,
                       omeps=1.0 - eps, epsc=eps / plan.C if plan.C else 0.0,
                       grad_mode=int(grad_mode), gstride=int(gstride),
                       grad_target=bool(grad_target), has_weight=bool(plan.has_weight),
                       mean=bool(mean), zl=z != 0.0, zg=2.0 * z * float(zratio),
                       capped=cap > 0.0, cap=cap if cap > 0.0 else 1.0,
                       cap_fast=plan.compute_dtype == np.float32,
                       want_lse=lse is not None, lse=_NO_LSE if lse is None else lse)


class CudaXentOptions(NamedTuple):
    """The scalar options of the CUDA cross-entropy / nll_loss kernels, as one record.

    Field names match :class:`XentOptions` where they mean the same, so the shared formulas
    read either. ``one``, ``ninf``, ``omeps``, ``epsc`` have the compute dtype ``T`` (NumPy
    scalars), so float32 kernels keep float32 arithmetic; every other field has a fixed
    Python type: one compiled signature per dtype.
    """

    ignore_index: int
    prob: bool          #: probability targets
    smooth: bool        #: label smoothing on (eps > 0)
    reduction: int      #: NONE / MEAN / SUM
    wsum: float         #: the mean's denominator (1.0 unless 'mean')
    one: object         #: T(1)
    ninf: object        #: T(-inf)
    omeps: object       #: T(1 - eps)
    epsc: object        #: T(eps / C)
    eps: float
    grad_mode: int      #: GRAD_NONE / GRAD_INTO (the device gradient is never in place)
    grad_target: bool   #: also d loss / d target (probability targets)
    write_loss: bool    #: write per-sample losses ('none')
    sign: float         #: +1 or -1: the sign the per-block partials accumulate with
    zl: bool            #: z-loss on
    z: object           #: T(z), the z-loss coefficient
    zg: object          #: T(2 * z * ratio): see XentOptions.zg
    zratio: float       #: g_z / g_s (z_grad_ratio): the z-loss's weight in the main partials
    capped: bool        #: softcap on
    cap: object         #: T(c) (1 when off)
    want_lse: bool      #: write each sample's log-sum-exp
    write_z: bool       #: write each sample's z-loss ('none' with return_z_loss)


def cuda_kernel_options(plan: CEPlan, wsum: float, grad_mode: int, grad_target: bool,
                        write_loss: bool, zratio: float = 1.0, want_lse: bool = False,
                        write_z: bool = False) -> CudaXentOptions:
    """The CUDA kernels' option record for ``plan`` (T scalars in the compute dtype)."""
    T = plan.compute_dtype.type
    eps = float(plan.eps)
    z = float(plan.lse_square_scale)
    cap = float(plan.softcap)
    return CudaXentOptions(
        ignore_index=int(plan.ignore_index), prob=bool(plan.prob), smooth=eps > 0.0,
        reduction=int(plan.reduction), wsum=float(wsum), one=T(1), ninf=T(-np.inf),
        omeps=T(1.0 - eps), epsc=T(eps / plan.C if plan.C else 0.0), eps=eps,
        grad_mode=int(grad_mode), grad_target=bool(grad_target), write_loss=bool(write_loss),
        sign=-1.0 if plan.prob else 1.0, zl=z != 0.0, z=T(z), zg=T(2.0 * z * float(zratio)),
        zratio=float(zratio), capped=cap > 0.0, cap=T(cap if cap > 0.0 else 1.0),
        want_lse=bool(want_lse), write_z=bool(write_z))


# ----------------------------------------------------------------------------- metadata part

def _parse_ignore_index(fname, ignore_index) -> int:
    if isinstance(ignore_index, (bool, np.bool_)) or not hasattr(ignore_index, "__index__"):
        raise TypeError(f"{fname}: argument 'ignore_index' must be int, not "
                        f"{type(ignore_index).__name__} (got {ignore_index!r})")
    value = operator.index(ignore_index)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{fname}: Overflow when unpacking long long "
                         f"(argument 'ignore_index'={value} is outside int64)")
    return int(value)


def _parse_label_smoothing(fname, label_smoothing) -> float:
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(
            label_smoothing, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fname}: argument 'label_smoothing' must be float, not "
                        f"{type(label_smoothing).__name__} (got {label_smoothing!r})")
    eps = float(label_smoothing)
    if eps > 1.0:
        raise RuntimeError(f"{fname}: label_smoothing must be between 0.0 and 1.0. Got: {eps} "
                           f"(argument 'label_smoothing'={label_smoothing!r})")
    # torch enters the smoothing branch only when eps > 0: negative and NaN act as 0.
    return eps if eps > 0.0 else 0.0


def _parse_real(fname, name, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fname}: argument '{name}' must be float, not "
                        f"{type(value).__name__} (got {value!r})")
    return float(value)


def parse_llm_options(fname, lse_square_scale=0.0, softcap=None):
    """``(z, c)`` from the z-loss coefficient and the softcap (``c = 0.0`` when off).

    ``lse_square_scale`` must be finite (a negative z is accepted: it is a plain
    coefficient); ``softcap`` None, or finite and > 0 (``c * tanh(x / c)`` needs ``c != 0``,
    and a negative ``c`` would flip the logits' order).
    """
    z = _parse_real(fname, "lse_square_scale", lse_square_scale)
    if not np.isfinite(z):
        raise ValueError(f"{fname}: argument 'lse_square_scale' must be finite, got {z}")
    if softcap is None:
        return z, 0.0
    c = _parse_real(fname, "softcap", softcap)
    if not (np.isfinite(c) and c > 0.0):
        raise ValueError(f"{fname}: argument 'softcap' must be None or a finite float > 0, "
                         f"got {softcap!r}")
    return z, c


def _check_input_dtype(fname, x):
    kind = np.dtype(x.dtype).kind
    if kind in "iub":
        raise NotImplementedError(f"{fname}: not implemented for '{torch_dtype_name(x.dtype)}' "
                                  f"(argument 'input' has dtype {np.dtype(x.dtype).name}; "
                                  f"expected float16, bfloat16, float32 or float64)")
    if not is_float(x.dtype):
        raise TypeError(f"{fname}: unsupported dtype {np.dtype(x.dtype).name} for argument "
                        f"'input' (expected float16, bfloat16, float32 or float64)")


def _check_weight_meta(fname, weight, C, spatial, prob):
    if weight is None:
        return None
    _require_array(fname, "weight", weight)
    shape = tuple(weight.shape)
    if weight.ndim != 1 or shape[0] != C:
        shown = "[" + ", ".join(str(d) for d in shape) + "]"
        if prob:
            text = (f"cross_entropy: weight tensor should be defined either for all {C} classes "
                    f"or no classes but got weight tensor of shape: {shown}")
        elif spatial:
            text = "weight tensor should be defined either for all or no classes"
        else:
            text = (f"weight tensor should be defined either for all {C} classes or no classes "
                    f"but got weight tensor of shape: {shown}")
        raise RuntimeError(f"{fname}: {text} (argument 'weight' has shape {shape}, C={C})")
    if not is_float(weight.dtype):
        raise RuntimeError(f"{fname}: expected a floating point weight but found "
                           f"{torch_dtype_name(weight.dtype)} (argument 'weight' has dtype "
                           f"{np.dtype(weight.dtype).name})")
    return np.dtype(weight.dtype)


def _check_index_target_dtype(fname, target, spatial):
    dt = np.dtype(target.dtype)
    if dt.kind in "iu":
        return
    if spatial:
        text = f"expected scalar type Long but found {torch_dtype_name(dt)}"
    else:
        text = f"expected target dtype to be Long or Byte, but got {torch_dtype_name(dt)}"
    raise RuntimeError(f"{fname}: {text} (argument 'target' has dtype {dt.name}; "
                       f"class-index targets must be integers)")


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _index_shapes(fname, x, target):
    """torch's nll_loss_nd shape checks; returns (N, C, K, spatial, unbatched, out_shape)."""
    xs, ts = tuple(x.shape), tuple(target.shape)
    if x.ndim < 1:
        raise ValueError(f"{fname}: Expected 1 or more dimensions (got {x.ndim}) "
                         f"(argument 'input' has shape {xs})")
    if x.ndim == 1:
        if target.ndim > 1:
            raise RuntimeError(f"{fname}: 0D or 1D target tensor expected, multi-target not "
                               f"supported (argument 'target' has shape {ts})")
        if target.ndim == 1 and ts[0] != 1:
            raise ValueError(f"{fname}: For 1D input, 1D target must have size 1, but got "
                             f"target size: {ts[0]} (argument 'target' has shape {ts})")
        return 1, xs[0], 1, (), True, ()
    if target.ndim == 0:
        raise RuntimeError(f"{fname}: a 0-d target needs a 1-D input (argument 'target' has "
                           f"shape (), argument 'input' has shape {xs})")
    if xs[0] != ts[0]:
        raise ValueError(f"{fname}: Expected input batch_size ({xs[0]}) to match target "
                         f"batch_size ({ts[0]}). (argument 'target' has shape {ts}, "
                         f"'input' has shape {xs})")
    N, C = xs[0], xs[1]
    if x.ndim == 2:
        if target.ndim != 1:
            raise RuntimeError(f"{fname}: 0D or 1D target tensor expected, multi-target not "
                               f"supported (argument 'target' has shape {ts})")
        return N, C, 1, (), False, (N,)
    spatial = xs[2:]
    if x.ndim == 4:
        if target.ndim != 3:
            raise RuntimeError(f"{fname}: only batches of spatial targets supported (3D "
                               f"tensors) but got targets of dimension: {target.ndim} "
                               f"(argument 'target' has shape {ts})")
        if ts[1:] != spatial:
            raise RuntimeError(f"{fname}: size mismatch (got input: {_shape_str(xs)} , target: "
                               f"{_shape_str(ts)} (argument 'target' has shape {ts})")
    elif ts[1:] != spatial:
        raise RuntimeError(f"{fname}: Expected target size {_shape_str((N,) + spatial)}, got "
                           f"{_shape_str(ts)} (argument 'target' has shape {ts})")
    K = int(np.prod(spatial, dtype=np.int64))
    return N, C, K, spatial, False, (N,) + spatial


def _result_shape(reduction, out_shape):
    return out_shape if reduction == NONE else ()


def plan_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                       label_smoothing=0.0, fname="cross_entropy", lse_square_scale=0.0,
                       softcap=None) -> CEPlan:
    """Check cross_entropy's arguments from metadata only and return the :class:`CEPlan`."""
    red = parse_reduction(fname, reduction)
    z, cap = parse_llm_options(fname, lse_square_scale, softcap)
    _require_array(fname, "input", input)
    _require_array(fname, "target", target)
    ii = _parse_ignore_index(fname, ignore_index)
    eps = _parse_label_smoothing(fname, label_smoothing)
    x_dt, t_dt = np.dtype(input.dtype), np.dtype(target.dtype)
    if tuple(input.shape) == tuple(target.shape):
        if not is_float(t_dt):
            raise RuntimeError(f"{fname}: Expected floating point type for target with class "
                               f"probabilities, got {torch_dtype_name(t_dt)} (argument 'target' "
                               f"has dtype {t_dt.name} and the input's shape "
                               f"{tuple(target.shape)})")
        if ii >= 0:
            raise RuntimeError(f"{fname}: ignore_index is not supported for floating point "
                               f"target (argument 'ignore_index'={ii}; must be negative)")
        if input.ndim == 0:
            raise IndexError(f"{fname}: Dimension specified as 1 but tensor has no dimensions "
                             f"(argument 'input' has shape ())")
        _check_input_dtype(fname, input)
        xs = tuple(input.shape)
        unbatched = input.ndim == 1
        if unbatched:
            N, C, K, spatial, out_shape = 1, xs[0], 1, (), ()
        else:
            N, C, spatial = xs[0], xs[1], xs[2:]
            K = int(np.prod(spatial, dtype=np.int64))
            out_shape = (N,) + spatial
        w_dt = _check_weight_meta(fname, weight, C, spatial, prob=True)
        res = result_type(x_dt, t_dt, *(() if w_dt is None else (w_dt,)))
        return CEPlan(fname=fname, is_nll=False, prob=True, unbatched=unbatched, N=N, C=C, K=K,
                      spatial=tuple(spatial), out_shape=out_shape,
                      result_shape=_result_shape(red, out_shape), reduction=red, eps=eps,
                      ignore_index=ii, has_weight=weight is not None, input_dtype=x_dt,
                      target_dtype=t_dt, result_dtype=np.dtype(res),
                      compute_dtype=compute_dtype(res), lse_square_scale=z, softcap=cap)
    if input.ndim == 0:
        raise IndexError(f"{fname}: Dimension specified as 1 but tensor has no dimensions "
                         f"(argument 'input' has shape ())")
    _check_input_dtype(fname, input)
    N, C, K, spatial, unbatched, out_shape = _index_shapes(fname, input, target)
    _check_weight_meta(fname, weight, C, spatial, prob=False)
    _check_index_target_dtype(fname, target, spatial)
    deferred = ""
    if eps > 0.0 and unbatched and target.ndim == 1:
        # torch checks the target's range first, then fails to broadcast the smoothing term.
        deferred = (f"{fname}: output with shape [] doesn't match the broadcast shape [1] "
                    f"(argument 'target' has shape (1,) for a 1-D input with "
                    f"label_smoothing={eps}; use a 0-d target)")
    return CEPlan(fname=fname, is_nll=False, prob=False, unbatched=unbatched, N=N, C=C, K=K,
                  spatial=tuple(spatial), out_shape=out_shape,
                  result_shape=_result_shape(red, out_shape), reduction=red, eps=eps,
                  ignore_index=ii, has_weight=weight is not None, input_dtype=x_dt,
                  target_dtype=t_dt, result_dtype=x_dt, compute_dtype=compute_dtype(x_dt),
                  deferred_error=deferred, lse_square_scale=z, softcap=cap)


def plan_nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean",
                  fname="nll_loss") -> CEPlan:
    """Check nll_loss's arguments from metadata only and return the :class:`CEPlan`."""
    red = parse_reduction(fname, reduction)
    _require_array(fname, "input", input)
    _require_array(fname, "target", target)
    ii = _parse_ignore_index(fname, ignore_index)
    N, C, K, spatial, unbatched, out_shape = _index_shapes(fname, input, target)
    _check_weight_meta(fname, weight, C, spatial, prob=False)
    _check_input_dtype(fname, input)
    _check_index_target_dtype(fname, target, spatial)
    x_dt = np.dtype(input.dtype)
    return CEPlan(fname=fname, is_nll=True, prob=False, unbatched=unbatched, N=N, C=C, K=K,
                  spatial=tuple(spatial), out_shape=out_shape,
                  result_shape=_result_shape(red, out_shape), reduction=red, eps=0.0,
                  ignore_index=ii, has_weight=weight is not None, input_dtype=x_dt,
                  target_dtype=np.dtype(target.dtype), result_dtype=x_dt,
                  compute_dtype=compute_dtype(x_dt))


def values_without_classes(plan: CEPlan) -> np.ndarray:
    """Per-sample float64 values when ``C == 0`` or there are no samples (no row to reduce).

    Probability targets give -0.0 per sample; class-index targets are all ignored here
    (the range check raised otherwise) and smoothing adds ``(eps/0) * 0 = NaN``.
    """
    if plan.prob:
        return np.full(plan.S, -0.0)
    return np.full(plan.S, np.nan if plan.eps > 0.0 else 0.0)


def parse_wrt(fname, plan: CEPlan, wrt) -> str:
    """Validate ``wrt``: ``'input'`` always, ``'target'`` for probability targets only."""
    if wrt not in ("input", "target"):
        raise ValueError(f"{fname}: argument 'wrt'={wrt!r} is not one of 'input', 'target'")
    if wrt == "target" and not plan.prob:
        raise RuntimeError(f"{fname}: the derivative for 'target' is not implemented "
                           f"(argument 'wrt'='target' needs probability targets; class-index "
                           f"targets of dtype {plan.target_dtype.name} are not differentiable)")
    return wrt


def check_grad_output_shape(fname, plan: CEPlan, grad_output):
    """grad_output must have the forward result's shape (0-d for mean/sum)."""
    shape = tuple(np.shape(grad_output)) if not _is_array(grad_output) else tuple(grad_output.shape)
    if shape != tuple(plan.result_shape):
        raise ValueError(f"{fname}: argument 'grad_output' has shape {shape} but the loss has "
                         f"shape {tuple(plan.result_shape)}")


# ----------------------------------------------------------------------------- value part

def host_input(plan: CEPlan, x, dtype=None) -> np.ndarray:
    """The input as a C-contiguous ``(N, C, K)`` array of the compute dtype (no copy if it is one)."""
    dt = plan.compute_dtype if dtype is None else dtype
    return np.ascontiguousarray(x, dtype=dt).reshape(plan.N, plan.C, plan.K)


def host_target_index(plan: CEPlan, target) -> np.ndarray:
    """Class-index targets as a C-contiguous int64 ``(S,)`` array; uint64 values above int64 raise."""
    t = np.asarray(target)
    if t.dtype == np.uint64 and t.size and int(t.max()) > _INT64_MAX:
        flat = t.reshape(-1)
        bad = int(np.argmax(flat > _INT64_MAX))
        raise target_out_of_bounds(plan.fname, int(flat[bad]), bad, t.shape, plan.C)
    return np.ascontiguousarray(t, dtype=np.int64).reshape(-1)


def host_target_prob(plan: CEPlan, target) -> np.ndarray:
    """Probability targets as a C-contiguous ``(N, C, K)`` array of the compute dtype."""
    return np.ascontiguousarray(target, dtype=plan.compute_dtype).reshape(plan.N, plan.C, plan.K)


def host_weight(plan: CEPlan, weight) -> np.ndarray:
    """Class weights in the compute dtype; ones when ``weight`` is None."""
    if weight is None:
        return np.ones(plan.C, dtype=plan.compute_dtype)
    return np.ascontiguousarray(weight, dtype=plan.compute_dtype)


def check_grad_output(fname, plan: CEPlan, grad_output) -> None:
    """grad_output (metadata only): the forward result's shape and a real dtype."""
    check_grad_output_shape(fname, plan, grad_output)
    dt = np.dtype(grad_output.dtype) if _is_array(grad_output) else np.asarray(grad_output).dtype
    if dt.kind not in "fiu" and not is_float(dt):
        raise TypeError(f"{fname}: argument 'grad_output' must be a real array, got dtype "
                        f"{dt.name}")


def host_grad_output(fname, plan: CEPlan, grad_output) -> np.ndarray:
    """grad_output rounded to the loss dtype (as torch reads it), then as float64 ``(S,)`` or ``(1,)``."""
    check_grad_output(fname, plan, grad_output)
    g = np.asarray(grad_output)
    return np.ascontiguousarray(g.astype(plan.result_dtype), dtype=np.float64).reshape(-1)
