"""Every binary_cross_entropy(_with_logits) error of docs/semantics.md §11, plus this API's own.

Each raises torch's exception type, with a message that names the function, the
argument and the offending value; the forward, backward and fused entry points agree.
"""
from __future__ import annotations

import numpy as np
import pytest

import nbxent

BCE, BCEWL = nbxent.binary_cross_entropy, nbxent.binary_cross_entropy_with_logits
H = np.full((2, 3), 0.5)
Z = np.zeros((2, 3))

CASES = [
    # (id, call, exception, fragments that must appear in the message)
    ("bad reduction", lambda: BCE(H, Z, reduction="bogus"), ValueError,
     ["binary_cross_entropy", "bogus is not a valid value for reduction"]),
    ("bad reduction None", lambda: BCEWL(H, Z, reduction=None), ValueError, ["None", "reduction"]),
    ("BCE shape mismatch", lambda: BCE(np.full(2, 0.5), np.zeros(3)), ValueError,
     ["binary_cross_entropy", "target", "(3,)", "(2,)"]),
    ("BCE input out of [0,1]", lambda: BCE(np.full(2, 1.5), np.zeros(2)), RuntimeError,
     ["all elements of input should be between 0 and 1", "input", "1.5"]),
    ("BCE input negative", lambda: BCE(np.array([-1e-30, 0.5]), np.zeros(2)), RuntimeError,
     ["input", "-1e-30"]),
    ("BCE input NaN", lambda: BCE(np.array([0.5, np.nan]), np.zeros(2)), RuntimeError,
     ["input", "nan", "flat index 1"]),
    ("BCE target out of [0,1]", lambda: BCE(np.full(2, 0.5), np.full(2, 2.0)), RuntimeError,
     ["all elements of target should be between 0 and 1", "target", "2.0"]),
    ("BCE first bad element decides", lambda: BCE(np.array([0.5, 2.0]), np.array([2.0, 0.5])),
     RuntimeError, ["target", "flat index 0"]),
    ("BCE dtype mismatch", lambda: BCE(np.full(2, 0.5, np.float32), np.zeros(2)), RuntimeError,
     ["Found dtype Double but expected Float", "target", "float64"]),
    ("BCE int input", lambda: BCE(np.array([1, 0]), np.array([1, 0])), NotImplementedError,
     ['"binary_cross_entropy" not implemented for \'Long\'', "input", "int64"]),
    ("BCE bool input", lambda: BCE(np.array([True]), np.array([True])), NotImplementedError,
     ["Bool"]),
    ("BCE weight not broadcastable", lambda: BCE(H, Z, weight=np.ones(2)), RuntimeError,
     ["weight", "(2,)", "(2, 3)"]),
    ("BCE weight bigger than input", lambda: BCE(H, Z, weight=np.ones((2, 2, 3))), RuntimeError,
     ["output with shape [2, 3] doesn't match the broadcast shape [2, 2, 3]", "weight"]),
    ("BCE complex weight", lambda: BCE(H, Z, weight=np.ones(3, np.complex128)), TypeError,
     ["weight", "complex128"]),
    ("BCEwL shape mismatch", lambda: BCEWL(np.zeros(2), np.zeros(3)), ValueError,
     ["binary_cross_entropy_with_logits", "Target size ((3,)) must be the same as input size ((2,))"]),
    ("BCEwL pos_weight mismatch", lambda: BCEWL(Z, Z, pos_weight=np.ones(2)), RuntimeError,
     ["The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 1",
      "pos_weight"]),
    ("BCEwL pos_weight bigger", lambda: BCEWL(Z, Z, pos_weight=np.ones((4, 2, 3))), RuntimeError,
     ["[4, 2, 3]", "pos_weight"]),
    ("BCEwL weight mismatch", lambda: BCEWL(Z, Z, weight=np.ones(2)), RuntimeError,
     ["The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 1",
      "weight"]),
    ("BCEwL int target", lambda: BCEWL(Z, np.zeros((2, 3), np.int64)), RuntimeError,
     ["result type Float can't be cast to the desired output type Long", "target"]),
    ("BCEwL bool target", lambda: BCEWL(Z, np.zeros((2, 3), bool)), RuntimeError,
     ["Subtraction", "target", "bool"]),
    ("BCEwL int input", lambda: BCEWL(np.array([1, 2]), np.array([1.0, 0.0])), NotImplementedError,
     ['"log_sigmoid_cpu" not implemented for \'Long\'', "input"]),
    ("BCEwL 0-d input, 1-d pos_weight", lambda: BCEWL(np.array(0.5), np.array(1.0), pos_weight=np.ones(1)),
     RuntimeError, ["output with shape [] doesn't match the broadcast shape [1]"]),
    ("not an array", lambda: BCE(H, Z, weight=object()), TypeError, ["weight", "object"]),
    # this API's own arguments
    ("bad wrt", lambda: nbxent.binary_cross_entropy_backward(np.array(1.0), H, Z, wrt="weight"),
     ValueError, ["binary_cross_entropy_backward", "wrt", "'weight'"]),
    ("grad_output shape", lambda: nbxent.binary_cross_entropy_with_logits_backward(np.ones(2), H, Z),
     ValueError, ["grad_output", "(2,)", "()"]),
    ("grad_output shape none", lambda: nbxent.binary_cross_entropy_backward(np.ones(3), H, Z, reduction="none"),
     ValueError, ["grad_output", "(3,)", "(2, 3)"]),
    ("grad_output int", lambda: nbxent.binary_cross_entropy_backward(np.array(1), H, Z), RuntimeError,
     ["grad_output", "int64"]),
    ("backward range check", lambda: nbxent.binary_cross_entropy_backward(np.array(1.0), H + 1, Z),
     RuntimeError, ["binary_cross_entropy_backward", "input"]),
    ("out shape", lambda: nbxent.binary_cross_entropy_with_grad(H, Z, out=np.empty(6)), ValueError,
     ["binary_cross_entropy_with_grad", "'out'", "(6,)"]),
    ("out dtype", lambda: nbxent.binary_cross_entropy_with_logits_with_grad(H, Z, out=np.empty((2, 3), np.float32)),
     ValueError, ["'out'", "float32"]),
    ("out Fortran", lambda: nbxent.binary_cross_entropy_with_grad(np.full((2, 3), 0.5), Z, out=np.empty((3, 2)).T),
     ValueError, ["'out'", "C-contiguous"]),
    ("out read-only", lambda: nbxent.binary_cross_entropy_with_logits_with_grad(H, Z, out=np.broadcast_to(0.0, (2, 3))),
     ValueError, ["'out'"]),
    ("out not an array", lambda: nbxent.binary_cross_entropy_with_grad(H, Z, out=[0.0] * 6), ValueError,
     ["'out'", "list"]),
]


@pytest.mark.parametrize("call,exc,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc
    for frag in fragments:
        assert frag in str(info.value), (frag, str(info.value))


@pytest.mark.parametrize("fn", [nbxent.binary_cross_entropy_backward, nbxent.binary_cross_entropy_with_logits_backward])
def test_backward_checks_like_the_forward(fn):
    with pytest.raises(ValueError, match="must be the same|different to the input size"):
        fn(np.array(1.0), np.zeros(2), np.zeros(3))


def test_a_failed_in_place_call_leaves_the_input_intact():
    x = np.array([0.25, 0.5, 1.5])
    before = x.copy()
    with pytest.raises(RuntimeError, match="input"):
        nbxent.binary_cross_entropy_with_grad(x, np.zeros(3), out=x)
    assert np.array_equal(x, before)
