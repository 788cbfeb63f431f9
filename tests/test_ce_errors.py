"""Every cross_entropy / nll_loss error of docs/semantics.md (§11 and the sections it cites):
torch's exception type, and a message naming the function, the argument and the value."""
from __future__ import annotations

import numpy as np
import pytest

import nbxent

from ce_support import torch_call

f32 = np.float32
Z23 = np.zeros((2, 3), f32)
T01 = np.array([0, 1])

# (id, function, args, kwargs, exception type, fragments the message must contain)
CASES = [
    ("bad reduction", "cross_entropy", (Z23, T01), {"reduction": "bogus"}, ValueError,
     ["cross_entropy", "reduction", "bogus"]),
    ("bad reduction nll", "nll_loss", (Z23, T01), {"reduction": None}, ValueError,
     ["nll_loss", "reduction", "None"]),
    ("weight wrong length 2-D", "cross_entropy", (Z23, T01), {"weight": np.ones(4, f32)},
     RuntimeError, ["cross_entropy", "weight", "all 3 classes", "[4]"]),
    ("weight wrong length spatial", "cross_entropy",
     (np.zeros((2, 3, 5), f32), np.zeros((2, 5), np.int64)), {"weight": np.ones(4, f32)},
     RuntimeError, ["cross_entropy", "weight", "all or no classes"]),
    ("weight 2-D", "cross_entropy", (np.zeros((1, 3), f32), np.array([1])),
     {"weight": np.ones((1, 3), f32)}, RuntimeError, ["weight", "[1, 3]"]),
    ("prob weight wrong length", "cross_entropy", (Z23, np.zeros((2, 3), f32)),
     {"weight": np.ones(4, f32)}, RuntimeError, ["cross_entropy", "weight", "[4]"]),
    ("label_smoothing > 1", "cross_entropy", (Z23, T01), {"label_smoothing": 1.01},
     RuntimeError, ["cross_entropy", "label_smoothing", "1.01"]),
    ("label_smoothing inf, prob", "cross_entropy", (Z23, np.zeros((2, 3), f32)),
     {"label_smoothing": float("inf")}, RuntimeError, ["label_smoothing", "inf"]),
    ("float index target", "cross_entropy", (Z23, np.array([0.0, 1.0], f32)), {},
     RuntimeError, ["cross_entropy", "target", "Float"]),
    ("bool index target", "nll_loss", (Z23, np.array([True, False])), {}, RuntimeError,
     ["nll_loss", "target", "Bool"]),
    ("float spatial target", "cross_entropy", (np.zeros((1, 3, 2), f32), np.zeros((1, 2), f32)),
     {}, RuntimeError, ["target", "Float"]),
    ("int prob-shaped target", "cross_entropy", (Z23, np.zeros((2, 3), np.int64)), {},
     RuntimeError, ["cross_entropy", "target", "Long", "class probabilities"]),
    ("ignore_index >= 0 with prob target", "cross_entropy", (Z23, np.zeros((2, 3), f32)),
     {"ignore_index": 1}, RuntimeError, ["cross_entropy", "ignore_index", "1"]),
    ("target >= C", "cross_entropy", (Z23, np.array([0, 3])), {}, IndexError,
     ["cross_entropy", "Target 3 is out of bounds", "target", "(1,)", "C=3"]),
    ("negative target", "nll_loss", (Z23, np.array([0, -1])), {}, IndexError,
     ["nll_loss", "Target -1", "target", "(1,)"]),
    ("target out of bounds with reduction none", "cross_entropy", (Z23, np.array([-5, 0])),
     {"reduction": "none"}, IndexError, ["Target -5", "(0,)"]),
    ("spatial target out of bounds", "cross_entropy",
     (np.zeros((1, 3, 2), f32), np.array([[0, 7]])), {}, IndexError, ["Target 7", "(0, 1)"]),
    ("C = 0", "cross_entropy", (np.zeros((2, 0), f32), np.zeros(2, np.int64)), {}, IndexError,
     ["Target 0", "C=0"]),
    ("batch mismatch", "cross_entropy", (Z23, np.array([0, 1, 2])), {}, ValueError,
     ["cross_entropy", "batch_size (2)", "batch_size (3)", "target"]),
    ("3-D target shape mismatch", "cross_entropy",
     (np.zeros((2, 3, 4), f32), np.zeros((2, 5), np.int64)), {}, RuntimeError,
     ["Expected target size [2, 4], got [2, 5]", "target"]),
    ("4-D target shape mismatch", "cross_entropy",
     (np.zeros((2, 3, 4, 5), f32), np.zeros((2, 4, 6), np.int64)), {}, RuntimeError,
     ["size mismatch", "target"]),
    ("4-D target wrong ndim", "cross_entropy",
     (np.zeros((2, 3, 4, 5), f32), np.zeros((2, 4), np.int64)), {}, RuntimeError,
     ["only batches of spatial targets", "target"]),
    ("5-D target mismatch", "cross_entropy",
     (np.zeros((2, 3, 4, 5, 6), f32), np.zeros((2, 4, 5), np.int64)), {}, RuntimeError,
     ["Expected target size [2, 4, 5, 6]", "target"]),
    ("2-D input, 2-D non-matching target", "cross_entropy", (Z23, np.zeros((2, 3, 1), f32)), {},
     RuntimeError, ["0D or 1D target", "target"]),
    ("1-D input, 2-element target", "cross_entropy", (np.zeros(3, f32), np.array([0, 1])), {},
     ValueError, ["For 1D input", "target size: 2"]),
    ("1-D input, 1-element target, smoothing", "cross_entropy",
     (np.zeros(3, f32), np.array([1])), {"label_smoothing": 0.1, "reduction": "sum"},
     RuntimeError, ["cross_entropy", "target", "broadcast shape [1]"]),
    ("NLL 0-d input", "nll_loss", (np.array(1.0, f32), np.array(0)), {}, ValueError,
     ["nll_loss", "1 or more dimensions", "input"]),
    ("CE 0-d input", "cross_entropy", (np.array(1.0, f32), np.array(0.0, f32)), {}, IndexError,
     ["cross_entropy", "no dimensions", "input"]),
    ("NLL 2-D target", "nll_loss", (Z23, np.zeros((2, 3), f32)), {}, RuntimeError,
     ["nll_loss", "multi-target", "target"]),
    ("integer input CE", "cross_entropy", (np.zeros((1, 3), np.int64), np.array([1])), {},
     NotImplementedError, ["cross_entropy", "Long", "input"]),
    ("integer input NLL", "nll_loss", (np.zeros((1, 3), np.int32), np.array([1])), {},
     NotImplementedError, ["nll_loss", "Int", "input"]),
    ("float ignore_index", "cross_entropy", (Z23, T01), {"ignore_index": 1.0}, TypeError,
     ["cross_entropy", "ignore_index", "float"]),
    ("ignore_index overflow", "cross_entropy", (Z23, T01), {"ignore_index": 2**63}, ValueError,
     ["cross_entropy", "Overflow", "ignore_index"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_type_and_message(case):
    _, fn, args, kwargs, exc, fragments = case
    with pytest.raises(exc) as info:
        getattr(nbxent, fn)(*args, **kwargs)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_torch_raises_the_same_type(case):
    _, fn, args, kwargs, exc, _ = case
    got = torch_call(fn, *args, **kwargs)
    assert isinstance(got, exc), f"torch gave {got!r}, we raise {exc.__name__}"


ARRAY_ARGS = [
    # Array-likes are read through np.asarray (tests/test_arguments.py); what that gives must
    # still be a numeric array.
    ("string input", "cross_entropy", ([["a", "b"]], np.array([0])), {}, ["input", "unsupported dtype"]),
    ("string smoothing", "cross_entropy", (Z23, T01), {"label_smoothing": "0.1"},
     ["label_smoothing", "str"]),
    ("bool ignore_index", "nll_loss", (Z23, T01), {"ignore_index": True}, ["ignore_index"]),
]


@pytest.mark.parametrize("case", ARRAY_ARGS, ids=[c[0] for c in ARRAY_ARGS])
def test_non_arrays_raise_type_error(case):
    _, fn, args, kwargs, fragments = case
    with pytest.raises(TypeError) as info:
        getattr(nbxent, fn)(*args, **kwargs)
    for frag in fragments:
        assert frag in str(info.value)


def test_integer_weight_raises_runtime_error():
    with pytest.raises(RuntimeError, match="weight"):
        nbxent.cross_entropy(Z23, T01, weight=np.ones(3, np.int64))


def test_uint64_target_beyond_int64_is_out_of_bounds_not_wrapped():
    with pytest.raises(IndexError, match="Target 18446744073709551615 is out of bounds"):
        nbxent.nll_loss(Z23, np.array([0, 2**64 - 1], np.uint64))


def test_out_of_bounds_reported_before_any_value_is_read():
    # A NaN input and a huge target: the range check (IndexError) comes first, and the
    # first bad position in C order is the one reported.
    x = np.full((3, 4), np.nan, f32)
    with pytest.raises(IndexError, match=r"Target 99 .*index \(1,\)"):
        nbxent.cross_entropy(x, np.array([0, 99, -7]))


BACKWARD = [
    ("wrt unknown", lambda: nbxent.cross_entropy_backward(np.array(1.0, f32), Z23, T01,
                                                          wrt="weight"), ValueError, ["wrt"]),
    ("wrt target with index targets", lambda: nbxent.cross_entropy_backward(
        np.array(1.0, f32), Z23, T01, wrt="target"), RuntimeError, ["wrt", "target"]),
    ("nll wrt target", lambda: nbxent.nll_loss_backward(np.array(1.0, f32), Z23, T01,
                                                        wrt="target"), RuntimeError, ["target"]),
    ("grad_output shape", lambda: nbxent.cross_entropy_backward(np.ones(2, f32), Z23, T01),
     ValueError, ["grad_output", "(2,)"]),
    ("grad_output shape none", lambda: nbxent.nll_loss_backward(
        np.ones(3, f32), Z23, T01, reduction="none"), ValueError, ["grad_output", "(3,)"]),
    ("out shape", lambda: nbxent.cross_entropy_with_grad(Z23, T01, out=np.empty((3, 2), f32)),
     ValueError, ["out", "shape"]),
    ("out dtype", lambda: nbxent.nll_loss_with_grad(Z23, T01, out=np.empty((2, 3))),
     ValueError, ["out", "float64"]),
    ("out not C-contiguous", lambda: nbxent.cross_entropy_with_grad(
        Z23, T01, out=np.empty((3, 2), f32).T), ValueError, ["out", "C-contiguous"]),
    ("out read-only", lambda: nbxent.cross_entropy_with_grad(
        Z23, T01, out=np.broadcast_to(np.zeros(3, f32), (2, 3))), ValueError, ["out"]),
]


@pytest.mark.parametrize("case", BACKWARD, ids=[c[0] for c in BACKWARD])
def test_backward_and_out_errors(case):
    _, call, exc, fragments = case
    with pytest.raises(exc) as info:
        call()
    for frag in fragments:
        assert frag in str(info.value)
