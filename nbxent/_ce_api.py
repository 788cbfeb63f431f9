"""cross_entropy and nll_loss with torch.nn.functional semantics, on NumPy arrays.

The forward values, gradients, output shapes/dtypes, NaN/inf behaviour and exception types
follow torch 2.13 (``torch.nn.functional.cross_entropy`` / ``nll_loss`` and autograd),
quirks included: weighted mean divides by ``sum w[t]``, ignored samples are never read,
all-ignored mean is NaN with a zero gradient, C = 1 signed zeros, unbatched ``(C,)`` inputs
(``'none'`` == ``'sum'``, ``'mean'`` divides by ``w[t]``), ``label_smoothing`` < 0 or NaN acts
as 0, probability targets need ``ignore_index < 0``.

Deliberate differences from torch (all make more inputs work or answers more accurate):

* Any integer target dtype is accepted for class indices (int8..int64, uint8..uint64; torch:
  int64 and uint8 only, uint8 not for spatial inputs, and uint8 + weight + smoothing + mean
  fails inside torch). bool and float index targets still raise RuntimeError as in torch.
* Class-index paths accept a weight of any float dtype and cast it to the input's compute
  dtype (torch requires weight dtype == input dtype and raises RuntimeError otherwise).
  Integer weights raise RuntimeError.
* float16 inputs are computed in float32 and each result is rounded once to float16 (torch
  accumulates half losses in half precision, which overflows the count for N > 65504).
* Reductions accumulate per-sample values in float64 with a compensated serial sum and round
  once: more accurate than torch's input-dtype cascade and bit-identical for any thread count.
  Tiny losses keep full relative accuracy (``log1p``/``expm1`` forms) where torch's
  ``lse - x_t`` cancels to 0.
* Non-contiguous inputs are copied to C order first (the answers do not depend on layout).
* No bfloat16 (NumPy has none) and no legacy ``size_average``/``reduce`` arguments.

CUDA device arrays (anything with ``__cuda_array_interface__``) are handed to
``nbxent.cuda``, which exposes the same functions.
"""
from __future__ import annotations

from nbxent._ce_driver import run
from nbxent._ce_fast import cross_entropy_small
from nbxent._ce_validate import (check_out, host_grad_output, parse_wrt, plan_cross_entropy,
                                 plan_nll_loss)
from nbxent._common import is_device_array

