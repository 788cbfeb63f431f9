"""Metamorphic checks: relations between a candidate's own results that no oracle is needed for.

The checks (conformance/relations.py says what each needs from a candidate):

* ``chunk_invariance`` (``linear_cross_entropy`` naming ``chunk_size``): the loss for chunk
  sizes 1, 2, 3 and N equals the default chunking's;
* ``batch_invariance`` (``linear_cross_entropy``): a sample's ``'none'`` loss does not depend
  on its neighbours (the batch permuted, and split in two halves, gives the same losses);
* ``materialised`` (``linear_cross_entropy``): equal to ``cross_entropy`` (the candidate's own,
  else the float64 reference) on the logits ``input @ W.T + b`` formed in float64 and rounded
  to the input's dtype;
* ``shard_split`` (``vocab_shard_stats`` and ``vocab_combine``): the vocabulary split k ways
  (k = 1, 2, 3 and C, at boundaries fixed by C), each shard's statistics computed alone and
  combined, equals the float64 cross-entropy of the full logits; a failing split is
  re-judged against the sharding conventions of real libraries
  (conformance/conventions/_sharding.py) and the ones that explain it are named.

One case of a check is one call of :func:`outputs` in the candidate's worker (all the
candidate calls the relation needs: the statistics of a shard are any object, so they never
leave the worker), then :func:`reference` (the float64 oracle, where the relation needs
one) and :func:`judge` (pure) in the campaign. Tolerances: two results each within the
policy's bound of the exact value (conformance/tolerances.py; conformance/linear_ce.py for
the GEMM term) may differ by the sum of their two bounds, and that sum is what each
comparison allows, through the harness's one comparison (conformance/compare.py).

:func:`run` runs every check a loaded candidate offers in-process (tests, notebooks); the
campaign runs them from ``nbxent-conformance run`` (conformance/campaign.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance.compare import compare
from conformance.linear_ce import logits64
from conformance.model import Case, ErrorMeasure
from conformance.relations import RELATIONS, offered
from conformance.tolerances import tolerance

CHECKS = tuple(RELATIONS)
#: Case ids and origins of metamorphic cases start with this, then the check's name.
ORIGIN = "metamorphic:"
_REDUCTIONS = ("none", "sum", "mean")


# ---- cases ----------------------------------------------------------------------------------

def _linear_cases(seed: int, n: int, dtypes) -> list[Case]:
    """Small valid linear_cross_entropy cases with every option, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        dt = dtypes[i % len(dtypes)]
        N, H, C = int(rng.integers(3, 9)), int(rng.integers(1, 7)), int(rng.integers(2, 9))
        a = {"input": rng.standard_normal((N, H)).astype(dt), "linear_weight": rng.standard_normal((C, H)).astype(dt),
             "target": rng.integers(0, C, N).astype(np.int64)}
        kw: dict = {}
        if i % 2:
            a["linear_bias"] = rng.standard_normal(C).astype(dt)
        if i % 3 == 1:
            a["weight"] = rng.uniform(0.1, 2.0, C).astype(dt)
        if i % 4 == 2:
            kw["ignore_index"] = -100
            a["target"][rng.random(N) < 0.3] = -100
        if i % 3 == 2:
            kw["label_smoothing"] = 0.2
        out.append(Case("linear_cross_entropy", a, kw, origin=str(i)))
    return out


def cases(check: str, seed: int = 0, n: int = 6, dtypes=("float32", "float64")) -> list[Case]:
    """The seeded cases of ``check``: ``n`` cases, the reductions in turn (``'none'`` for the batch).

    The linear checks get linear_cross_entropy cases; ``shard_split`` gets the cross_entropy
    case of their logits (formed in float64, rounded to the dtype). Origins are
    ``metamorphic:<check>/<i>``, which the campaign and the shrinker keep.
    """
    out = []
    for i, c in enumerate(_linear_cases(seed, n, tuple(dtypes))):
        red = "none" if check == "batch_invariance" else _REDUCTIONS[i % 3]
        kw = {**c.kwargs, "reduction": red}
        if RELATIONS[check].loss == "cross_entropy":
            a = {"input": logits64(c.arrays).astype(c.arrays["input"].dtype), "target": c.arrays["target"]}
            if "weight" in c.arrays:
                a["weight"] = c.arrays["weight"]
            c = Case("cross_entropy", a, kw)
        else:
            c = Case(c.loss, dict(c.arrays), kw)
        c.origin = f"{ORIGIN}{check}/{i}"
        out.append(c)
    return out


