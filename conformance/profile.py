"""``nbxent-conformance profile``: what a candidate does, axis by axis, next to torch.

Each axis (mean denominator, empty / all-ignored mean, label smoothing, out-of-range
and negative targets, probability clipping, log clamp, pos_weight axis, result dtype,
spatial layout, integer target dtypes, accuracy class) is a handful of small probe
cases. Every candidate runs them in its own worker process, as in a campaign
(conformance/worker.py); its answers are classified against torch's semantics
(the float64 reference, the judge's tolerance policy) and, where they differ,
against the convention library (conformance/conventions). A probe the candidate
cannot take (a loss, keyword, dtype or feature it lacks) is skipped; an axis with
no probe left is "n/a".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from conformance import candidates, extensions
from conformance.catalogue import entries, grad_output_for
from conformance.compare import compare
from conformance.conventions import CONVENTIONS, diagnose, evaluate, failed_checks
from conformance.model import Case
from conformance.strategies import case_features, features_from_probe, fits
from conformance.tolerances import tolerance
from conformance.worker import Worker

#: Per call; generous because the first call of a JIT-compiled candidate compiles it. A loss
#: that crashes or hangs once is not called again (its later probes report the same).
CALL_TIMEOUT_S = 60.0

_X33 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.0, 3.0, 1.0]]
_X43 = _X33 + [[2.0, 2.0, 2.0]]
_W3 = [0.2, 1.0, 3.0]
_P33 = [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]]
_XB = [[0.25, 0.5, 0.75], [0.1, 0.2, 0.9]]
_YB = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
_XS = (np.arange(18.0).reshape(2, 3, 3) / 7 - 1).tolist()


def probe_case(loss, x, t, dtype="float64", tdtype=None, grad=True, **kw) -> Case:
    """A probe: arrays in ``dtype`` (int64 class targets unless ``tdtype``), weight / pos_weight from ``kw``,
    the other keywords as given, an upstream gradient when the case is valid, the error torch raises if not."""
    arrays = {"input": np.asarray(x, dtype=dtype)}
    t = np.asarray(t)
    arrays["target"] = t.astype(tdtype or np.int64) if t.dtype.kind in "iu" else t.astype(tdtype or dtype)
    for k in ("weight", "pos_weight"):
        if k in kw:
            arrays[k] = np.asarray(kw.pop(k), dtype=dtype)
    c = Case(loss, arrays, kw, origin="profile")
    ref = evaluate(c, want_grad=False)
    c.expect_error = ref.error
    if grad and ref.error is None:
        arrays["grad_output"] = grad_output_for(ref.value.shape, ref.dtype)
    return c


@dataclass(frozen=True)
class Axis:
    """One row of the profile: probes, what torch does, and the conventions that belong to it."""

    name: str
    torch: str                          # torch 2.13's behaviour, in words (docs/semantics.md §N)
    probes: tuple[Case, ...]
    conventions: tuple[str, ...] = ()
    accuracy: bool = False              # also report the worst error in ulps vs the float64 reference


def _large_vocab():
    return tuple(c for c in entries("cross_entropy", ("float32",)) if c.origin.startswith("ce_large_vocab"))


def axes() -> list[Axis]:
    """The probe table (built on demand: some probes are large)."""
    ce, nll, bce, bcewl = "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"
    return [
        Axis("mean denominator", "sum of w[t] over non-ignored samples (§3.1)",
             (probe_case(ce, _X43, [2, 0, 1, -100], weight=_W3), probe_case(nll, _X43, [2, 0, 1, -100], weight=_W3),
              probe_case(nll, _X43, [2, 0, 1, -100])),
             ("weighted_mean_by_count", "mean_includes_ignored", "ignored_rows_count_weight_of_class0")),
        Axis("empty / all-ignored mean", "NaN (0/0) (§3.2, §1.2)",
             (probe_case(ce, _X33, [-100, -100, -100]), probe_case(ce, np.zeros((0, 3)), np.zeros(0, np.int64)),
              probe_case(bce, np.zeros(0), np.zeros(0))),
             ("empty_mean_zero",)),
        Axis("label smoothing", "eps/C to every class, w_c per class, ignored rows excluded, probability "
             "targets smoothed (§5, §6)",
             (probe_case(ce, _X43, [2, 0, 1, 1], label_smoothing=0.3),
              probe_case(ce, _X43, [2, 0, 1, -100], label_smoothing=0.2, reduction="sum"),
              probe_case(ce, _X33, [2, 0, 1], weight=_W3, label_smoothing=0.2),
              probe_case(ce, _X33, _P33, label_smoothing=0.25)),
             ("smoothing_eps_over_c_minus_1", "smoothing_on_ignored_rows", "smoothing_weighted_by_target",
              "prob_target_smoothing_ignored")),
        Axis("out-of-range / negative targets", "IndexError for t >= C and t < 0; ignore_index checked first (§4)",
             (probe_case(nll, _X33, [2, 3, 0]), probe_case(nll, _X33, [2, -1, 0]), probe_case(nll, _X33, [2, -100, 0]),
              probe_case(ce, _X33, [2, 3, 0]), probe_case(ce, _X33, [2, -1, 0])),
             ("out_of_range_target_unchecked", "negative_target_wraps", "ignore_index_range_checked")),
        Axis("probability clipping", "none: each log clamped at -100 instead (§7.1)",
             (probe_case(bce, [1e-9, 0.5, 1 - 1e-9], [1.0, 0.5, 0.0], reduction="none"),
              probe_case(bce, [1e-9, 0.5, 1 - 1e-9], [1.0, 0.5, 0.0], dtype="float32", reduction="none")),
             ("probability_clipped",)),
        Axis("log clamp", "max(log, -100) on each log; gradient floor float32(1e-12) on x(1-x) (§7.1, §10.3)",
             (probe_case(bce, [0.0, 1.0, 0.5], [1.0, 0.0, 0.5], reduction="none"),),
             ("bce_no_log_clamp", "bce_grad_no_floor", "probability_clipped")),
        Axis("pos_weight axis", "broadcast against the last dim, on the positive term (§8.3)",
             (probe_case(bcewl, _XS, (np.asarray(_XS) > 0).astype(float), pos_weight=[3.0, 0.5, 2.0], reduction="sum"),),
             ("pos_weight_on_class_dim", "pos_weight_on_negative_term")),
        Axis("result dtype", "the target's dtype (BCE-with-logits), promoted (probability targets) (§2.4, §2.6)",
             (probe_case(bcewl, _XB, _YB, dtype="float32", tdtype="float64"),
              probe_case(ce, _X33, _P33, dtype="float32", tdtype="float64")),
             ("result_dtype_differs",)),
        Axis("spatial layout", "classes on dim 1; 'none' keeps (N, d1, ...) (§1.1)",
             (probe_case(ce, np.asarray(_XS), [[0, 2, 1], [1, 1, 0]], reduction="none"),
              probe_case(ce, np.asarray(_XS), np.full((2, 3, 3), 1 / 3), reduction="sum")),
             ("none_output_flattened", "class_axis_last")),
        Axis("integer target dtype", "int64 (and uint8 for 1-D/2-D input) only; int32 raises RuntimeError (§2.2)",
             (probe_case(ce, _X33, [2, 0, 1], tdtype=np.int32), probe_case(nll, _X33, [2, 0, 1], tdtype=np.int32)),
             ("any_int_target_accepted",)),
        Axis("accuracy class", "float32/float64 kernels with a max-shifted log-sum-exp and stable log-sigmoid (§2.7)",
             (probe_case(ce, [[800.0, 0.0, -1.0], [1.0, 2.0, 3.0]], [0, 2]),
              probe_case(ce, [[100.0, 0.0, -100.0], [1.0, 2.0, 3.0]], [0, 2], dtype="float32"),
              probe_case(bcewl, [-800.0, 0.5, 40.0], [1.0, 0.5, 1.0], reduction="none"),
              probe_case(bcewl, [-100.0, 0.5, 10.0], [1.0, 0.5, 1.0], dtype="float32", reduction="none"))
             + _large_vocab(),
             ("lse_no_max_shift", "naive_log_sigmoid", "low_precision_accumulation"), accuracy=True),
    ]


@dataclass
class Cell:
    """One candidate on one axis."""

    verdict: str                             # 'torch' | 'differs' | 'extension' | 'n/a' | 'crash' | 'timeout'
    conventions: list[str] = field(default_factory=list)
    detail: str = ""
    probes: int = 0
    max_ulp: float | None = None

    def text(self) -> str:
        if self.verdict == "extension":
            return self.detail
        if self.verdict == "torch":
            # accuracy: 'within 1 ulp' of the float64 reference (rounded once), or only within the policy
            head = "torch" if self.max_ulp is None else "within 1 ulp" if self.max_ulp <= 1 else "within tolerance"
        elif self.verdict == "differs":
            head = ", ".join(self.conventions) if self.conventions else "other"
        else:
            head = self.verdict
        extra = [self.detail] if self.detail else []
        if self.max_ulp is not None:
            extra.append(f"worst {self.max_ulp:.3g} ulp")
        return head + (f" ({'; '.join(extra)})" if extra else "")


def _describe(fc) -> str:
    t = evaluate(fc.case)
    if fc.got_error is not None:
        return f"raises {fc.got_error} where torch returns"
    if t.error is not None:
        return f"returns a value where torch raises {t.error}"
    got = np.asarray(fc.got_value)
    if fc.check == "shape_dtype":
        return f"{got.dtype}{list(got.shape)} where torch gives {t.dtype}{list(t.value.shape)}"
    if fc.check == "grad_input":
        return "gradient differs"
    with np.errstate(all="ignore"):
        g, w = np.atleast_1d(got).astype(np.float64).ravel(), np.atleast_1d(t.value).ravel()
        i = int(np.argmax(np.where(np.isclose(g, w, equal_nan=True), 0.0, 1.0))) if g.size == w.size else 0
    return f"{g[i]:.6g} where torch gives {w[i]:.6g}" if g.size == w.size and g.size else "value differs"


def _max_ulp(c: Case, got) -> float:
    """The judge's "worst ulp" of a forward value vs the float64 reference (compare.py)."""
    t = evaluate(c, want_grad=False)
    got = np.asarray(got, dtype=np.float64)
    if t.error is not None or got.shape != t.value.shape:
        return 0.0
    tol = tolerance(c, "value", t.dtype)[0]
    return compare(got, t.value, tol, t.dtype).measure.max_ulp


