"""Public CUDA functions: torch.nn.functional's names and keywords, on host or device arrays.

Plain Python (signatures and docstrings work); validation is the CPU backend's,
so both backends raise the same exceptions with the same messages. NumPy
arguments are copied to the device and results come back as NumPy arrays; when
any array argument is a device array (numba device array, or anything with
``__cuda_array_interface__``: CuPy, torch CUDA tensors) the others are used or
copied as needed and results are numba device arrays. Reductions return 0-d
arrays.
"""
from __future__ import annotations

import numpy as np

from nbxent import _bce_validate as BV
from nbxent import _ce_validate as CV

__all__ = [
    "cross_entropy", "cross_entropy_backward", "cross_entropy_with_grad",
    "nll_loss", "nll_loss_backward", "nll_loss_with_grad",
    "binary_cross_entropy", "binary_cross_entropy_backward", "binary_cross_entropy_with_grad",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_with_grad",
]


def _ce(plan, fname, input, target, weight, **kw):
    from nbxent.cuda import _ce_launch

    return _ce_launch.run(plan, fname, input, target, weight, **kw)


def _bce(plan, input, target, weight, pos_weight, **kw):
    from nbxent.cuda import _bce_launch

    return _bce_launch.run(plan, input, target, weight, pos_weight, **kw)


def _check_bce_out(plan, out):
    if out is None:
        return
    if tuple(getattr(out, "shape", ())) != tuple(plan.shape) or np.dtype(
            getattr(out, "dtype", None)) != plan.input_dtype:
        raise ValueError(f"{plan.fname}: argument 'out' must have the input's shape {plan.shape} "
                         f"and dtype {plan.input_dtype.name}, got {getattr(out, 'shape', None)} "
                         f"{getattr(out, 'dtype', None)}")


# --------------------------------------------------------------------------- cross_entropy