def check_of(case: Case) -> str | None:
    """The metamorphic check a case belongs to (from its origin), or None for an ordinary case."""
    if not case.origin.startswith(ORIGIN):
        return None
    return case.origin[len(ORIGIN):].split("/", 1)[0]


# ---- the candidate's side (runs in its worker) ----------------------------------------------

def _split_points(C: int, k: int) -> list[int]:
    """k shards of [0, C) at boundaries drawn once per C (the same split in every run)."""
    if k <= 1:
        return [0, C]
    inner = np.random.default_rng(C).choice(np.arange(1, C), size=k - 1, replace=False)
    return [0, *sorted(int(v) for v in inner), C]


def splits(C: int) -> list[list[int]]:
    """The splits ``shard_split`` makes of C columns: 1, 2, 3 and C shards (those that exist)."""
    return [_split_points(C, k) for k in sorted({1, 2, 3, C} & set(range(1, C + 1)))]


def _permutation(n: int) -> np.ndarray:
    return np.random.default_rng(n).permutation(n)


def outputs(obj, check: str, arrays: dict, kwargs: dict, convert=lambda a: a) -> dict[str, np.ndarray]:
    """Every result relation ``check`` needs from candidate ``obj``, by name, as float64 arrays.

    ``convert`` turns a NumPy array into the candidate's array type. Raises whatever the
    candidate raises.
    """
    def back(v):
        if hasattr(v, "copy_to_host"):
            v = v.copy_to_host()
        elif hasattr(v, "detach") and hasattr(v, "cpu"):
            v = v.detach().cpu().numpy()
        return np.asarray(v, dtype=np.float64)

    if check == "shard_split":
        z, t, w = arrays["input"], arrays["target"], arrays.get("weight")
        opts = {k: v for k, v in kwargs.items() if k in ("ignore_index", "label_smoothing")}
        out = {}
        for bounds in splits(z.shape[1]):
            st = [obj.vocab_shard_stats(convert(np.ascontiguousarray(z[:, v0:v1])), convert(t), v0, z.shape[1],
                                        **({"weight": convert(w[v0:v1])} if w is not None else {}), **opts)
                  for v0, v1 in zip(bounds[:-1], bounds[1:])]
            res = obj.vocab_combine(st, reduction=kwargs.get("reduction", "mean"))
            out[f"split={bounds}"] = back(getattr(res, "loss", res))
        return out

    fn = obj.linear_cross_entropy

    def lce(a, **extra):
        kw = {k: convert(a[k]) for k in ("linear_bias", "weight") if k in a}
        return back(fn(convert(a["input"]), convert(a["linear_weight"]), convert(a["target"]),
                       **kw, **kwargs, **extra))

    if check == "chunk_invariance":
        N = arrays["input"].shape[0]
        out = {"default": lce(arrays)}
        for cs in sorted({1, 2, 3, N} - {0}):
            out[f"chunk_size={cs}"] = lce(arrays, chunk_size=cs)
        return out
    if check == "batch_invariance":
        x, y = arrays["input"], arrays["target"]
        p = _permutation(x.shape[0])
        out = {"batch": lce(arrays), "permuted": lce({**arrays, "input": x[p], "target": y[p]})}
        h = x.shape[0] // 2
        if h and kwargs.get("reduction") == "none":
            out["halves"] = np.concatenate([lce({**arrays, "input": x[s], "target": y[s]})
                                            for s in (slice(0, h), slice(h, None))])
        return out
    if check == "materialised":
        out = {"linear": lce(arrays)}
        ce = getattr(obj, "cross_entropy", None)
        if callable(ce):
            z = logits64(arrays).astype(arrays["input"].dtype)
            w = {"weight": convert(arrays["weight"])} if "weight" in arrays else {}
            out["cross_entropy"] = back(ce(convert(z), convert(arrays["target"]), **w, **kwargs))
        return out
    raise ValueError(f"metamorphic.outputs: unknown check {check!r}; known: {', '.join(CHECKS)}")


