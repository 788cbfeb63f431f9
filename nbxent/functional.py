"""The public functions of nbxent, each defined once.

Every function has torch.nn.functional's name, keywords and defaults, one typed signature
and one docstring; it normalises its arguments (nbxent/_core/arrays.py), validates them
from metadata (nbxent/xent/validate.py, nbxent/bce/validate.py) and hands the plan to the
backend that owns the arrays: the CPU kernels for host arguments, CUDA when any argument
is a device array or when the call comes through ``nbxent.cuda`` (the same functions with
the backend pinned; nbxent/_core/device.py). Both backends therefore raise the same
exceptions with the same messages.

Semantics are torch 2.13's (docs/semantics.md), quirks included; the deliberate differences
are listed in README.md ("Deliberate differences from torch"). Arguments may be any
array-like (NumPy arrays, lists, scalars, torch CPU tensors: read through ``np.asarray``;
results are NumPy); CUDA device arrays are used zero-copy. A torch tensor that requires
grad raises TypeError (detach it first).
"""
from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional, Tuple

import numpy as np

from nbxent._core.arrays import as_array, check_out
from nbxent._core.device import CUDA, backend_for, pinned_backend
from nbxent.bce import validate as _bv
from nbxent.xent import validate as _xv
from nbxent.xent.cpu_small import cross_entropy_small, nll_loss_small

__all__ = [
    "CrossEntropyOutput",
    "cross_entropy", "cross_entropy_backward", "cross_entropy_with_grad",
    "nll_loss", "nll_loss_backward", "nll_loss_with_grad",
    "binary_cross_entropy", "binary_cross_entropy_backward", "binary_cross_entropy_with_grad",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_with_grad",
]

#: Anything ``np.asarray`` reads, or a CUDA device array.
ArrayLike = Any
Reduction = Literal["none", "mean", "sum"]
Wrt = Literal["input", "target"]




class CrossEntropyOutput(NamedTuple):
    """What :func:`cross_entropy` / :func:`cross_entropy_with_grad` return when asked for more
    than the loss (``return_z_loss=True`` or ``return_lse=True``).

    A named result, never a bare tuple whose length depends on the flags: fields that were
    not asked for are None. Liger-Kernel's ``CrossEntropyOutput`` has the same ``loss`` and
    ``z_loss`` fields.
    """

    #: The loss as :func:`cross_entropy` returns it (z-loss included when
    #: ``lse_square_scale != 0``).
    loss: np.ndarray
    #: The z-loss part of ``loss`` (same shape and dtype), or None.
    z_loss: Optional[np.ndarray]
    #: The per-sample log-sum-exp of the (capped) logits, ``'none'`` shape, float32 for
    #: float16/bfloat16/float32 inputs, float64 for float64; or None.
    lse: Optional[np.ndarray]
    #: The input gradient (``cross_entropy_with_grad`` only), else None.
    grad: Optional[np.ndarray]


# ----------------------------------------------------------------------------- dispatch

def _xent(fname, plan, input, target, weight, *, grad_output=None, want_loss=True,
          want_grad=False, want_gt=False, out=None, want_lse=False, want_z=False):
    """Run one cross_entropy / nll_loss plan on its backend.

    Returns ``(loss, grad_input, grad_target, z_loss, lse)``, None where not asked.
    """
    if backend_for(input, target, weight, grad_output, out) == CUDA:
        from nbxent.xent import cuda
        return cuda.run(plan, fname, input, target, weight, grad_output=grad_output,
                        want_loss=want_loss, want_grad=want_grad, want_gt=want_gt, out=out,
                        want_lse=want_lse, want_z=want_z)
    from nbxent.xent import cpu
    g = None if grad_output is None else _xv.host_grad_output(fname, plan, grad_output)
    return cpu.run(plan, input, target, weight, g=g, want_grad=want_grad, want_gradq=want_gt,
                   out=out, want_lse=want_lse, want_z=want_z)


def _plain(lse_square_scale, softcap, return_lse=False, return_z_loss=False) -> bool:
    """No LLM option is set (the CPU short path serves only such calls)."""
    return (type(lse_square_scale) in (float, int) and lse_square_scale == 0
            and softcap is None and return_lse is False and return_z_loss is False)


def _check_flag(fname, name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fname}: argument '{name}' must be bool, not "
                        f"{type(value).__name__} (got {value!r})")
    return bool(value)