def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy between logits and class indices or class probabilities, on the GPU.

    ``l_s = -w[t_s] * log_softmax(x_s)[t_s]`` (index targets; ignored samples give 0),
    with label smoothing ``(1-eps)*l_s + (eps/C) * sum_c -w_c*log_softmax(x_s)_c``;
    probability targets ``l_s = -sum_c w_c q_sc log_softmax(x_s)_c`` with
    ``q = (1-eps)*p + eps/C``. ``'mean'`` divides by ``sum_s w[t_s]`` over non-ignored
    samples (index) or by the sample count (probabilities).

    Args:
        input: ``(C,)``, ``(N, C)`` or ``(N, C, d1..dk)`` float16/32/64 logits.
        target: integer class indices ``(N,)`` / ``(N, d1..dk)`` (0-d for a ``(C,)`` input),
            or float probabilities of the input's shape.
        weight: optional ``(C,)`` class weights.
        ignore_index: target value to skip (index targets); must be negative for probabilities.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        label_smoothing: ``eps`` in [0, 1]; negative or NaN act as 0 (as in torch).

    Returns:
        The loss: shape ``(N, d1..dk)`` for ``'none'``, else 0-d; dtype as torch's
        (the input's, or the promoted dtype for probability targets). NumPy for host
        arguments, a numba device array when any argument is on the device.

    Raises:
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index``.
        ValueError, RuntimeError, TypeError, NotImplementedError: as torch (spec section 11).

    A ``+inf`` logit, a NaN or an all ``-inf`` row give NaN for that sample; ignored
    samples never read their row, so their NaN does not leak into the loss.

    >>> import numpy as np, nbxent.cuda as nc
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> print(f"{float(nc.cross_entropy(x, np.array([2]))):.6f}")
    0.407606
    """
    plan = CV.plan_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    return _ce(plan, "cross_entropy", input, target, weight)[0]


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0, wrt="input"):
    """Gradient of :func:`cross_entropy` w.r.t. ``input`` (or probability ``target``).

    d/dx (index): ``g_s * (softmax_j * ((1-eps) w_t + (eps/C) sum_c w_c) - (1-eps) w_t [j==t]
    - (eps/C) w_j)``; ignored samples get +0.0. d/dx (probabilities):
    ``g_s * (softmax_j * sum_c w_c q_c - w_j q_j)``; d/dp: ``-(1-eps) g_s w_c log_softmax_c``.
    ``g_s`` is ``grad_output`` (per sample for ``'none'``), divided by the mean's denominator.

    Args:
        grad_output: upstream gradient with the loss's shape.
        input, target, weight, ignore_index, reduction, label_smoothing: as the forward.
        wrt: ``'input'``, or ``'target'`` (probability targets only).

    Returns:
        Array of the input's shape, with the input's (target's) dtype.

    Raises:
        As :func:`cross_entropy`; ValueError for a ``grad_output`` of the wrong shape or a bad
        ``wrt``; RuntimeError for ``wrt='target'`` with class-index targets.

    A NaN row of an ignored sample has a NaN gradient, as in torch.

    >>> import numpy as np, nbxent.cuda as nc
    >>> g = nc.cross_entropy_backward(np.array(1.0), np.zeros((1, 2)), np.array([0]))
    >>> print(g.tolist())
    [[-0.5, 0.5]]
    """
    plan = CV.plan_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                                 fname="cross_entropy_backward")
    wrt = CV.parse_wrt("cross_entropy_backward", plan, wrt)
    res = _ce(plan, "cross_entropy_backward", input, target, weight, grad_output=grad_output,
              want_loss=False, want_grad=wrt == "input", want_gt=wrt == "target")
    return res[1] if wrt == "input" else res[2]


def cross_entropy_with_grad(input, target, weight=None, ignore_index=-100, reduction="mean",
                            label_smoothing=0.0, out=None):
    """:func:`cross_entropy` and its input gradient (for ``grad_output = 1``) in one launch.

    Both come from the same row pass, so they share the per-row log-sum-exp.

    Args:
        input, target, weight, ignore_index, reduction, label_smoothing: as the forward.
        out: optional array of the input's shape and dtype for the gradient (may be
            ``input`` itself: the kernel reads each logit before overwriting it).

    Returns:
        ``(loss, grad_input)``.

    Raises:
        As :func:`cross_entropy`; ValueError for a bad ``out``.

    >>> import numpy as np, nbxent.cuda as nc
    >>> loss, g = nc.cross_entropy_with_grad(np.zeros((1, 2)), np.array([0]))
    >>> print(f"{float(loss):.6f}", g.tolist())
    0.693147 [[-0.5, 0.5]]
    """
    plan = CV.plan_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                                 fname="cross_entropy_with_grad")
    CV.check_out("cross_entropy_with_grad", plan, out)
    res = _ce(plan, "cross_entropy_with_grad", input, target, weight, want_grad=True, out=out)
    return res[0], res[1]


# --------------------------------------------------------------------------- nll_loss

def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities at class-index targets, on the GPU.

    ``l_s = -x[s, t_s] * w[t_s]`` (0 for ignored samples); ``'mean'`` divides by
    ``sum_s w[t_s]`` over non-ignored samples. Reads one element per sample (NaN
    elsewhere in a row is harmless); the input is not checked to be log-probabilities.

    Args:
        input: ``(C,)``, ``(N, C)`` or ``(N, C, d1..dk)`` float16/32/64.
        target: integer class indices ``(N,)`` / ``(N, d1..dk)`` (0-d for a ``(C,)`` input).
        weight, ignore_index, reduction: as :func:`cross_entropy`.

    Returns:
        The loss (``(N, d1..dk)`` for ``'none'``, else 0-d), in the input's dtype.

    Raises:
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index``.
        ValueError, RuntimeError, TypeError, NotImplementedError: as torch.

    >>> import numpy as np, nbxent.cuda as nc
    >>> print(float(nc.nll_loss(np.array([[-1.0, -2.0]]), np.array([1]))))
    2.0
    """
    plan = CV.plan_nll_loss(input, target, weight, ignore_index, reduction)
    return _ce(plan, "nll_loss", input, target, weight)[0]


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100,
                      reduction="mean", wrt="input"):
    """Gradient of :func:`nll_loss` w.r.t. ``input``: ``-g_s * w[t_s]`` at ``[s, t_s]``, +0.0 elsewhere.

    Args:
        grad_output: upstream gradient with the loss's shape.
        input, target, weight, ignore_index, reduction: as the forward.
        wrt: ``'input'`` (targets are not differentiable).

    Returns:
        Array of the input's shape and dtype.

    Raises:
        As :func:`nll_loss`; ValueError for a bad ``grad_output``; RuntimeError for ``wrt='target'``.

    >>> import numpy as np, nbxent.cuda as nc
    >>> print(nc.nll_loss_backward(np.array(1.0), np.zeros((1, 2)), np.array([1])).tolist())
    [[0.0, -1.0]]
    """
    plan = CV.plan_nll_loss(input, target, weight, ignore_index, reduction,
                            fname="nll_loss_backward")
    CV.parse_wrt("nll_loss_backward", plan, wrt)
    return _ce(plan, "nll_loss_backward", input, target, weight, grad_output=grad_output,
               want_loss=False, want_grad=True)[1]


