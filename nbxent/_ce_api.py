"""Placeholder: replaced by the cross_entropy / nll_loss implementation."""
def _todo(*a, **k):
    raise NotImplementedError
cross_entropy = cross_entropy_backward = cross_entropy_with_grad = _todo
nll_loss = nll_loss_backward = nll_loss_with_grad = _todo