def _bce(plan, input, target, weight, pos_weight, *, grad_output=None, want_loss=True,
         want_gx=False, want_gy=False, out=None):
    """Run one BCE plan on its backend: ``(loss, grad_input, grad_target)``."""
    if backend_for(input, target, weight, pos_weight, grad_output, out) == CUDA:
        from nbxent.bce import cuda
        run = cuda.run
    else:
        from nbxent.bce import cpu
        run = cpu.run
    return run(plan, input, target, weight, pos_weight, grad_output=grad_output,
               want_loss=want_loss, want_gx=want_gx, want_gy=want_gy, out=out)


def _bce_call(fname, logits, grad_output, input, target, weight, pos_weight, reduction, **run):
    """Normalise and validate one BCE call, then run it: ``(loss, grad_input, grad_target)``."""
    x, y = as_array(fname, "input", input), as_array(fname, "target", target)
    w, pw = as_array(fname, "weight", weight), as_array(fname, "pos_weight", pos_weight)
    plan = _bv.plan_forward(fname, logits, x, y, w, pw, reduction)
    if grad_output is not None:
        grad_output = as_array(fname, "grad_output", grad_output)
        _bv.plan_backward(plan, grad_output, run["wrt"])
        wrt = run.pop("wrt")
        run.update(grad_output=grad_output, want_loss=False, want_gx=wrt == "input",
                   want_gy=wrt == "target")
    if run.get("out") is not None:
        check_out(fname, run["out"], plan.shape, plan.input_dtype)
    return _bce(plan, x, y, w, pw, **run)


def _bce_backward(fname, logits, grad_output, input, target, weight, pos_weight, reduction, wrt):
    _, gx, gy = _bce_call(fname, logits, grad_output, input, target, weight, pos_weight,
                          reduction, wrt=wrt)
    return gx if wrt == "input" else gy


def _bce_with_grad(fname, logits, input, target, weight, pos_weight, reduction, out):
    loss, grad, _ = _bce_call(fname, logits, None, input, target, weight, pos_weight, reduction,
                              want_gx=True, out=out)
    return loss, grad


def _small_ok() -> bool:
    """The CPU short path may run (it is CPU-only, so not when CUDA is pinned)."""
    return pinned_backend() is None


# ----------------------------------------------------------------------------- cross_entropy