def nll_loss_with_grad(input, target, weight=None, ignore_index=-100, reduction="mean", out=None):
    """:func:`nll_loss` and its input gradient (for ``grad_output = 1``) in one launch.

    Args:
        input, target, weight, ignore_index, reduction: as the forward.
        out: optional array of the input's shape and dtype for the gradient.

    Returns:
        ``(loss, grad_input)``.

    Raises:
        As :func:`nll_loss`; ValueError for a bad ``out``.

    >>> import numpy as np, nbxent.cuda as nc
    >>> loss, g = nc.nll_loss_with_grad(np.array([[-1.0, -2.0]]), np.array([0]))
    >>> print(float(loss), g.tolist())
    1.0 [[-1.0, 0.0]]
    """
    plan = CV.plan_nll_loss(input, target, weight, ignore_index, reduction,
                            fname="nll_loss_with_grad")
    CV.check_out("nll_loss_with_grad", plan, out)
    res = _ce(plan, "nll_loss_with_grad", input, target, weight, want_grad=True, out=out)
    return res[0], res[1]


# --------------------------------------------------------------------------- binary_cross_entropy

def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy of probabilities, on the GPU.

    ``l = w * ((y - 1) * max(log1p(-x), -100) - y * max(log(x), -100))`` (each log clamped
    at -100 as in torch); ``'mean'`` divides by the element count (weights are not in it).

    Args:
        input: probabilities in [0, 1], any shape, float16/32/64.
        target: same shape and dtype, values in [0, 1].
        weight: optional, broadcastable to the input's shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
        The loss (input's shape for ``'none'``, else 0-d), in the input's dtype.

    Raises:
        RuntimeError: an input or target element outside [0, 1] or NaN (checked before
            the kernel; on the device for device arrays); dtype mismatch; bad broadcast.
        ValueError: shape mismatch or bad reduction.

    >>> import numpy as np, nbxent.cuda as nc
    >>> print(f"{float(nc.binary_cross_entropy(np.array([0.25]), np.array([1.0]))):.6f}")
    1.386294
    """
    plan = BV.plan_forward("binary_cross_entropy", False, input, target, weight, None, reduction)
    return _bce(plan, input, target, weight, None)[0]


def binary_cross_entropy_backward(grad_output, input, target, weight=None, reduction="mean",
                                  wrt="input"):
    """Gradient of :func:`binary_cross_entropy` w.r.t. ``input`` or ``target``.

    d/dx ``= g * (x - y) / max((1 - x) x, float32(1e-12)) * w`` (then ``/ numel`` for mean);
    d/dy ``= g * w * log((1 - x) / x)``, unclamped: +-inf at x in {0, 1}, as torch.

    Args:
        grad_output: upstream gradient with the loss's shape.
        input, target, weight, reduction: as the forward.
        wrt: ``'input'`` or ``'target'``.

    Returns:
        Array of the input's shape, with the input's (target's) dtype.

    Raises:
        As :func:`binary_cross_entropy`; ValueError for a bad ``grad_output`` or ``wrt``.

    >>> import numpy as np, nbxent.cuda as nc
    >>> print(nc.binary_cross_entropy_backward(np.array(1.0), np.array([0.5]), np.array([1.0])).tolist())
    [-2.0]
    """
    fname = "binary_cross_entropy_backward"
    plan = BV.plan_forward(fname, False, input, target, weight, None, reduction)
    BV.plan_backward(plan, grad_output, wrt)
    res = _bce(plan, input, target, weight, None, grad_output=grad_output, want_loss=False,
               want_gx=wrt == "input", want_gy=wrt == "target")
    return res[1] if wrt == "input" else res[2]


def binary_cross_entropy_with_grad(input, target, weight=None, reduction="mean", out=None):
    """:func:`binary_cross_entropy` and its input gradient (``grad_output = 1``) in one launch.

    Args:
        input, target, weight, reduction: as the forward.
        out: optional array of the input's shape and dtype for the gradient.

    Returns:
        ``(loss, grad_input)``.

    Raises:
        As :func:`binary_cross_entropy`; ValueError for a bad ``out``.

    >>> import numpy as np, nbxent.cuda as nc
    >>> loss, g = nc.binary_cross_entropy_with_grad(np.array([0.5]), np.array([1.0]))
    >>> print(f"{float(loss):.6f}", g.tolist())
    0.693147 [-2.0]
    """
    fname = "binary_cross_entropy_with_grad"
    plan = BV.plan_forward(fname, False, input, target, weight, None, reduction)
    _check_bce_out(plan, out)
    res = _bce(plan, input, target, weight, None, want_gx=True, out=out)
    return res[0], res[1]


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """Binary cross-entropy of logits, on the GPU.

    ``l = w * ((1 - y) x - lw * logsig(x))``, ``lw = (pw - 1) y + 1``, evaluated as
    ``w * ((1 - y) max(x, 0) + pw y max(-x, 0) + lw log1p(exp(-|x|)))`` (no cancellation;
    infinite arguments keep torch's NaN/inf pattern). ``'mean'`` divides by the element count.

    Args:
        input: logits, any shape, float16/32/64.
        target: same shape, float (the result has the TARGET's dtype, as in torch).
        weight: optional, broadcastable to the input's shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        pos_weight: optional, broadcast against the target's trailing dims.

    Returns:
        The loss (input's shape for ``'none'``, else 0-d), in the target's dtype.

    Raises:
        ValueError: shape mismatch or bad reduction.  RuntimeError: integer/bool target,
        bad broadcast.  NotImplementedError: integer input.

    >>> import numpy as np, nbxent.cuda as nc
    >>> print(f"{float(nc.binary_cross_entropy_with_logits(np.array([0.0]), np.array([1.0]))):.6f}")
    0.693147
    """
    fname = "binary_cross_entropy_with_logits"
    plan = BV.plan_forward(fname, True, input, target, weight, pos_weight, reduction)
    return _bce(plan, input, target, weight, pos_weight)[0]


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None,
                                              reduction="mean", pos_weight=None, wrt="input"):
    """Gradient of :func:`binary_cross_entropy_with_logits` w.r.t. ``input`` or ``target``.

    d/dx ``= g * w * ((pw y + 1 - y) sigmoid(x) - pw y)`` (finite at x = +-inf);
    d/dy ``= g * w * (logsig(-x) - pw logsig(x))`` (``-g w x`` without pos_weight).

    Args:
        grad_output: upstream gradient with the loss's shape (read in the target's dtype).
        input, target, weight, reduction, pos_weight: as the forward.
        wrt: ``'input'`` or ``'target'``.

    Returns:
        Array of the input's shape, with the input's (target's) dtype.

    Raises:
        As :func:`binary_cross_entropy_with_logits`; ValueError for a bad ``grad_output``/``wrt``.

    >>> import numpy as np, nbxent.cuda as nc
    >>> print(nc.binary_cross_entropy_with_logits_backward(np.array(1.0), np.array([0.0]),
    ...                                                    np.array([1.0])).tolist())
    [-0.5]
    """
    fname = "binary_cross_entropy_with_logits_backward"
    plan = BV.plan_forward(fname, True, input, target, weight, pos_weight, reduction)
    BV.plan_backward(plan, grad_output, wrt)
    res = _bce(plan, input, target, weight, pos_weight, grad_output=grad_output, want_loss=False,
               want_gx=wrt == "input", want_gy=wrt == "target")
    return res[1] if wrt == "input" else res[2]


def binary_cross_entropy_with_logits_with_grad(input, target, weight=None, reduction="mean",
                                               pos_weight=None, out=None):
    """:func:`binary_cross_entropy_with_logits` and its input gradient in one launch.

    Args:
        input, target, weight, reduction, pos_weight: as the forward.
        out: optional array of the input's shape and dtype for the gradient.

    Returns:
        ``(loss, grad_input)`` for ``grad_output = 1``.

    Raises:
        As :func:`binary_cross_entropy_with_logits`; ValueError for a bad ``out``.

    >>> import numpy as np, nbxent.cuda as nc
    >>> loss, g = nc.binary_cross_entropy_with_logits_with_grad(np.array([0.0]), np.array([1.0]))
    >>> print(f"{float(loss):.6f}", g.tolist())
    0.693147 [-0.5]
    """
    fname = "binary_cross_entropy_with_logits_with_grad"
    plan = BV.plan_forward(fname, True, input, target, weight, pos_weight, reduction)
    _check_bce_out(plan, out)
    res = _bce(plan, input, target, weight, pos_weight, want_gx=True, out=out)
    return res[0], res[1]
