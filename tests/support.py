"""The one comparison helper of the test suite, on the harness's tolerance policy.

Every accuracy assertion of the tests goes through :func:`assert_conforms`: the allowed
error per element is ``conformance.tolerances.tolerance`` (derived from the dtype's eps
and the size of the terms each output element combines, keyed by loss, output kind and
dtype: conformance/tolerances.py) and the comparison is ``conformance.compare.compare``
(NaN/inf patterns, max abs/rel/ulp error, k of n bad, the worst element). A failure
prints all of that and a reproducer.

References: :func:`reference` evaluates a case with the harness's oracles (mpmath, exact
to float64, for small cases; the float64 scipy oracle otherwise).
"""
from __future__ import annotations

import numpy as np

from conformance.compare import compare
from conformance.model import Case
from conformance.oracles import make_oracle
from conformance.tolerances import tolerance

_MPMATH_MAX = 256       # inputs up to this size get the exact (50-digit) mpmath reference


def _dtype_name(a: np.ndarray) -> str:
    """The float dtype the tolerance is keyed by: the array's (bfloat16 included), else float64."""
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        return a.dtype.name
    return "float64"


def make_case(loss: str, input, target, weight=None, pos_weight=None, grad_output=None,
              **kwargs) -> Case:
    """A harness case for ``loss`` with these arrays and keywords (None arrays left out)."""
    arrays = {"input": np.asarray(input), "target": np.asarray(target)}
    for name, value in (("weight", weight), ("pos_weight", pos_weight),
                        ("grad_output", grad_output)):
        if value is not None:
            arrays[name] = np.asarray(value)
    return Case(loss=loss, arrays=arrays, kwargs=dict(kwargs), origin="test")


def _with_grad_output(case: Case) -> Case:
    if "grad_output" in case.arrays:
        return case
    red = case.kwargs.get("reduction", "mean")
    x = case.arrays["input"]
    if red != "none":
        shape = ()
    elif case.loss in ("cross_entropy", "nll_loss"):
        shape = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    else:
        shape = x.shape
    arrays = dict(case.arrays, grad_output=np.ones(shape))
    return Case(loss=case.loss, arrays=arrays, kwargs=case.kwargs, origin=case.origin)


def reference(case: Case, kind: str, oracle: str | None = None) -> np.ndarray:
    """The value or input gradient of ``case`` from a harness oracle.

    Default: mpmath (exact, rounded to float64) for small inputs, else the float64 scipy
    oracle; ``oracle='torch'`` asks torch in float64 (for torch's NaN/inf patterns, which
    mpmath replaces by exact limits: docs/semantics.md §14).
    """
    case = _with_grad_output(case) if kind == "grad" else case
    name = oracle or ("mpmath" if case.arrays["input"].size <= _MPMATH_MAX else "scipy")
    ref = make_oracle(name).evaluate(case, want_grad=kind == "grad")
    if ref.error is not None:
        raise AssertionError(f"the {name} oracle says this case raises {ref.error}")
    return np.asarray(ref.grad if kind == "grad" else ref.value, dtype=np.float64)


def _reproducer(case: Case, kind: str) -> str:
    arrays = ", ".join(f"{k}=np.array({v.tolist()!r}, dtype=np.{v.dtype.name})"
                       for k, v in case.arrays.items() if v.size <= 64)
    big = [k for k, v in case.arrays.items() if v.size > 64]
    note = f"  # arrays too large to print: {big}" if big else ""
    return f"{case.loss} {kind}: {arrays} kwargs={case.kwargs!r}{note}"


def _report(label, dtype, result, case, kind):
    m = result.measure
    lines = [f"{label} [{dtype}]: {m.n_bad} of {m.n_total} outside the tolerance, "
             f"{result.n_pattern_bad} NaN/inf pattern mismatches",
             f"  max abs {m.max_abs:.3e}, max rel {m.max_rel:.3e}, max ulp {m.max_ulp:.2f}",
             f"  worst at {m.worst_index}: got {m.worst_got!r}, want {m.worst_want!r}",
             f"  tolerance: {m.tolerance}"]
    lines += [f"  pattern: {e}" for e in result.pattern_examples]
    if case is not None:
        lines.append(f"  reproducer: {_reproducer(case, kind)}")
    return "\n".join(lines)


def assert_within(got, want, tol, what: str, why: str, case: Case | None = None,
                  kind: str = "value", dtype: str | None = None,
                  inputs: dict | None = None) -> float:
    """``got`` within ``tol`` (per element, derived by the caller: ``why`` says how) of ``want``.

    The comparison and the report are the harness's (NaN/inf patterns, k of n, worst element).
    ``dtype``: the dtype whose ulps the report counts (default: ``got``'s); ``inputs``: named
    arrays of the shape of ``got`` whose values at the worst element the report adds.
    Returns the max ulp error (over the elements above their tolerance, as the harness counts).
    """
    got_arr = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got_arr.shape == want.shape, f"{what}: shape {got_arr.shape} != {want.shape}"
    dtype = dtype or _dtype_name(got_arr)
    result = compare(got_arr, want, tol, dtype, why)
    if not (result.value_ok and result.pattern_ok):
        msg = _report(what, dtype, result, case, kind)
        if inputs and result.measure.worst_index is not None:
            flat = int(np.ravel_multi_index(result.measure.worst_index, want.shape)) if want.ndim else 0
            msg += "\n  inputs there: " + ", ".join(
                f"{n}={float(np.asarray(v).reshape(-1)[flat])!r}" for n, v in inputs.items())
        raise AssertionError(msg)
    return result.measure.max_ulp


def assert_conforms(got, want, case: Case, kind: str, what: str = "",
                    exact: bool = False) -> None:
    """``got`` is within the harness's tolerance of ``want`` for ``case`` (``kind``: value/grad).

    ``want`` is a float64 (or exact, ``exact=True``) reference of the same shape. Signed
    zeros are not distinguished here (tests that care assert them separately).
    """
    got_arr = np.asarray(got)
    dtype = _dtype_name(got_arr)
    tol, desc = tolerance(case, kind, dtype, ref_exact=exact)
    assert_within(got_arr, want, tol, what or f"{case.loss} {kind}", desc, case, kind)


def assert_matches_reference(loss: str, kind: str, got, input, target, weight=None,
                             pos_weight=None, grad_output=None, oracle: str | None = None,
                             **kwargs) -> None:
    """Compare ``got`` with an oracle's reference for this call (see :func:`reference`)."""
    case = make_case(loss, input, target, weight, pos_weight, grad_output, **kwargs)
    if kind == "grad":
        case = _with_grad_output(case)
    exact = oracle is None and case.arrays["input"].size <= _MPMATH_MAX
    assert_conforms(got, reference(case, kind, oracle), case, kind, exact=exact)