def cross_entropy(input: ArrayLike, target: ArrayLike, weight: Optional[ArrayLike] = None,
                  ignore_index: int = -100, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, *, lse_square_scale: float = 0.0,
                  softcap: Optional[float] = None, return_z_loss: bool = False,
                  return_lse: bool = False):
    """Cross-entropy between logits and class indices or class probabilities.

    With ``lp = log_softmax(input, class_dim)`` (class_dim 1, or 0 for a ``(C,)`` input) and
    ``eps`` = label_smoothing (used only when ``0 < eps <= 1``):

    * class-index target ``t`` (``target.shape != input.shape``), per sample ``s``:
      ``l_s = (1 - eps) * (-w[t_s] * lp[s, t_s]) + (eps / C) * (-sum_c w_c * lp[s, c])``,
      0 where ``t_s == ignore_index``; ``'mean'`` divides the sum by ``W = sum w[t_s]`` over
      non-ignored samples (the count when ``weight`` is None).
    * probability target ``p`` (``target.shape == input.shape``):
      ``l_s = -sum_c w_c * q[s, c] * lp[s, c]`` with ``q = (1 - eps) * p + eps / C``;
      ``'mean'`` divides by the number of samples ``S`` (weights are not in the denominator).

    LLM options (keyword-only; names and conventions of Liger-Kernel, docs/semantics.md §13.1):

    * ``softcap=c``: the logits become ``c * tanh(x / c)`` before everything above; the
      gradient carries the chain factor ``1 - tanh(x / c)^2``.
    * ``lse_square_scale=z`` (PaLM's z-loss): adds ``z * lse_s^2`` per non-ignored sample,
      ``lse_s`` the log-sum-exp of the sample's (capped) logits. Not scaled by class
      weights or smoothing; ``'mean'`` divides the z-loss sum by the number of non-ignored
      samples (``S`` for probability targets), ``'none'`` adds it per sample.

    Args:
        input: float16/32/64 or bfloat16 (``ml_dtypes``) logits ``(C,)``, ``(N, C)`` or
            ``(N, C, d1, ..., dk)``.
        target: integer class indices ``()``/``(1,)``, ``(N,)``, ``(N, d1, ..., dk)`` in
            ``[0, C)`` or equal to ``ignore_index``; or float probabilities of the input's shape.
        weight: optional float ``(C,)`` class weights.
        ignore_index: int; targets equal to it contribute nothing (index targets). Must be
            negative with probability targets.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        label_smoothing: float in ``[0, 1]``; negative or NaN acts as 0.
        lse_square_scale: finite float, the z-loss coefficient ``z`` (0: off).
        softcap: None (off) or a finite float ``c > 0``.
        return_z_loss: also return the z-loss part of the loss (reduced like the loss).
        return_lse: also return the per-sample log-sum-exp (of the capped logits).

    Returns:
        ``'none'``: array of shape ``(N, d1, ..., dk)`` (0-d for a ``(C,)`` input); otherwise
        a 0-d array. dtype: the input's (index targets) or ``result_type(input, target,
        weight)`` (probability targets). With ``return_z_loss`` or ``return_lse``: a
        :class:`CrossEntropyOutput` ``(loss, z_loss, lse, grad=None)`` instead.

    Raises:
        ValueError: bad ``reduction``, batch-size mismatch, 1-D input with a target of size != 1.
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index`` (checked before
            any memory is read), 0-d input.
        RuntimeError: other shape/dtype mismatches, ``label_smoothing > 1``, non-negative
            ``ignore_index`` with probability targets, float/bool index targets.
        TypeError: non-array arguments, non-integer ``ignore_index``, a non-float
            ``lse_square_scale``/``softcap``, non-bool ``return_*`` flags.
        ValueError: non-finite ``lse_square_scale``; ``softcap`` not finite or ``<= 0``.
        NotImplementedError: integer input.

    Notes:
        A +inf logit makes its row NaN, a -inf target logit gives +inf, a NaN anywhere in a
        row gives NaN; ignored rows are never read, so NaN there does not reach the value.
        With ``softcap`` every capped logit is finite (``+-inf`` become ``+-c``), so only
        NaN makes a row NaN. ``lse`` is NaN where the row's log-softmax is NaN (unlike
        ``torch.logsumexp``, which gives +-inf there) and is returned for ignored samples too.
        ``'mean'`` with every target ignored (or ``W == 0``) is NaN; an empty batch gives
        NaN for ``'mean'`` and 0.0 for ``'sum'`` (-0.0 with probability targets).

    Examples:
        >>> import numpy as np
        >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]])
        >>> print(f"{float(cross_entropy(x, np.array([2, 0]))):.6f}")
        0.407606
        >>> cross_entropy(x, np.array([2, -100]), reduction="none").round(6)
        array([0.407606, 0.      ])
        >>> out = cross_entropy(x, np.array([2, 0]), lse_square_scale=1e-4, softcap=2.0,
        ...                     return_z_loss=True, return_lse=True)
        >>> print(f"{float(out.loss):.6f} {float(out.z_loss):.8f}", out.lse.round(6))
        0.606624 0.00042645 [2.581657 1.365268]
    """
    fname = "cross_entropy"
    if _small_ok() and _plain(lse_square_scale, softcap, return_lse, return_z_loss):
        fast = cross_entropy_small(fname, input, target, weight, ignore_index, reduction,
                                   label_smoothing, False, None)
        if fast is not None:
            return fast[0]
    input, target, weight = (as_array(fname, "input", input), as_array(fname, "target", target),
                             as_array(fname, "weight", weight))
    plan = _xv.plan_cross_entropy(input, target, weight, ignore_index, reduction,
                                  label_smoothing, fname=fname,
                                  lse_square_scale=lse_square_scale, softcap=softcap)
    want_z = _check_flag(fname, "return_z_loss", return_z_loss)
    want_lse = _check_flag(fname, "return_lse", return_lse)
    loss, _, _, z, lse = _xent(fname, plan, input, target, weight, want_lse=want_lse,
                               want_z=want_z)
    if want_z or want_lse:
        return CrossEntropyOutput(loss, z, lse, None)
    return loss