# ---- the references and the verdict (the campaign's side) -----------------------------------

def _ce_case(case: Case) -> Case:
    """The cross_entropy case of a linear case's logits, rounded to the input's dtype."""
    a = case.arrays
    ce = {"input": logits64(a).astype(a["input"].dtype), "target": a["target"]}
    if "weight" in a:
        ce["weight"] = a["weight"]
    return Case("cross_entropy", ce, dict(case.kwargs), case.origin)


def reference(check: str, case: Case) -> np.ndarray | None:
    """The float64 oracle's value the relation compares with, or None where it compares the
    candidate with itself: cross_entropy of the (rounded) logits for ``shard_split``, and for
    ``materialised`` when the candidate has no cross_entropy of its own."""
    from conformance.oracles import scipy_ref
    c = case if check == "shard_split" else _ce_case(case) if check == "materialised" else None
    if c is None:
        return None
    with np.errstate(all="ignore"):
        value, _, _ = scipy_ref.class_loss("cross_entropy", c.arrays, c.kwargs, False)
    return np.asarray(value, np.float64)


def allowed(case: Case) -> np.ndarray:
    """The policy's bound on ``case``'s loss against the exact value (conformance/tolerances.py)."""
    return tolerance(case, "value", str(case.arrays["input"].dtype), ref_exact=True)[0]


def _pairs(check: str, case: Case, outs: dict, ref) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]]:
    """(what, got, want, allowed, against) per comparison the relation makes."""
    if check == "chunk_invariance":
        a = 2 * allowed(case)
        return [(k, v, outs["default"], a, "the default chunking") for k, v in outs.items() if k != "default"]
    if check == "batch_invariance":
        a = 2 * allowed(case)
        base = outs["batch"]
        p = _permutation(base.shape[0])
        bp, ap = (base[p], np.broadcast_to(a, base.shape)[p]) if base.ndim else (base, a)   # a reduced loss
        out = [("permuted", outs["permuted"], bp, ap, "the batch's, permuted")]
        if "halves" in outs:
            out.append(("halves", outs["halves"], base, a, "the whole batch's"))
        return out
    if check == "materialised":
        a = allowed(case) + allowed(_ce_case(case))
        if "cross_entropy" in outs:
            return [("linear", outs["linear"], outs["cross_entropy"], a, "its cross_entropy on the logits")]
        return [("linear", outs["linear"], ref, a, "the float64 cross_entropy of the logits")]
    if check == "shard_split":
        a = allowed(case)
        return [(k, v, ref, a, "the float64 cross_entropy of the unsharded logits") for k, v in outs.items()]
    raise ValueError(f"metamorphic: unknown check {check!r}; known: {', '.join(CHECKS)}")


@dataclass
class Verdict:
    """One case of one metamorphic check, judged."""

    status: str                   # 'pass' or 'fail'
    message: str = ""
    measure: ErrorMeasure | None = None
    worst: float = 0.0            # the largest |difference| / allowed over every comparison
    diagnoses: list[str] = field(default_factory=list)   # sharding conventions explaining a failing split


def _ratio(got, want, tol) -> float:
    with np.errstate(all="ignore"):
        both = np.isfinite(got) & np.isfinite(want)
        d = np.where(both, np.abs(np.asarray(got, np.float64) - want), 0.0)
        r = d / np.maximum(np.broadcast_to(tol, d.shape), np.finfo(np.float64).tiny)
    return float(np.max(r)) if r.size else 0.0