class _Runner:
    """One candidate's worker and its supported features."""

    def __init__(self, spec: str):
        self.spec = spec
        self.worker = Worker(spec, env=candidates.worker_env(spec), dtypes=("float16", "float32", "float64"))
        self.info = self.worker.wait_ready()
        self.dead: dict[str, str] = {}           # loss -> 'crash' | 'timeout'

    def skip_reason(self, c: Case) -> str | None:
        """Why the probe is not sent (what the candidate lacks, as a campaign decides), or None."""
        info = self.info[c.loss]
        if not info["features"]:
            return f"no {c.loss}"
        f = features_from_probe(info)
        if fits(c, f):
            return None
        missing = sorted(case_features(c) - set(f.names))
        if missing and not (missing == ["errors"] and extensions.canonical(c.loss, c.arrays, f.extensions)[1]):
            return f"no {', '.join(missing)}"
        if str(c.arrays["input"].dtype) not in f.dtypes:
            return f"no {c.arrays['input'].dtype}"
        return f"no reduction={c.kwargs.get('reduction', 'mean')}"

    def run(self, c: Case):
        """(failing checks, outcome status, forward value) of one probe."""
        if c.loss in self.dead:
            return None, self.dead[c.loss], None
        fwd = self.worker.call(c.loss, c.arrays, c.kwargs, False, CALL_TIMEOUT_S)
        if fwd.status in ("crash", "timeout"):
            self.dead[c.loss] = fwd.status
            return None, fwd.status, None
        val = fwd.value if fwd.status == "ok" else None
        err = fwd.exc_type if fwd.status == "raised" else None
        grad = None
        back = c.loss + "_backward"
        if err is None and "backward" in self.info[c.loss]["features"] and "grad_output" in c.arrays \
                and back not in self.dead and evaluate(c, want_grad=False).error is None:
            bwd = self.worker.call(back, c.arrays, c.kwargs, True, CALL_TIMEOUT_S)
            grad = bwd.value if bwd.status == "ok" else None
            if bwd.status in ("crash", "timeout"):
                self.dead[back] = bwd.status     # the forward is still profiled, without gradients
        return failed_checks(c, val, grad, err), "ok", val

    def close(self):
        self.worker.close()


