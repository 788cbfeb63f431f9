"""binary_cross_entropy and binary_cross_entropy_with_logits, with their gradients.

Public functions with ``torch.nn.functional``'s names and keywords, on NumPy arrays
(CUDA device arrays are handed to ``nbxent.cuda``). Semantics are torch 2.13's:
any shape including 0-d, target shape equal to the input's, ``weight`` and
``pos_weight`` broadcast (trailing dims) into the input's shape, BCE's range check
and separate -100 clamp of each log, the float32(1e-12) floor of BCE's gradient, the
result dtype rules (BCE-with-logits returns the *target's* dtype), torch's exception
types, and its NaN/inf patterns.

Deliberate differences from torch:

* Accuracy. Every element is computed in float64 and rounded once to the result dtype
  (with float32 input and target, exp/log/log1p are vectorized float32 functions of at
  most 1 ulp each), and reductions add float64 block partials and round once: float16
  and float64 results are within about an ulp of the exact value of torch's formula,
  float32 losses within ~2 ulp (bounds in ``nbxent._bce_cpu_f32``), and
  ``'sum'``/``'mean'`` do not depend on the thread count. (torch rounds every step: float16
  BCE rounds each operation to half; float32 sums accumulate in float32.)
* BCE-with-logits is evaluated as ``(1 - y)*max(x, 0) + pw*y*max(-x, 0) + lw*log1p(exp(-|x|))``,
  the same function as torch's ``(1 - y)*x - lw*logsig(x)`` without its cancellation: a
  loss of 1e-18 is 1e-18, not torch's float32 0. Non-finite arguments use torch's literal
  formula, so its NaN pattern at infinite logits is kept.
* The BCE target gradient ``-logit(x)`` is evaluated without cancellation near x = 1/2.
* Only NumPy dtypes exist here: float16, float32, float64 (no bfloat16).
"""
from __future__ import annotations

import numpy as np

from nbxent import _bce_cpu
from nbxent._bce_validate import plan_backward, plan_forward
from nbxent._common import is_device_array

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_with_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_with_grad",
]


def _host(obj):
    return None if obj is None else np.asarray(obj)


def _check_out(fname: str, out, x: np.ndarray) -> None:
    if out is None:
        return
    problem = None
    if not isinstance(out, np.ndarray):
        problem = f"is a {type(out).__name__}, not a numpy.ndarray"
    elif out.shape != x.shape or out.dtype != x.dtype:
        problem = f"has shape {out.shape} and dtype {out.dtype}"
    elif not out.flags.c_contiguous:
        problem = "is not C-contiguous"
    elif not out.flags.writeable:
        problem = "is read-only"
    if problem:
        raise ValueError(f"{fname}: argument 'out' {problem}; it must be a writeable C-contiguous "
                         f"array of the input's shape {x.shape} and dtype {x.dtype}")


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.binary_cross_entropy(input, target, weight=weight, reduction=reduction)
    fname = "binary_cross_entropy"
    x, y, w = _host(input), _host(target), _host(weight)
    plan = plan_forward(fname, False, x, y, w, None, reduction)
    return _bce_cpu.run(plan, x, y, w, None)[0]


def binary_cross_entropy_backward(grad_output, input, target, weight=None, reduction="mean",
                                  wrt="input"):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.binary_cross_entropy_backward(grad_output, input, target, weight=weight,
                                                  reduction=reduction, wrt=wrt)
    fname = "binary_cross_entropy_backward"
    x, y, w, g = _host(input), _host(target), _host(weight), _host(grad_output)
    plan = plan_forward(fname, False, x, y, w, None, reduction)
    plan_backward(plan, g, wrt)
    _, gx, gy = _bce_cpu.run(plan, x, y, w, None, grad_output=g, want_loss=False,
                             want_gx=(wrt == "input"), want_gy=(wrt == "target"))
    return gx if wrt == "input" else gy


def binary_cross_entropy_with_grad(input, target, weight=None, reduction="mean", out=None):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.binary_cross_entropy_with_grad(input, target, weight=weight,
                                                   reduction=reduction, out=out)
    fname = "binary_cross_entropy_with_grad"
    x, y, w = _host(input), _host(target), _host(weight)
    plan = plan_forward(fname, False, x, y, w, None, reduction)
    _check_out(fname, out, x)
    return _bce_cpu.run(plan, x, y, w, None, want_gx=True, out=out)[:2]


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.binary_cross_entropy_with_logits(input, target, weight=weight,
                                                     reduction=reduction, pos_weight=pos_weight)
    fname = "binary_cross_entropy_with_logits"
    x, y, w, pw = _host(input), _host(target), _host(weight), _host(pos_weight)
    plan = plan_forward(fname, True, x, y, w, pw, reduction)
    return _bce_cpu.run(plan, x, y, w, pw)[0]


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None,
                                              reduction="mean", pos_weight=None, wrt="input"):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.binary_cross_entropy_with_logits_backward(
            grad_output, input, target, weight=weight, reduction=reduction,
            pos_weight=pos_weight, wrt=wrt)
    fname = "binary_cross_entropy_with_logits_backward"
    x, y, w, pw, g = _host(input), _host(target), _host(weight), _host(pos_weight), _host(grad_output)
    plan = plan_forward(fname, True, x, y, w, pw, reduction)
    plan_backward(plan, g, wrt)
    _, gx, gy = _bce_cpu.run(plan, x, y, w, pw, grad_output=g, want_loss=False,
                             want_gx=(wrt == "input"), want_gy=(wrt == "target"))
    return gx if wrt == "input" else gy


def binary_cross_entropy_with_logits_with_grad(input, target, weight=None, reduction="mean",
                                               pos_weight=None, out=None):
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
    if is_device_array(input):
        from nbxent import cuda
        return cuda.binary_cross_entropy_with_logits_with_grad(
            input, target, weight=weight, reduction=reduction, pos_weight=pos_weight, out=out)
    fname = "binary_cross_entropy_with_logits_with_grad"
    x, y, w, pw = _host(input), _host(target), _host(weight), _host(pos_weight)
    plan = plan_forward(fname, True, x, y, w, pw, reduction)
    _check_out(fname, out, x)
    return _bce_cpu.run(plan, x, y, w, pw, want_gx=True, out=out)[:2]