def judge(check: str, case: Case, outs: dict, ref=None) -> Verdict:
    """Pure: the relation's comparisons of ``outs`` (from :func:`outputs`), with ``ref`` from
    :func:`reference`. The first failing comparison (shape, NaN pattern or value) decides."""
    dtype = str(case.arrays["input"].dtype)
    v, shown = Verdict("pass"), None          # shown: (ratio, Comparison) of the failing or the worst comparison
    for what, got, want, tol, against in _pairs(check, case, outs, ref):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got.shape != want.shape:
            return Verdict("fail", f"{what}: shape {got.shape}, {against} {want.shape}")
        c = compare(got, want, tol, dtype, f"{check}: {what} vs {against}, allowed the sum of both results' bounds")
        r = _ratio(got, want, tol)
        v.worst = max(v.worst, r)
        if v.status == "pass" and (shown is None or r > shown[0]):
            shown = (r, c)
        if v.status == "pass" and not (c.value_ok and c.pattern_ok):
            shown, m = (r, c), c.measure
            v.status = "fail"
            if not c.pattern_ok:
                v.message = f"{what}: NaN/inf pattern differs from {against}: {'; '.join(c.pattern_examples)}"
            else:
                v.message = (f"{what}: {m.n_bad} of {m.n_total} elements differ from {against} beyond the allowed "
                             f"(at {m.worst_index}: {m.worst_got!r} vs {m.worst_want!r}, {r:.3g} x the allowed)")
            if check == "shard_split":
                v.diagnoses = _diagnose_split(case, what, got, tol)
                v.message += f" (explained by: {', '.join(v.diagnoses) or 'no known convention'})"
    v.measure = shown[1].measure if shown else None
    return v


def _diagnose_split(case: Case, what: str, got, tol) -> list[str]:
    from conformance.conventions import diagnose_shards
    bounds = [int(b) for b in what[len("split=["):-1].split(",")]
    a = case.arrays

    def close(g, r):
        c = compare(g, r, tol, str(a["input"].dtype))
        return c.value_ok and c.pattern_ok
    return diagnose_shards(got, a["input"], a["target"], bounds, case.kwargs, a.get("weight"), close)


def describe_diagnoses(counts: dict, failing: int) -> list[dict]:
    """``{"id", "summary", "explains", "of"}`` per sharding convention that explained failing
    cases (``counts``: id -> cases), as the reports list diagnoses."""
    from conformance.conventions import SHARD_CONVENTIONS
    return [{"id": i, "summary": SHARD_CONVENTIONS[i].summary if i in SHARD_CONVENTIONS else "", "explains": n,
             "of": failing} for i, n in sorted(counts.items())]


# ---- in-process ------------------------------------------------------------------------------

@dataclass
class MetaResult:
    """The verdict of one metamorphic check over its cases (:func:`run`)."""

    candidate: str
    check: str
    status: str                   # 'pass', 'fail', 'error' or 'not supported'
    cases: int = 0
    message: str = ""
    worst: float = 0.0            # largest |difference| / allowed over the compared elements
    failures: list = field(default_factory=list)   # (case description, message), at most 5
    diagnoses: dict = field(default_factory=dict)  # convention id -> failing comparisons it explains


def run(obj, name: str = "candidate", seed: int = 0, n: int = 6, dtypes=("float32", "float64")) -> list[MetaResult]:
    """Every metamorphic check ``obj`` (a loaded candidate module or object) offers, in-process.

    A check whose entry points the candidate lacks is reported as 'not supported', with why.
    """
    out = []
    for check in CHECKS:
        why = offered(obj, check)
        if why:
            out.append(MetaResult(name, check, "not supported", message=why))
            continue
        r = MetaResult(name, check, "pass")
        for case in cases(check, seed, n, dtypes):
            r.cases += 1
            try:
                v = judge(check, case, outputs(obj, check, case.arrays, case.kwargs), reference(check, case))
            except Exception as exc:
                r.status = "error" if r.status == "pass" else r.status
                r.failures.append((case.describe(), f"raised {type(exc).__name__}: {exc}"))
                continue
            r.worst = max(r.worst, v.worst)
            for d in v.diagnoses:
                r.diagnoses[d] = r.diagnoses.get(d, 0) + 1
            if v.status != "pass":
                r.status = "fail"
                if len(r.failures) < 5:
                    r.failures.append((case.describe(), v.message))
        if r.failures:
            r.message = f"{len(r.failures)} failing case(s) shown; first: {r.failures[0][1]}"
        out.append(r)
    return out