def _classify(axis: Axis, runner: _Runner) -> Cell:
    fails, skipped, ulps, ext = [], [], [], []
    n = 0
    for c in axis.probes:
        why = runner.skip_reason(c)
        if why is not None:
            skipped.append(why)
            continue
        fcs, status, val = runner.run(c)
        if fcs is None:
            return Cell(status, detail=f"{c.loss}")
        n += 1
        if fcs and all(f.check == "error_semantics" for f in fcs):
            arrays, used = extensions.canonical(c.loss, c.arrays, runner.info[c.loss]["extensions"])
            if used:    # a declared extension: accepting is intended; the value is judged in canonical form
                ext.extend(used)
                fcs = failed_checks(Case(c.loss, arrays, c.kwargs, c.origin), val, None, None)
        fails.extend(fcs)
        if axis.accuracy and val is not None and not fcs:
            ulps.append(_max_ulp(c, val))
    if n == 0:
        return Cell("n/a", detail=sorted(set(skipped))[0] if skipped else "")
    worst = max(ulps) if ulps else None
    detail = "accepts: declared extension " + ", ".join(dict.fromkeys(ext)) if ext else ""
    if not fails:
        return Cell("extension" if ext else "torch", detail=detail, probes=n, max_ulp=worst)
    by_loss: dict[str, list] = {}
    for f in fails:
        by_loss.setdefault(f.case.loss, []).append(f)
    found = []
    for loss, fs in by_loss.items():
        found += [d["id"] for d in diagnose(loss, fs) if d["id"] != "unexplained"]
    found = list(dict.fromkeys(found))
    # the axis's own conventions first: a zero all-ignored mean is empty_mean_zero on this axis, even
    # though mean_includes_ignored (0 / S) gives the same number
    own = [f for f in found if set(f.split("+")) & set(axis.conventions)]
    found = own or found
    if not found:
        detail = "; ".join(x for x in (detail, _describe(fails[0])) if x)
    return Cell("differs", found, detail, n, worst)


