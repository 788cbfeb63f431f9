"""Running one case on one candidate: references, the calls, the judge.

:class:`Evaluator` is what the catalogue, the fuzzer and the shrinker call: it asks
conformance/references.py for the references (legalising a case a declared
extension makes valid), calls the candidate's worker, hands the outcomes to
:class:`conformance.judge.Judge` and returns its :class:`Judgement`. It keeps no
results: the recorder (conformance/recorder.py) does.
"""
from __future__ import annotations

import numpy as np

from conformance import losses, metamorphic, strategies
from conformance.judge import Context, Judge, Judgement
from conformance.model import Case, CheckResult
from conformance.oracles.validate import backward_error
from conformance.references import References
from conformance.relations import RELATIONS
from conformance.worker import RELATION

#: Features the harness infers from a case's shapes and values, not from a keyword: a candidate
#: that lacks one must declare it (CONFORMANCE exclude) or it is sent such cases.
INFERRED = ("spatial", "unbatched", "prob_target", "empty", "nonfinite", "noncontiguous", "large_classes")


def exclude_hint(loss: str, case: Case) -> str:
    """What a candidate that raises on this valid case could declare, if it lacks a feature."""
    need = sorted(f for f in strategies.case_features(case) if f in INFERRED)
    if not need:
        return ""
    return (f"if {loss} does not support {', '.join(need)}, declare it: CONFORMANCE = "
            f"{{'losses': {{'{loss}': {{'exclude': {need!r}}}}}}} (docs/candidates.md)")


def packed_gradients(out, case: Case):
    """The Outcome of a ``<loss>_with_grad`` call with its gradients packed as the oracles pack them
    (conformance/linear_ce.py ``pack``: input's, linear_weight's, then the bias's if any), or a
    ``bad_return`` naming a gradient of the wrong shape."""
    if out.status != "ok":
        return out
    from conformance.linear_ce import pack, packed_parts
    parts = packed_parts(case.arrays)
    got = list(out.value) if isinstance(out.value, tuple) else []
    grads = (got[1:] + [None] * 3)[:3]
    bad = [f"{name} of shape {None if g is None else tuple(np.shape(g))}, want {shape}"
           for (name, shape), g in zip(parts, grads) if g is None or tuple(np.shape(g)) != tuple(shape)]
    if len(got) < 1 + len(parts) or bad:
        out.status, out.value = "bad_return", None
        out.message = ("expected (loss, grad_input, grad_linear_weight, grad_linear_bias or None); returned "
                       + ("; ".join(bad) if bad else f"{len(got)} values"))
        return out
    out.value = pack(*[np.asarray(g) for g in grads[:len(parts)]]).astype(np.asarray(grads[0]).dtype)
    return out


def packing_note(case: Case) -> str:
    """Where each gradient sits in the packed array (for reading a failure's worst index)."""
    from conformance.linear_ce import packed_parts
    out, i = [], 0
    for name, shape in packed_parts(case.arrays):
        n = int(np.prod(shape))
        out.append(f"{name} {list(shape)} at [{i}, {i + n})")
        i += n
    return "gradients packed as " + ", ".join(out)


class Evaluator:
    """Evaluates cases on candidates: references + worker calls + judge."""

    def __init__(self, refs: References, judge: Judge, case_timeout_s: float):
        self.refs, self.judge, self.case_timeout_s = refs, judge, case_timeout_s

    def applies(self, case: Case, feats) -> bool:
        """Whether :meth:`evaluate` would run ``case`` (False: invalid, and the candidate declares no error
        checks); decided from the torch-semantics oracle alone, without calling the candidate."""
        scipy = self.refs.oracles["scipy"]
        error = scipy.evaluate(case, want_grad=False).error
        if error is not None and feats.extensions:
            error = scipy.evaluate(self.refs.legalise(case, feats)[0], want_grad=False).error
        return error is None or feats.has("errors")

    def evaluate(self, case: Case, case_id: str, worker, feats, spec: str) -> tuple[Judgement, Case] | None:
        """Run ``case`` on the candidate; returns (judgement, the case as sent) or None when it does not apply
        (an invalid case for a candidate that declares no error checks)."""
        s, e = self.refs.get(case)
        call, note, used = case, "", []
        if s.error is not None and feats.extensions:
            case, call, used = self.refs.legalise(case, feats)
            if used:
                torch_error = s.error
                s, e = self.refs.get(case)
                note = (f"extension {', '.join(used)} declared: torch raises {torch_error} here; judged against "
                        "the reference of the canonical form (int64 target, weight in the input's dtype)")
        if s.error is not None and not feats.has("errors"):
            return None
        desc = call.describe()
        if used:
            desc["extensions"] = used
        ctx = Context(spec, case.loss, case_id, desc, "mpmath" if e is not None else "scipy", note)
        fwd = worker.call(call.loss, call.arrays, call.kwargs, False, self.case_timeout_s)
        if s.error is not None:
            j = self.judge.invalid(ctx, fwd, s.error, self.refs.torch_error_message(case),
                                   strict=self.judge.strict_errors or feats.strict_errors)
        else:
            bwd = None
            if feats.has("backward") and "grad_output" in case.arrays and s.grad is not None:
                grad_name = losses.get(case.loss).grad_name or call.loss + "_backward"
                if grad_name.endswith("_with_grad"):      # (loss, *gradients) of loss.sum(): packed
                    bwd = packed_gradients(worker.call(grad_name, call.arrays, call.kwargs, False,
                                                       self.case_timeout_s), call)
                    ctx.note = "; ".join(m for m in (ctx.note, packing_note(call)) if m)
                else:
                    bwd = worker.call(grad_name, call.arrays, call.kwargs, True, self.case_timeout_s)
            if (fwd.status == "raised") or (bwd is not None and bwd.status == "raised"):
                ctx.hint = exclude_hint(case.loss, case)
            j = self.judge.valid(ctx, case, s, e, fwd, bwd, backward_error(case.loss, call.arrays, call.kwargs))
            fwd = bwd if (bwd is not None and bwd.output and not fwd.output) else fwd
        if fwd.output:
            tail = f"[{fwd.output_chars} characters printed; the last {len(fwd.output)}:]\n{fwd.output}" \
                if fwd.output_chars > len(fwd.output) else fwd.output
            for r in j.results:
                r.output = tail
        return j, call

    def evaluate_relation(self, case: Case, case_id: str, worker, spec: str) -> tuple[Judgement, Case]:
        """One case of a metamorphic check (its check is in ``case.origin``, conformance/metamorphic.py):
        the candidate's calls in its worker, the float64 reference where the relation has one, the verdict."""
        check = metamorphic.check_of(case)
        out = worker.call(RELATION + check, case.arrays, case.kwargs, False, self.case_timeout_s)
        j, measure, oracle = Judgement(), None, "metamorphic"
        if out.status != "ok":
            status = Judge._status(out)
            msg = f"raised {out.exc_type}: {out.message}" if out.status == "raised" else out.message
            j.got_error = out.exc_type or out.status
        else:
            ref = metamorphic.reference(check, case)
            if ref is not None:
                oracle = "scipy"
            v = metamorphic.judge(check, case, out.value, ref)
            status, msg, measure = v.status, v.message, v.measure
            j.diagnoses = v.diagnoses
        if out.modified:
            status, msg = "fail", f"modified its input(s) {out.modified} in place"
        r = CheckResult(spec, RELATIONS[check].loss, check, status, case_id, case.describe(), msg, measure,
                        None, oracle)
        if out.output:
            r.output = out.output
        j.results.append(r)
        return j, case
