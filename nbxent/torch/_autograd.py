"""The four losses as ``torch.autograd.Function``s over nbxent's fused kernels.

Forward: when the input needs a gradient, ``<loss>_with_grad(..., out=buffer)``
computes the loss and writes ``d(loss)/d(input)`` (for ``grad_output = 1``; for
``'none'`` the gradient of ``sum(loss)``) into a torch-allocated buffer in the same
pass over the logits; the buffer is saved. Otherwise only the loss is computed.
Backward: ``grad_output`` times the saved buffer (:func:`_tensors.scale`); the
logits are not read again. Target (and, for probability-target CE, weight)
gradients come from ``<loss>_backward(..., wrt='target')`` and are computed only
when ``ctx.needs_input_grad`` asks for them; for those the input is saved too.

There is no second derivative: the saved gradient is a constant to autograd.
Rather than letting a double backward silently drop the second-order term (a
``create_graph=True`` backward would return a first derivative that is not
connected to the input), the backward raises ``RuntimeError`` whenever it runs
with ``create_graph=True`` (:func:`_first_order`); it is also
``@once_differentiable`` (computed under ``no_grad``).
"""
from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from nbxent.torch._tensors import empty_like, named, scale

# Positions in forward's arguments (the backend is the first one, never differentiable).
_X, _T, _W = 1, 2, 3


def _first_order(fname: str):
    """Refuse a backward that would have to build a graph (create_graph=True)."""
    def decorate(backward):
        @functools.wraps(backward)
        def checked(ctx, *grad_outputs):
            if torch.is_grad_enabled():
                raise RuntimeError(
                    f"nbxent.torch.{fname} has no second derivative (backward ran with "
                    f"create_graph=True): its backward scales the gradient saved by the fused "
                    f"forward, which autograd cannot differentiate; use "
                    f"torch.nn.functional.{fname} where a double backward is needed")
            return backward(ctx, *grad_outputs)
        return checked
    return decorate


def _class_dim(input: torch.Tensor) -> int | None:
    """Where grad_output of a 'none' loss is broadcast back: the class dim (None for (C,) input)."""
    return 1 if input.dim() >= 2 else None


def _with_grad(ctx, be, fname, fused, plain, input, arrays, kwargs):
    """The loss, and the saved input gradient when the input needs one (one pass)."""
    with named(fname), be.launch():
        if ctx.needs_input_grad[_X]:
            grad = empty_like(input)
            loss, _ = fused(*arrays, **kwargs, out=be.array(grad))
        else:
            grad = None
            loss = plain(*arrays, **kwargs)
    return be.tensor(loss), grad


class CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, be, input, target, weight, ignore_index, reduction, label_smoothing):
        api = be.api
        kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
        arrays = (be.array(input), be.array(target), be.array(weight))
        loss, grad = _with_grad(ctx, be, "cross_entropy", api.cross_entropy_with_grad,
                                api.cross_entropy, input, arrays, kwargs)
        need_x = ctx.needs_input_grad[_T] or ctx.needs_input_grad[_W]
        ctx.save_for_backward(grad, input if need_x else None, target, weight)
        ctx.be, ctx.kwargs = be, kwargs
        return loss

    @staticmethod
    @_first_order("cross_entropy")
    @once_differentiable
    def backward(ctx, grad_output):
        grad, input, target, weight = ctx.saved_tensors
        be, kw = ctx.be, ctx.kwargs
        gx = gt = gw = None
        if ctx.needs_input_grad[_X]:
            gx = scale(grad, _mask_ignored(grad_output, target, kw["ignore_index"]),
                       _class_dim(grad))
        if ctx.needs_input_grad[_T] or ctx.needs_input_grad[_W]:
            x, t, g = be.array(input), be.array(target), be.array(grad_output)
            with named("cross_entropy"), be.launch():
                if ctx.needs_input_grad[_T]:
                    gt = be.tensor(be.api.cross_entropy_backward(g, x, t, be.array(weight), **kw,
                                                                 wrt="target"))
                if ctx.needs_input_grad[_W]:
                    # d(loss)/d(w_c) = -sum_s g_s q_sc lp_sc (probability targets only; torch gives
                    # no weight gradient for index targets, refused at the forward). The unweighted,
                    # unsmoothed target gradient is exactly -g_s lp_sc (g_s includes the 1/S of
                    # 'mean', which has no weight in its denominator), so d/dw_c is its q-weighted
                    # sum over every dimension but the class one.
                    kw0 = dict(kw, label_smoothing=0.0)
                    m = be.tensor(be.api.cross_entropy_backward(g, x, t, None, **kw0, wrt="target"))
            if ctx.needs_input_grad[_W]:
                gw = _weight_grad(m, target, kw["label_smoothing"], input.dim()).to(weight.dtype)
        return None, gx, gt, gw, None, None, None


