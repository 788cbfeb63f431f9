"""nbxent.torch: nbxent's losses as ``torch.autograd`` functions and ``torch.nn`` modules.

``cross_entropy``, ``nll_loss``, ``binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` take ``torch.nn.functional``'s arguments
(names, order, defaults) and return tensors that autograd differentiates. The
forward runs nbxent's fused kernel (``nbxent.<loss>_with_grad``; ``nbxent.cuda``
for CUDA tensors), which writes the input gradient in the same pass as the loss;
the gradient is saved and the backward only scales it by ``grad_output``. CPU
tensors reach the kernels through NumPy and CUDA tensors through
``__cuda_array_interface__``, both without copying when contiguous.
``CrossEntropyLoss``, ``NLLLoss``, ``BCELoss`` and ``BCEWithLogitsLoss`` are the
matching modules. ``docs/torch.md`` says what is saved, what is copied, and the
limitations (no double backward, no bfloat16, no legacy ``size_average``/``reduce``).

This subpackage needs PyTorch; ``import nbxent`` never imports it.
"""
try:
    import torch  # noqa: F401  (absolute: the PyTorch package, not this one)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "nbxent.torch needs PyTorch, which is not installed (pip install torch); "
        "the rest of nbxent works without it"
    ) from exc

from nbxent.torch._functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from nbxent.torch._modules import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss

__all__ = [
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
]