def cross_entropy_backward(grad_output: ArrayLike, input: ArrayLike, target: ArrayLike,
                           weight: Optional[ArrayLike] = None, ignore_index: int = -100,
                           reduction: Reduction = "mean", label_smoothing: float = 0.0,
                           wrt: Wrt = "input", *, lse_square_scale: float = 0.0,
                           softcap: Optional[float] = None) -> np.ndarray:
    """Gradient of :func:`cross_entropy` w.r.t. the input (or the probability target).

    With ``g_s`` = grad_output (``'none'``), ``g`` (``'sum'``), ``g/W`` (index ``'mean'``) or
    ``g/S`` (probability ``'mean'``) and ``p = softmax(input)``:

    * index: ``g_s * (p_j * ((1-eps)*w[t] + (eps/C)*sum_c w_c) - (1-eps)*w[t]*[j == t]
      - (eps/C)*w_j)``; exactly +0.0 for ignored samples (NaN if their row's log-softmax is).
    * probability: ``g_s * (p_j * sum_c w_c q_c - w_j q_j)``;
      ``wrt='target'``: ``-(1 - eps) * g_s * w_c * lp_c``.
    * z-loss: ``+ 2 z lse_s p_j g_z`` (``g_z``: ``g / n_valid`` for index ``'mean'``);
      softcap: ``p`` and ``lp`` of the capped logits, and the whole input gradient times
      ``1 - tanh(x_j / c)^2``.

    Args:
        grad_output: upstream gradient with the forward result's shape (0-d for mean/sum),
            read in the loss's dtype as torch does.
        input, target, weight, ignore_index, reduction, label_smoothing, lse_square_scale,
            softcap: as for :func:`cross_entropy` (the gradient of the loss with the z-loss).
        wrt: ``'input'`` or ``'target'`` (probability targets only).

    Returns:
        Array of the input's shape, with the input's dtype (``wrt='input'``) or the
        target's dtype (``wrt='target'``).

    Raises:
        As :func:`cross_entropy`; ValueError for a ``grad_output`` of the wrong shape or an
        unknown ``wrt``; RuntimeError for ``wrt='target'`` with class-index targets.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0]])
        >>> cross_entropy_backward(np.array(1.0), x, np.array([1]))
        array([[ 0.5, -0.5]])
    """
    fname = "cross_entropy_backward"
    grad_output, input, target, weight = (
        as_array(fname, "grad_output", grad_output), as_array(fname, "input", input),
        as_array(fname, "target", target), as_array(fname, "weight", weight))
    plan = _xv.plan_cross_entropy(input, target, weight, ignore_index, reduction,
                                  label_smoothing, fname=fname,
                                  lse_square_scale=lse_square_scale, softcap=softcap)
    which = _xv.parse_wrt(fname, plan, wrt)
    _xv.check_grad_output(fname, plan, grad_output)
    _, gx, gt, _, _ = _xent(fname, plan, input, target, weight, grad_output=grad_output,
                            want_loss=False, want_grad=which == "input",
                            want_gt=which == "target")
    return gx if which == "input" else gt


def cross_entropy_with_grad(input: ArrayLike, target: ArrayLike,
                            weight: Optional[ArrayLike] = None, ignore_index: int = -100,
                            reduction: Reduction = "mean", label_smoothing: float = 0.0,
                            out: Optional[ArrayLike] = None, *, lse_square_scale: float = 0.0,
                            softcap: Optional[float] = None, return_z_loss: bool = False,
                            return_lse: bool = False):
    """Loss and input gradient of :func:`cross_entropy` from one pass over the logits.

    Equivalent to ``(cross_entropy(...), cross_entropy_backward(1, ...))`` (for ``'none'``:
    the gradient of ``sum(loss)``), but every row is read once: the gradient is written by
    the pass that computes the row's log-sum-exp. Nothing of the input's size is allocated
    except the gradient, and nothing at all with ``out=``.

    Args:
        input, target, weight, ignore_index, reduction, label_smoothing, lse_square_scale,
            softcap, return_z_loss, return_lse: as for :func:`cross_entropy`.
        out: optional writeable C-contiguous array of the input's shape and dtype that
            receives the gradient; ``out=input`` overwrites the logits in place (the loss is
            still computed from the original logits).

    Returns:
        ``(loss, grad_input)``; ``grad_input`` is ``out`` when given. With ``return_z_loss``
        or ``return_lse``: a :class:`CrossEntropyOutput` ``(loss, z_loss, lse, grad)``.

    Raises:
        As :func:`cross_entropy`; ValueError for an unusable ``out``.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0]])
        >>> loss, grad = cross_entropy_with_grad(x, np.array([1]), out=x)
        >>> print(f"{float(loss):.6f}", grad is x, x)
        0.693147 True [[ 0.5 -0.5]]
    """
    fname = "cross_entropy_with_grad"
    if _small_ok() and _plain(lse_square_scale, softcap, return_lse, return_z_loss):
        fast = cross_entropy_small(fname, input, target, weight, ignore_index, reduction,
                                   label_smoothing, True, out)
        if fast is not None:
            return fast
    input, target, weight = (as_array(fname, "input", input), as_array(fname, "target", target),
                             as_array(fname, "weight", weight))
    plan = _xv.plan_cross_entropy(input, target, weight, ignore_index, reduction,
                                  label_smoothing, fname=fname,
                                  lse_square_scale=lse_square_scale, softcap=softcap)
    want_z = _check_flag(fname, "return_z_loss", return_z_loss)
    want_lse = _check_flag(fname, "return_lse", return_lse)
    check_out(fname, out, plan.input_shape, plan.input_dtype)
    loss, grad, _, z, lse = _xent(fname, plan, input, target, weight, want_grad=True, out=out,
                                  want_lse=want_lse, want_z=want_z)
    if want_z or want_lse:
        return CrossEntropyOutput(loss, z, lse, grad)
    return loss, grad


