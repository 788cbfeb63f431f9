"""``torch.nn`` loss modules over :mod:`nbxent.torch`'s functions.

Constructor arguments are torch's (names, order, defaults). ``weight`` and
``pos_weight`` are registered as buffers, as in torch, so they follow ``.to()``,
``.cuda()``, ``.double()`` and ``state_dict()``. The deprecated ``size_average``
and ``reduce`` raise ``TypeError`` naming the equivalent ``reduction``.
"""
from __future__ import annotations

import torch

from nbxent.torch import _functional as F
from nbxent.torch._tensors import reject_legacy

__all__ = ["CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss"]


class _Loss(torch.nn.Module):
    def __init__(self, size_average, reduce, reduction: str):
        super().__init__()
        reject_legacy(type(self).__name__, size_average, reduce)
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """Module form of :func:`nbxent.torch.cross_entropy` (``torch.nn.CrossEntropyLoss``).

    Examples:
        >>> import torch
        >>> loss = CrossEntropyLoss(label_smoothing=0.1)
        >>> print(f"{loss(torch.zeros(2, 4), torch.tensor([0, 3])).item():.6f}")
        1.386294
    """

    __constants__ = ["ignore_index", "reduction", "label_smoothing"]

    def __init__(self, weight: torch.Tensor | None = None, size_average=None,
                 ignore_index: int = -100, reduce=None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """Module form of :func:`nbxent.torch.nll_loss` (``torch.nn.NLLLoss``)."""

    __constants__ = ["ignore_index", "reduction"]

    def __init__(self, weight: torch.Tensor | None = None, size_average=None,
                 ignore_index: int = -100, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_Loss):
    """Module form of :func:`nbxent.torch.binary_cross_entropy` (``torch.nn.BCELoss``)."""

    __constants__ = ["reduction"]

    def __init__(self, weight: torch.Tensor | None = None, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Module form of :func:`nbxent.torch.binary_cross_entropy_with_logits`.

    ``torch.nn.BCEWithLogitsLoss``'s arguments; ``weight`` and ``pos_weight`` are buffers.
    """

    def __init__(self, weight: torch.Tensor | None = None, size_average=None, reduce=None,
                 reduction: str = "mean", pos_weight: torch.Tensor | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
