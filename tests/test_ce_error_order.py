"""Which error wins when an argument has two problems: torch's order, checked against torch."""
import numpy as np
import pytest

import nbxent

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_error(x, t, **kw):
    try:
        F.cross_entropy(torch.tensor(x), torch.tensor(t), **kw)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc)
    return None


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("target", [[2], [1], [-100]])
def test_unbatched_smoothing_with_1d_target(reduction, target):
    # A (C,) input with a 1-element 1-D target cannot take label smoothing (torch fails to
    # broadcast the smoothing term), but an out-of-range target is reported first.
    x = np.array([0.5, -0.25], dtype=np.float32)
    t = np.array(target)
    want = _torch_error(x, t, label_smoothing=0.5, reduction=reduction)
    assert want is not None
    with pytest.raises(want):
        nbxent.cross_entropy(x, t, label_smoothing=0.5, reduction=reduction)
    with pytest.raises(want):
        nbxent.cross_entropy_with_grad(x, t, label_smoothing=0.5, reduction=reduction)