def profile(specs: list[str]) -> dict:
    """The profile of each candidate spec: ``{"candidates": [...], "axes": [{"axis", "torch", "cells"}]}``.

    Raises candidates.CandidateLoadError when a candidate cannot be loaded.
    """
    table = axes()
    out = {"candidates": list(specs), "axes": [{"axis": a.name, "torch": a.torch, "cells": {}} for a in table]}
    for spec in specs:
        runner = _Runner(spec)
        try:
            for a, row in zip(table, out["axes"]):
                cell = _classify(a, runner)
                row["cells"][spec] = {"verdict": cell.verdict, "conventions": cell.conventions,
                                      "detail": cell.detail, "probes": cell.probes, "max_ulp": cell.max_ulp,
                                      "text": cell.text()}
        finally:
            runner.close()
    return out


def render(result: dict) -> str:
    """The profile as a plain-text table (one row per axis, one column per candidate)."""
    specs = result["candidates"]
    head = ["axis", "torch 2.13 does"] + specs
    rows = [[r["axis"], r["torch"]] + [r["cells"][s]["text"] for s in specs] for r in result["axes"]]
    widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]
    used = sorted({c for r in result["axes"] for s in specs for ids in r["cells"][s]["conventions"]
                   for c in ids.split("+")})
    if used:
        out += ["", "Conventions (docs/conventions.md):"]
        out += [f"  {c}: {CONVENTIONS[c].summary}" for c in used]
    out += ["", "torch = the same as torch 2.13 within the harness's tolerance (conformance/tolerances.py); "
            "n/a = the candidate lacks what the axis needs;", "worst ulp = the judge's measure vs the float64 "
            "reference over the accuracy probes; §N = docs/semantics.md §N."]
    return "\n".join(out)


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, default=str)


def main(specs: list[str], as_json: bool = False) -> int:
    """The ``profile`` command: 0 printed, 2 a candidate that cannot be found or loaded."""
    import sys

    from conformance.cli import EXIT_PASS, EXIT_USAGE, check_candidate_spec

    specs = list(dict.fromkeys(specs))
    for spec in specs:
        why = check_candidate_spec(spec)
        if why:
            print(f"nbxent-conformance: error: candidate {spec!r}: {why}", file=sys.stderr)
            return EXIT_USAGE
    try:
        result = profile(specs)
    except candidates.CandidateLoadError as exc:
        print(f"nbxent-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(to_json(result) if as_json else render(result))
    return EXIT_PASS
