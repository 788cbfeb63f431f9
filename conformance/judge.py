"""Judging: a candidate's outcomes on one case -> CheckResults. Pure: no oracles, no I/O, no state.

:class:`Judge` gets what the candidate did (the worker's :class:`Outcome` of the
forward and backward calls) and what it should have done (the references of
conformance/references.py) and decides every check:

* **invalid input** (torch raises): the candidate must raise an ``Exception``. By default
  any exception passes; one of another type than torch's is ``error_type_differs``
  (reported with torch's type and message, not a failure). With ``strict_errors`` (the
  ``--strict-errors`` flag, or a candidate's declaration, as nbxent's) the type must match.
  A value where torch raises is a failure; a ``SystemExit`` is never an accepted raise.
* **one-direction torch limits** (docs/semantics.md §13: torch's forward accepts a case its
  own backward rejects): the candidate may raise there or return the right gradient.
* **values**, element by element: each element must match torch's semantics, or the exact
  limit (mpmath) where that differs (``torch_differs``, not a failure), or, for the
  gradient of an ignored row, be exactly 0 (the rule below).

The rule for NaN in ignored rows (docs/conformance.md): an ignored sample never reaches the
loss; its gradient is exactly 0, which is the exact value, or torch's NaN where the row holds
a NaN or infinite logit (docs/semantics.md §10.2). Both pass everywhere; 0 where torch
gives NaN is reported as ``torch_differs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance.compare import compare, element_ok
from conformance.model import CheckResult
from conformance.oracles._layout import from_rows, to_rows
from conformance.tolerances import tolerance


@dataclass
class Context:
    """Who and what a verdict is about (copied into every CheckResult)."""

    spec: str
    loss: str
    case_id: str
    desc: dict
    oracle: str
    note: str = ""                 # e.g. the declared extension that made the case valid
    hint: str = ""                 # what to declare when the candidate raises on a feature it lacks


@dataclass
class Judgement:
    """The verdicts on one case, and what the candidate returned (kept for the diagnosis)."""

    results: list[CheckResult] = field(default_factory=list)
    got_value: np.ndarray | None = None
    got_grad: np.ndarray | None = None
    got_error: str | None = None
    diagnoses: list[str] = field(default_factory=list)   # sharding conventions explaining a metamorphic failure


def _merge(s, e):
    """Torch-semantics reference with exact values wherever both are finite."""
    if e is None:
        return s
    return np.where(np.isfinite(s) & np.isfinite(e), e, s)


def _rounded_overflow(want, dtype):
    """``want`` with the values that round to +-inf in ``dtype`` replaced by that infinity.

    A correctly rounded result beyond the dtype's range is infinite (float16's 65504 is
    reached by a few hundred losses of 100); the float64 references do not overflow there.
    """
    if want is None:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.asarray(want).astype(dtype)
    return np.where(np.isinf(r) & np.isfinite(want), r.astype(np.float64), want)


def ignored_gradient_mask(case) -> np.ndarray | None:
    """Input-shaped mask of the elements in ignored rows (class-index targets), or None."""
    a = case.arrays
    x, t = a["input"], np.asarray(a["target"])
    if case.loss not in ("cross_entropy", "nll_loss") or x.ndim == 0 or t.shape == x.shape \
            or not np.issubdtype(t.dtype, np.integer):
        return None
    ii = case.kwargs.get("ignore_index", -100)
    rows = to_rows(np.zeros(x.shape))
    ign = (t.astype(np.int64).reshape(-1) == ii)
    if ign.size != rows.shape[0] or not ign.any():
        return None
    return from_rows(np.broadcast_to(ign[:, None], rows.shape).astype(np.float64), x.shape) > 0


class Judge:
    """Decides the checks of one case from the candidate's outcomes and the references."""

    def __init__(self, strict_errors: bool = False):
        self.strict_errors = strict_errors

    # ----------------------------------------------------------------- invalid inputs
    def invalid(self, ctx: Context, fwd, torch_error: str, torch_message: str = "",
                strict: bool | None = None) -> Judgement:
        """An input torch rejects with ``torch_error``: the candidate must raise."""
        strict = self.strict_errors if strict is None else strict
        j = Judgement(got_error=fwd.exc_type if fwd.status == "raised" else None,
                      got_value=fwd.value if fwd.status == "ok" else None)
        torch_says = torch_message or torch_error
        if fwd.status == "raised" and fwd.is_exception:
            if fwd.exc_type == torch_error:
                self._res(j, ctx, "error_semantics", "pass", f"raised {fwd.exc_type} as torch does")
            else:
                status = "fail" if strict else "error_type_differs"
                self._res(j, ctx, "error_semantics", status,
                          f"raised {fwd.exc_type} ({fwd.message}); torch raises {torch_says}"
                          + ("" if strict else " (any exception passes without --strict-errors)"))
        elif fwd.status == "raised":
            self._res(j, ctx, "error_semantics", "fail", f"raised {fwd.exc_type}, which is not an Exception "
                      f"({fwd.message}); torch raises {torch_says}")
        elif fwd.status == "ok":
            self._res(j, ctx, "error_semantics", "fail", f"missing error: returned a value where torch raises "
                      f"{torch_says}")
        else:
            self._res(j, ctx, "error_semantics", self._status(fwd), fwd.message)
        return j

    # ----------------------------------------------------------------- valid inputs
    def valid(self, ctx: Context, case, s, e, fwd, bwd=None, backward_quirk: str | None = None) -> Judgement:
        """A valid case: forward checks from ``fwd``, the gradient check from ``bwd`` (None: not checked).

        ``backward_quirk`` is the exception torch's own backward raises on this case
        (docs/semantics.md §13), or None: where set, a raising backward is accepted.
        """
        j = Judgement()
        if fwd.status != "ok":
            j.got_error = fwd.exc_type or fwd.status
            msg = f"raised {fwd.exc_type}: {fwd.message}" if fwd.status == "raised" else fwd.message
            self._res(j, ctx, "value", self._status(fwd), "; ".join(m for m in (msg, ctx.hint) if m))
        else:
            j.got_value = fwd.value
            self._forward_checks(j, ctx, case, fwd, s, e)
        if bwd is not None:
            if bwd.status == "raised" and backward_quirk and bwd.is_exception:
                self._res(j, ctx, "grad_input", "pass", f"raised {bwd.exc_type} where torch's own backward raises "
                          f"{backward_quirk} too (docs/semantics.md §13); accepted")
            elif bwd.status != "ok":
                msg = f"raised {bwd.exc_type}: {bwd.message}" if bwd.status == "raised" else bwd.message
                self._res(j, ctx, "grad_input", self._status(bwd), "; ".join(m for m in (msg, ctx.hint) if m))
            else:
                j.got_grad = bwd.value
                self._grad_check(j, ctx, case, bwd, s, e)
        return j

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _status(outcome) -> str:
        return {"raised": "error", "bad_return": "error"}.get(outcome.status, outcome.status)

    @staticmethod
    def _res(j, ctx, check, status, message="", error=None):
        message = "; ".join(m for m in (message, ctx.note) if m)
        j.results.append(CheckResult(ctx.spec, ctx.loss, check, status, ctx.case_id, ctx.desc, message, error,
                                     None, ctx.oracle))

    @staticmethod
    def judge_array(case, kind, got, s_val, e_val, dtype, zero_ok=None):
        """(value status, pattern status, Comparison) of one output, element by element.

        An element passes if it matches torch's semantics (exact values where both are
        finite), or the exact limit, or is exactly 0 where ``zero_ok`` is set; if every
        element passes and some only by the second or third way, the status is
        ``torch_differs``. The Comparison measures what is left against the reference each
        element is best matched by.
        """
        tol, desc = tolerance(case, kind, dtype, ref_exact=e_val is not None)
        s_val, e_val = _rounded_overflow(s_val, dtype), _rounded_overflow(e_val, dtype)
        merged = _merge(s_val, e_val)
        got64 = np.asarray(got, dtype=np.float64)
        ok_m = element_ok(got64, merged, tol)
        want = merged
        if e_val is not None:
            want = np.where(~ok_m & element_ok(got64, e_val, tol), e_val, want)
        if zero_ok is not None:
            want = np.where(~ok_m & zero_ok & (got64 == 0), 0.0, want)
        c = compare(got, want, tol, dtype, desc)
        differs = not bool(np.all(ok_m))
        val = "pass" if c.value_ok else "fail"
        pat = "pass" if c.pattern_ok else "fail"
        if differs:
            c0 = compare(got, merged, tol, dtype, desc)
            if val == "pass" and not c0.value_ok:
                val = "torch_differs"
            if pat == "pass" and not c0.pattern_ok:
                pat = "torch_differs"
        return val, pat, c

    def _forward_checks(self, j, ctx, case, fwd, s, e):
        got, want_dtype = fwd.value, s.dtype
        if (got.dtype.kind != "f" and got.dtype.name != "bfloat16") or got.shape != s.value.shape:
            self._res(j, ctx, "shape_dtype", "fail", f"got {got.dtype} {got.shape}, want {want_dtype} {s.value.shape}")
            return
        self._res(j, ctx, "shape_dtype", "pass" if str(got.dtype) == want_dtype else "fail",
                  "" if str(got.dtype) == want_dtype else f"dtype {got.dtype}, torch returns {want_dtype}")
        val, pat, c = self.judge_array(case, "value", got, s.value, e and e.value, want_dtype)
        msg = f"{c.measure.n_bad} of {c.measure.n_total} elements outside the tolerance" if val == "fail" else ""
        if fwd.modified:
            val, msg = "fail", f"modified its input(s) {fwd.modified} in place"
        self._res(j, ctx, "nan_pattern", pat, "; ".join(c.pattern_examples) if pat != "pass" else "", None)
        self._res(j, ctx, "value", val, msg, c.measure)

    def _grad_check(self, j, ctx, case, bwd, s, e):
        got, x = bwd.value, case.arrays["input"]
        want = s.grad.shape          # the input's, or several gradients packed (conformance/linear_ce.py)
        if (got.dtype.kind != "f" and got.dtype.name != "bfloat16") or got.shape != want:
            self._res(j, ctx, "grad_input", "fail", f"gradient is {got.dtype} {got.shape}, want {x.dtype} {want}")
            return
        val, pat, c = self.judge_array(case, "grad", got, s.grad, e and e.grad, str(x.dtype),
                                       zero_ok=ignored_gradient_mask(case))
        status = "fail" if "fail" in (val, pat) else "torch_differs" if "torch_differs" in (val, pat) else "pass"
        msgs = []
        if val == "fail":
            msgs.append(f"{c.measure.n_bad} of {c.measure.n_total} elements outside the tolerance")
        if pat == "fail":
            msgs.append("NaN/inf pattern: " + "; ".join(c.pattern_examples))
        if str(got.dtype) != str(x.dtype):
            status, msgs = "fail", msgs + [f"gradient dtype {got.dtype}, input is {x.dtype}"]
        if bwd.modified:
            status, msgs = "fail", msgs + [f"modified its input(s) {bwd.modified} in place"]
        self._res(j, ctx, "grad_input", status, "; ".join(msgs), c.measure)