__all__ = ["cross_entropy", "nll_loss", "cross_entropy_backward", "nll_loss_backward",
           "cross_entropy_with_grad", "nll_loss_with_grad"]


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
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

    Args:
        input: float16/32/64 logits ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``.
        target: integer class indices ``()``/``(1,)``, ``(N,)``, ``(N, d1, ..., dk)`` in
            ``[0, C)`` or equal to ``ignore_index``; or float probabilities of the input's shape.
        weight: optional float ``(C,)`` class weights.
        ignore_index: int; targets equal to it contribute nothing (index targets). Must be
            negative with probability targets.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        label_smoothing: float in ``[0, 1]``; negative or NaN acts as 0.

    Returns:
        ``'none'``: array of shape ``(N, d1, ..., dk)`` (0-d for a ``(C,)`` input); otherwise
        a 0-d array. dtype: the input's (index targets) or ``result_type(input, target,
        weight)`` (probability targets).

    Raises:
        ValueError: bad ``reduction``, batch-size mismatch, 1-D input with a target of size != 1.
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index`` (checked before
            any memory is read), 0-d input.
        RuntimeError: other shape/dtype mismatches, ``label_smoothing > 1``, non-negative
            ``ignore_index`` with probability targets, float/bool index targets.
        TypeError: non-array arguments, non-integer ``ignore_index``.
        NotImplementedError: integer input.

    Notes:
        A +inf logit makes its row NaN, a -inf target logit gives +inf, a NaN anywhere in a
        row gives NaN; ignored rows are never read, so NaN there does not reach the value.
        ``'mean'`` with every target ignored (or ``W == 0``) is NaN; an empty batch gives
        NaN for ``'mean'`` and 0.0 for ``'sum'`` (-0.0 with probability targets).

    Examples:
        >>> import numpy as np
        >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]])
        >>> print(f"{float(cross_entropy(x, np.array([2, 0]))):.6f}")
        0.407606
        >>> cross_entropy(x, np.array([2, -100]), reduction="none").round(6)
        array([0.407606, 0.      ])
    """
    fast = cross_entropy_small("cross_entropy", input, target, weight, ignore_index, reduction,
                               label_smoothing, False, None)
    if fast is not None:
        return fast[0]
    if is_device_array(input):
        from nbxent import cuda
        return cuda.cross_entropy(input, target, weight, ignore_index, reduction,
                                  label_smoothing)
    plan = plan_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    return run(plan, input, target, weight)[0]


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.nll_loss(input, target, weight, ignore_index, reduction)
    plan = plan_nll_loss(input, target, weight, ignore_index, reduction)
    return run(plan, input, target, weight)[0]


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0, wrt="input"):
    """Gradient of :func:`cross_entropy` w.r.t. the input (or the probability target).

    With ``g_s`` = grad_output (``'none'``), ``g`` (``'sum'``), ``g/W`` (index ``'mean'``) or
    ``g/S`` (probability ``'mean'``) and ``p = softmax(input)``:

    * index: ``g_s * (p_j * ((1-eps)*w[t] + (eps/C)*sum_c w_c) - (1-eps)*w[t]*[j == t]
      - (eps/C)*w_j)``; exactly +0.0 for ignored samples (NaN if their row's log-softmax is).
    * probability: ``g_s * (p_j * sum_c w_c q_c - w_j q_j)``;
      ``wrt='target'``: ``-(1 - eps) * g_s * w_c * lp_c``.

    Args:
        grad_output: upstream gradient with the forward result's shape (0-d for mean/sum),
            read in the loss's dtype as torch does.
        input, target, weight, ignore_index, reduction, label_smoothing: as for
            :func:`cross_entropy`.
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.cross_entropy_backward(grad_output, input, target, weight, ignore_index,
                                           reduction, label_smoothing, wrt)
    fname = "cross_entropy_backward"
    plan = plan_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                              fname=fname)
    which = parse_wrt(fname, plan, wrt)
    g = host_grad_output(fname, plan, grad_output)
    _, gx, gt = run(plan, input, target, weight, g=g, want_grad=which == "input",
                    want_gradq=which == "target")
    return gx if which == "input" else gt


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100,
                      reduction="mean", wrt="input"):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.nll_loss_backward(grad_output, input, target, weight, ignore_index,
                                      reduction, wrt)
    fname = "nll_loss_backward"
    plan = plan_nll_loss(input, target, weight, ignore_index, reduction, fname=fname)
    parse_wrt(fname, plan, wrt)
    g = host_grad_output(fname, plan, grad_output)
    return run(plan, input, target, weight, g=g, want_grad=True)[1]


def cross_entropy_with_grad(input, target, weight=None, ignore_index=-100, reduction="mean",
                            label_smoothing=0.0, out=None):
    """Loss and input gradient of :func:`cross_entropy` from one pass over the logits.

    Equivalent to ``(cross_entropy(...), cross_entropy_backward(1, ...))`` (for ``'none'``:
    the gradient of ``sum(loss)``), but every row is read once: the gradient is written by
    the pass that computes the row's log-sum-exp. Nothing of the input's size is allocated
    except the gradient, and nothing at all with ``out=``.

    Args:
        input, target, weight, ignore_index, reduction, label_smoothing: as for
            :func:`cross_entropy`.
        out: optional writeable C-contiguous array of the input's shape and dtype that
            receives the gradient; ``out=input`` overwrites the logits in place (the loss is
            still computed from the original logits).

    Returns:
        ``(loss, grad_input)``; ``grad_input`` is ``out`` when given.

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
    fast = cross_entropy_small(fname, input, target, weight, ignore_index, reduction,
                               label_smoothing, True, out)
    if fast is not None:
        return fast
    if is_device_array(input):
        from nbxent import cuda
        return cuda.cross_entropy_with_grad(input, target, weight, ignore_index, reduction,
                                            label_smoothing, out)
    plan = plan_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                              fname=fname)
    check_out(fname, plan, out)
    loss, grad, _ = run(plan, input, target, weight, want_grad=True, out=out)
    return loss, grad


def nll_loss_with_grad(input, target, weight=None, ignore_index=-100, reduction="mean",
                       out=None):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.nll_loss_with_grad(input, target, weight, ignore_index, reduction, out)
    fname = "nll_loss_with_grad"
    plan = plan_nll_loss(input, target, weight, ignore_index, reduction, fname=fname)
    check_out(fname, plan, out)
    loss, grad, _ = run(plan, input, target, weight, want_grad=True, out=out)
    return loss, grad