def _mask_ignored(grad_output, target, ignore_index):
    """torch gives ignored samples of a 'none' loss exactly zero gradient, whatever grad_output is.

    The saved gradient is +0.0 there (NaN only when the row's logits are NaN, as in
    torch), but ``inf * 0`` and ``nan * 0`` are NaN, so grad_output is zeroed first.
    Applies to class-index targets with a per-sample grad_output (``'none'``).
    """
    if grad_output.dim() == 0 or target.is_floating_point() or target.shape != grad_output.shape:
        return grad_output
    return grad_output.masked_fill(target == ignore_index, 0)


def _weight_grad(m, target, label_smoothing, ndim):
    """sum over samples of ``q * m`` with ``q = (1-eps)*p + eps/C`` (``p`` where eps <= 0 or NaN)."""
    class_dim = 1 if ndim >= 2 else 0
    q = target.to(m.dtype)
    if label_smoothing > 0:
        q = (1 - label_smoothing) * q + label_smoothing / target.shape[class_dim]
    prod = q * m
    dims = [d for d in range(ndim) if d != class_dim]
    return prod.sum(dim=dims) if dims else prod


class NLLLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, be, input, target, weight, ignore_index, reduction):
        api = be.api
        kwargs = dict(ignore_index=ignore_index, reduction=reduction)
        arrays = (be.array(input), be.array(target), be.array(weight))
        loss, grad = _with_grad(ctx, be, "nll_loss", api.nll_loss_with_grad, api.nll_loss, input,
                                arrays, kwargs)
        ctx.save_for_backward(grad, target)
        ctx.ignore_index = ignore_index
        return loss

    @staticmethod
    @_first_order("nll_loss")
    @once_differentiable
    def backward(ctx, grad_output):
        grad, target = ctx.saved_tensors
        g = _mask_ignored(grad_output, target, ctx.ignore_index)
        return None, scale(grad, g, _class_dim(grad)), None, None, None, None


class _Binary(torch.autograd.Function):
    """BCE and BCE-with-logits: elementwise, so grad_output scales the saved gradient elementwise."""

    fname = ""

    @staticmethod
    def _fns(api):
        raise NotImplementedError

    @classmethod
    def _forward(cls, ctx, be, input, target, kwargs, tensors):
        fused, plain, _ = cls._fns(be.api)
        arrays = (be.array(input), be.array(target))
        call = dict(kwargs, **{k: be.array(v) for k, v in tensors.items()})
        loss, grad = _with_grad(ctx, be, cls.fname, fused, plain, input, arrays, call)
        need_x = ctx.needs_input_grad[_T]
        ctx.save_for_backward(grad, input if need_x else None, target if need_x else None,
                              *tensors.values())
        ctx.be, ctx.kwargs, ctx.names = be, kwargs, list(tensors)
        return loss

    @classmethod
    def _backward(cls, ctx, grad_output):
        grad, input, target, *extra = ctx.saved_tensors
        be = ctx.be
        gx = gy = None
        if ctx.needs_input_grad[_X]:
            gx = scale(grad, grad_output, None)
        if ctx.needs_input_grad[_T]:
            backward = cls._fns(be.api)[2]
            kwargs = dict(ctx.kwargs, **{k: be.array(v) for k, v in zip(ctx.names, extra)})
            with named(cls.fname), be.launch():
                gy = be.tensor(backward(be.array(grad_output), be.array(input), be.array(target),
                                        **kwargs, wrt="target"))
        return gx, gy


class BinaryCrossEntropy(_Binary):
    fname = "binary_cross_entropy"

    @staticmethod
    def _fns(api):
        return (api.binary_cross_entropy_with_grad, api.binary_cross_entropy,
                api.binary_cross_entropy_backward)

    @staticmethod
    def forward(ctx, be, input, target, weight, reduction):
        return BinaryCrossEntropy._forward(ctx, be, input, target, dict(reduction=reduction),
                                           dict(weight=weight))

    @staticmethod
    @_first_order("binary_cross_entropy")
    @once_differentiable
    def backward(ctx, grad_output):
        return (None, *BinaryCrossEntropy._backward(ctx, grad_output), None, None)


class BinaryCrossEntropyWithLogits(_Binary):
    fname = "binary_cross_entropy_with_logits"

    @staticmethod
    def _fns(api):
        return (api.binary_cross_entropy_with_logits_with_grad,
                api.binary_cross_entropy_with_logits,
                api.binary_cross_entropy_with_logits_backward)

    @staticmethod
    def forward(ctx, be, input, target, weight, reduction, pos_weight):
        return BinaryCrossEntropyWithLogits._forward(ctx, be, input, target,
                                                     dict(reduction=reduction),
                                                     dict(weight=weight, pos_weight=pos_weight))

    @staticmethod
    @_first_order("binary_cross_entropy_with_logits")
    @once_differentiable
    def backward(ctx, grad_output):
        return (None, *BinaryCrossEntropyWithLogits._backward(ctx, grad_output), None, None, None)