# ----------------------------------------------------------------------------- nll_loss

def nll_loss(input: ArrayLike, target: ArrayLike, weight: Optional[ArrayLike] = None,
             ignore_index: int = -100, reduction: Reduction = "mean") -> np.ndarray:
    """Negative log-likelihood of class indices given log-probabilities.

    Per sample ``s``: ``l_s = -w[t_s] * input[s, t_s]`` (0 where ``t_s == ignore_index``);
    ``'mean'`` divides the sum by ``W = sum w[t_s]`` over non-ignored samples. The input is
    not checked to be a log-probability; only ``input[s, t_s]`` is read.

    Args:
        input: float16/32/64 ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``.
        target: integer class indices ``()``/``(1,)``, ``(N,)`` or ``(N, d1, ..., dk)``.
        weight: optional float ``(C,)`` class weights.
        ignore_index: int; targets equal to it contribute nothing.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        ``'none'``: ``(N, d1, ..., dk)`` (0-d for a ``(C,)`` input); otherwise 0-d. dtype: the
        input's.

    Raises:
        ValueError: bad ``reduction``, 0-d input, batch-size mismatch.
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index``.
        RuntimeError: shape mismatches, float/bool targets, a weight of the wrong shape.
        TypeError: non-array arguments, non-integer ``ignore_index``.
        NotImplementedError: integer input.

    Notes:
        NaN elsewhere in a row, or anywhere in an ignored row, does not reach the value.

    Examples:
        >>> import numpy as np
        >>> lp = np.log(np.array([[0.25, 0.75], [0.5, 0.5]]))
        >>> print(f"{float(nll_loss(lp, np.array([1, 0]), reduction='sum')):.6f}")
        0.980829
    """
    fname = "nll_loss"
    if _small_ok():
        fast = nll_loss_small(fname, input, target, weight, ignore_index, reduction, False, None)
        if fast is not None:
            return fast[0]
    input, target, weight = (as_array(fname, "input", input), as_array(fname, "target", target),
                             as_array(fname, "weight", weight))
    plan = _xv.plan_nll_loss(input, target, weight, ignore_index, reduction, fname=fname)
    return _xent(fname, plan, input, target, weight)[0]


def nll_loss_backward(grad_output: ArrayLike, input: ArrayLike, target: ArrayLike,
                      weight: Optional[ArrayLike] = None, ignore_index: int = -100,
                      reduction: Reduction = "mean", wrt: Wrt = "input") -> np.ndarray:
    """Gradient of :func:`nll_loss` w.r.t. the input.

    ``-g_s * w[t_s]`` at ``[s, t_s]`` and +0.0 elsewhere (and for ignored samples), with
    ``g_s`` = grad_output (``'none'``), ``g`` (``'sum'``) or ``g / W`` (``'mean'``).

    Args:
        grad_output: upstream gradient with the forward result's shape.
        input, target, weight, ignore_index, reduction: as for :func:`nll_loss`.
        wrt: ``'input'`` (the target of nll_loss is not differentiable).

    Returns:
        Array of the input's shape and dtype.

    Raises:
        As :func:`nll_loss`; ValueError for a ``grad_output`` of the wrong shape or an
        unknown ``wrt``; RuntimeError for ``wrt='target'``.

    Examples:
        >>> import numpy as np
        >>> nll_loss_backward(np.array(1.0), np.zeros((2, 3)), np.array([2, 0]))
        array([[ 0. ,  0. , -0.5],
               [-0.5,  0. ,  0. ]])
    """
    fname = "nll_loss_backward"
    grad_output, input, target, weight = (
        as_array(fname, "grad_output", grad_output), as_array(fname, "input", input),
        as_array(fname, "target", target), as_array(fname, "weight", weight))
    plan = _xv.plan_nll_loss(input, target, weight, ignore_index, reduction, fname=fname)
    _xv.parse_wrt(fname, plan, wrt)
    _xv.check_grad_output(fname, plan, grad_output)
    return _xent(fname, plan, input, target, weight, grad_output=grad_output, want_loss=False,
                 want_grad=True)[1]


def nll_loss_with_grad(input: ArrayLike, target: ArrayLike, weight: Optional[ArrayLike] = None,
                       ignore_index: int = -100, reduction: Reduction = "mean",
                       out: Optional[ArrayLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Loss and input gradient of :func:`nll_loss` in one call.

    Args:
        input, target, weight, ignore_index, reduction: as for :func:`nll_loss`.
        out: optional writeable C-contiguous array of the input's shape and dtype for the
            gradient; ``out=input`` is allowed (the loss is read first).

    Returns:
        ``(loss, grad_input)``; ``grad_input`` is ``out`` when given.

    Raises:
        As :func:`nll_loss`; ValueError for an unusable ``out``.

    Examples:
        >>> import numpy as np
        >>> loss, grad = nll_loss_with_grad(np.array([[-1.0, -2.0]]), np.array([1]))
        >>> print(float(loss), grad)
        2.0 [[ 0. -1.]]
    """
    fname = "nll_loss_with_grad"
    if _small_ok():
        fast = nll_loss_small(fname, input, target, weight, ignore_index, reduction, True, out)
        if fast is not None:
            return fast
    input, target, weight = (as_array(fname, "input", input), as_array(fname, "target", target),
                             as_array(fname, "weight", weight))
    plan = _xv.plan_nll_loss(input, target, weight, ignore_index, reduction, fname=fname)
    check_out(fname, out, plan.input_shape, plan.input_dtype)
    loss, grad = _xent(fname, plan, input, target, weight, want_grad=True, out=out)[:2]
    return loss, grad


# ----------------------------------------------------------------------------- binary cross-entropy

def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: Optional[ArrayLike] = None,
                         reduction: Reduction = "mean") -> np.ndarray:
    """Binary cross-entropy between probabilities ``input`` and targets ``target``.

    ``l = w * ((y - 1)*max(log(1 - x), -100) - y*max(log(x), -100))``, each log clamped
    separately (so one element's loss is at most ``100*w``); ``'mean'`` is
    ``sum(l) / numel`` (weights are not in the denominator), ``'sum'`` is ``sum(l)``.

    Args:
        input: probabilities ``x``, any shape, float16/float32/float64.
        target: ``y``, same shape and same dtype as ``input``.
        weight: optional, broadcastable (trailing dims) into ``input``'s shape; any real dtype.
        reduction: ``'none'``, ``'mean'`` (default) or ``'sum'``.

    Returns:
        ``input``'s dtype: shape ``input.shape`` for ``'none'``, else a 0-d array.

    Raises:
        ValueError: target shape differs from input shape; bad ``reduction``.
        RuntimeError: target dtype differs from input dtype; an element of input or target
            outside [0, 1] (NaN included); ``weight`` not broadcastable into the input shape.
        NotImplementedError: non-float input.

    NaN/inf: NaN in input or target is rejected by the range check; NaN/inf in ``weight``
    propagate. ``x = 1, y = 1`` gives -0.0 (torch's signed zero).

    Example:
        >>> import numpy as np
        >>> from nbxent import binary_cross_entropy
        >>> x = np.array([0.25, 0.5, 0.0]); y = np.array([1.0, 0.0, 1.0])
        >>> binary_cross_entropy(x, y, reduction="none")
        array([  1.38629436,   0.69314718, 100.        ])
        >>> float(binary_cross_entropy(x, y))
        34.02648051389328
    """
    return _bce_call("binary_cross_entropy", False, None, input, target, weight, None, reduction)[0]


def binary_cross_entropy_backward(grad_output: ArrayLike, input: ArrayLike, target: ArrayLike,
                                  weight: Optional[ArrayLike] = None,
                                  reduction: Reduction = "mean",
                                  wrt: Wrt = "input") -> np.ndarray:
    """Gradient of :func:`binary_cross_entropy` w.r.t. ``input`` (or ``target``).

    ``d/dx = g*(x - y) / max((1 - x)*x, float32(1e-12)) * w`` and
    ``d/dy = -g*logit(x)*w = g*w*log((1 - x)/x)``, each divided by ``numel`` for ``'mean'``
    (``g`` = ``grad_output``, broadcast for ``'mean'``/``'sum'``). The floor is torch's float
    constant even for float64 (so ``x=0, y=1`` gives -1.0000000039958e12); ``d/dy`` is not
    clamped: +inf at x = 0 and -inf at x = 1.

    Args:
        grad_output: upstream gradient, shape of the forward result (``input.shape`` for
            ``'none'``, ``()`` otherwise); read in the loss dtype, as torch does.
        input, target, weight, reduction: as in :func:`binary_cross_entropy`.
        wrt: ``'input'`` (default) or ``'target'``.

    Returns:
        Array of ``input``'s shape and dtype.

    Raises:
        ValueError: bad ``wrt``; ``grad_output`` of the wrong shape; as the forward.
        RuntimeError: non-float ``grad_output``; as the forward (range check included).
        NotImplementedError: as the forward.

    Example:
        >>> import numpy as np
        >>> from nbxent import binary_cross_entropy_backward
        >>> x = np.array([0.25, 0.0]); y = np.array([1.0, 1.0])
        >>> binary_cross_entropy_backward(np.array(1.0), x, y, reduction="sum").tolist()
        [-4.0, -1000000003995.8029]
        >>> binary_cross_entropy_backward(np.array(1.0), x, y, reduction="sum", wrt="target")
        array([1.09861229,        inf])
    """
    return _bce_backward("binary_cross_entropy_backward", False, grad_output, input, target, weight,
                         None, reduction, wrt)


def binary_cross_entropy_with_grad(input: ArrayLike, target: ArrayLike,
                                   weight: Optional[ArrayLike] = None,
                                   reduction: Reduction = "mean",
                                   out: Optional[ArrayLike] = None
                                   ) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`binary_cross_entropy` and its input gradient (``grad_output = 1``) in one pass.

    Args:
        input, target, weight, reduction: as in :func:`binary_cross_entropy`.
        out: optional writeable C-contiguous array of ``input``'s shape and dtype for the
            gradient; ``out=input`` overwrites the input in place (each element's loss is
            computed before its gradient is written; the range check runs before any write).

    Returns:
        ``(loss, grad_input)``: the forward result and an array of ``input``'s shape and
        dtype (``out`` when given).

    Raises:
        ValueError: ``out`` of the wrong shape, dtype or layout, or read-only; as the forward.
        RuntimeError, NotImplementedError: as the forward.

    Example:
        >>> import numpy as np
        >>> from nbxent import binary_cross_entropy_with_grad
        >>> x = np.array([0.25, 0.5]); y = np.array([1.0, 0.0])
        >>> loss, grad = binary_cross_entropy_with_grad(x, y)
        >>> float(loss), grad
        (1.0397207708399179, array([-2.,  1.]))
    """
    return _bce_with_grad("binary_cross_entropy_with_grad", False, input, target, weight, None,
                          reduction, out)


def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike,
                                     weight: Optional[ArrayLike] = None,
                                     reduction: Reduction = "mean",
                                     pos_weight: Optional[ArrayLike] = None) -> np.ndarray:
    """Binary cross-entropy on logits: ``sigmoid`` and BCE fused, stable for any finite logit.

    ``l = w * ((1 - y)*x - lw*logsig(x))`` with ``logsig(x) = min(x, 0) - log1p(exp(-|x|))``
    and ``lw = (pw - 1)*y + 1`` (``lw = 1`` without ``pos_weight``); that is
    ``-w*(pw*y*log(sigmoid(x)) + (1 - y)*log(1 - sigmoid(x)))``. ``'mean'`` is
    ``sum(l) / numel``, ``'sum'`` is ``sum(l)``. Evaluated without cancellation (see the
    module notes), so tiny losses keep their relative accuracy.

    Args:
        input: logits ``x``, any shape, float16/float32/float64.
        target: ``y``, same shape, a float dtype (values outside [0, 1] are accepted).
        weight: optional, broadcastable (trailing dims) into ``input``'s shape.
        reduction: ``'none'``, ``'mean'`` (default) or ``'sum'``.
        pos_weight: optional, broadcastable against the input's *last* dims (for
            ``(N, C, H, W)`` a ``(C,)`` pos_weight lines up with W; use ``(C, 1, 1)``).

    Returns:
        The **target's** dtype (torch 2.13): shape ``input.shape`` for ``'none'``, else 0-d.

    Raises:
        ValueError: target shape differs from input shape; bad ``reduction``.
        RuntimeError: integer or bool target; ``weight``/``pos_weight`` not broadcastable
            into the input's shape.
        NotImplementedError: non-float input.

    NaN/inf: NaN logits or targets give NaN elements. Infinite logits follow torch:
    NaN except ``x = +inf`` with ``y < 1`` (inf); finite logits of any size are exact.

    Example:
        >>> import numpy as np
        >>> from nbxent import binary_cross_entropy_with_logits
        >>> x = np.array([0.5, -1.0, -40.0]); y = np.array([1.0, 0.0, 0.0])
        >>> binary_cross_entropy_with_logits(x, y, reduction="none")
        array([4.74076984e-01, 3.13261688e-01, 4.24835426e-18])
        >>> float(binary_cross_entropy_with_logits(x, y, pos_weight=np.array(2.0), reduction="sum"))
        1.2614156558784362
    """
    return _bce_call("binary_cross_entropy_with_logits", True, None, input, target, weight, pos_weight,
                     reduction)[0]


def binary_cross_entropy_with_logits_backward(grad_output: ArrayLike, input: ArrayLike,
                                              target: ArrayLike,
                                              weight: Optional[ArrayLike] = None,
                                              reduction: Reduction = "mean",
                                              pos_weight: Optional[ArrayLike] = None,
                                              wrt: Wrt = "input") -> np.ndarray:
    """Gradient of :func:`binary_cross_entropy_with_logits` w.r.t. ``input`` (or ``target``).

    ``d/dx = g*w*((pw*y + 1 - y)*sigmoid(x) - pw*y)`` (``g*w*(sigmoid(x) - y)`` without
    pos_weight) and ``d/dy = g*w*(logsig(-x) - pw*logsig(x))`` (``-g*w*x`` without), each
    divided by ``numel`` for ``'mean'``. Finite at ``x = +-inf`` (where the forward is NaN).

    Args:
        grad_output: upstream gradient, shape of the forward result; read in the loss dtype
            (the target's), as torch does.
        input, target, weight, reduction, pos_weight: as in
            :func:`binary_cross_entropy_with_logits`.
        wrt: ``'input'`` (default) or ``'target'``.

    Returns:
        Array of the input's shape; dtype of ``input`` (``wrt='input'``) or of ``target``.

    Raises:
        ValueError: bad ``wrt``; ``grad_output`` of the wrong shape; as the forward.
        RuntimeError: non-float ``grad_output``; as the forward.
        NotImplementedError: as the forward.

    Example:
        >>> import numpy as np
        >>> from nbxent import binary_cross_entropy_with_logits_backward
        >>> x = np.array([0.0, 40.0]); y = np.array([1.0, 1.0])
        >>> binary_cross_entropy_with_logits_backward(np.array(1.0), x, y, reduction="sum")
        array([-5.00000000e-01, -4.24835426e-18])
    """
    return _bce_backward("binary_cross_entropy_with_logits_backward", True, grad_output, input,
                         target, weight, pos_weight, reduction, wrt)


def binary_cross_entropy_with_logits_with_grad(input: ArrayLike, target: ArrayLike,
                                               weight: Optional[ArrayLike] = None,
                                               reduction: Reduction = "mean",
                                               pos_weight: Optional[ArrayLike] = None,
                                               out: Optional[ArrayLike] = None
                                               ) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`binary_cross_entropy_with_logits` and its input gradient in one pass.

    One ``exp`` and one ``log1p`` per element give both the loss and
    ``w*((1 - y)*sigmoid(x) - pw*y*sigmoid(-x))`` (divided by ``numel`` for ``'mean'``).

    Args:
        input, target, weight, reduction, pos_weight: as in
            :func:`binary_cross_entropy_with_logits`.
        out: optional writeable C-contiguous array of ``input``'s shape and dtype for the
            gradient; ``out=input`` overwrites the logits in place.

    Returns:
        ``(loss, grad_input)``; ``grad_input`` has the input's shape and dtype.

    Raises:
        ValueError: ``out`` of the wrong shape, dtype or layout, or read-only; as the forward.
        RuntimeError, NotImplementedError: as the forward.

    Example:
        >>> import numpy as np
        >>> from nbxent import binary_cross_entropy_with_logits_with_grad
        >>> x = np.array([0.0, 2.0]); y = np.array([1.0, 0.0])
        >>> loss, grad = binary_cross_entropy_with_logits_with_grad(x, y, reduction="sum")
        >>> float(loss), grad
        (2.820075191602918, array([-0.5       ,  0.88079708]))
    """
    return _bce_with_grad("binary_cross_entropy_with_logits_with_grad", True, input, target, weight,
                          pos_weight, reduction, out)
