"""Metamorphic checks: relations between a candidate's own results that no oracle is needed for.

For any candidate offering ``linear_cross_entropy`` (docs/candidates.md):

* ``chunk_invariance`` (when it accepts ``chunk_size``): the ``'none'``, ``'sum'`` and ``'mean'`` losses
  for chunk sizes 1, 2, 3 and N agree with the default chunking;
* ``batch_invariance``: a sample's ``'none'`` loss does not depend on its neighbours (the
  batch permuted, and split in two halves, gives the same per-sample losses);
* ``materialised``: agreement with ``cross_entropy`` (the candidate's own, else nbxent's) on
  the logits ``input @ W.T + b`` formed in float64 and rounded to the input's dtype.

For any candidate offering the shard-statistics protocol (``vocab_shard_stats`` and
``vocab_combine``, docs/candidates.md):

* ``shard_split``: the vocabulary split k ways (k = 1, 2, 3 and C, at random boundaries),
  each shard's statistics computed alone, combined, equals the float64 cross-entropy of the
  full logits; a failing split is re-judged against the sharding conventions of real
  libraries (conformance/conventions/_sharding.py) and the ones that explain it are named.

Tolerances: two results that are each within the policy's bound of the exact value
(conformance/tolerances.py; conformance/linear_ce.py for the GEMM term) may differ by the
sum of their two bounds, and that sum is what each comparison allows. The checks call the
candidate in-process: they are for candidates the harness has loaded in a worker, or for
tests (``run`` takes the loaded module or object).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from conformance.conventions import diagnose_shards
from conformance.linear_ce import logits64
from conformance.model import Case
from conformance.oracles import scipy_ref
from conformance.tolerances import tolerance

CHECKS = ("chunk_invariance", "batch_invariance", "materialised", "shard_split")


@dataclass
class MetaResult:
    """The verdict of one metamorphic check over its cases."""

    candidate: str
    check: str
    status: str                   # 'pass', 'fail', 'error' or 'not supported'
    cases: int = 0
    message: str = ""
    worst: float = 0.0            # largest |difference| / allowed over the compared elements
    failures: list = field(default_factory=list)   # (case description, message), at most 5
    diagnoses: dict = field(default_factory=dict)  # convention id -> failing comparisons it explains


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _cases(seed: int, n: int, dtypes) -> list[Case]:
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
        out.append(Case("linear_cross_entropy", a, kw, origin=f"metamorphic/{i}"))
    return out


def _call(fn, case: Case, **extra):
    a = case.arrays
    kw = {k: a[k] for k in ("linear_bias", "weight") if k in a}
    kw.update(case.kwargs)
    kw.update(extra)
    return np.asarray(fn(a["input"], a["linear_weight"], a["target"], **kw), dtype=np.float64)


def _with(case: Case, arrays=None, **kwargs) -> Case:
    return Case(case.loss, {**case.arrays, **(arrays or {})}, {**case.kwargs, **kwargs}, case.origin)


def _allowed(case: Case, dtype: str) -> np.ndarray:
    return tolerance(case, "value", dtype, ref_exact=True)[0]


def _compare(got, want, allowed) -> tuple[bool, float, str]:
    """Within ``allowed`` elementwise (NaN where NaN); (ok, worst ratio, message)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return False, np.inf, f"shape {got.shape} != {want.shape}"
    nan = np.isnan(got) != np.isnan(want)
    if nan.any():
        return False, np.inf, f"NaN pattern differs at {np.argwhere(np.atleast_1d(nan))[0].tolist()}"
    with np.errstate(all="ignore"):
        d = np.where(np.isnan(got), 0.0, np.abs(got - want))
        ratio = d / np.maximum(np.broadcast_to(allowed, d.shape), np.finfo(np.float64).tiny)
    worst = float(np.max(ratio)) if ratio.size else 0.0
    if worst <= 1.0:
        return True, worst, ""
    i = np.unravel_index(int(np.argmax(ratio)), np.shape(ratio)) if np.ndim(ratio) else ()
    return False, worst, (f"at {[int(v) for v in i]}: {float(np.asarray(got)[i])!r} vs {float(np.asarray(want)[i])!r}, "
                          f"{worst:.3g} x the allowed {float(np.broadcast_to(allowed, d.shape)[i]):.3g}")


class _Tally:
    def __init__(self, candidate, check):
        self.r = MetaResult(candidate, check, "pass")

    def add(self, case, ok, worst, msg):
        self.r.cases += 1
        self.r.worst = max(self.r.worst, worst)
        if not ok:
            self.r.status = "fail"
            if len(self.r.failures) < 5:
                self.r.failures.append((case.describe(), msg))

    def error(self, case, exc):
        self.r.cases += 1
        if self.r.status == "pass":
            self.r.status = "error"
        if len(self.r.failures) < 5:
            self.r.failures.append((case.describe(), f"raised {type(exc).__name__}: {exc}"))

    def done(self):
        r = self.r
        if r.failures and not r.message:
            r.message = f"{sum(1 for _ in r.failures)} failing case(s) shown; first: {r.failures[0][1]}"
        return r


def _chunks(name, fn, cases):
    t = _Tally(name, "chunk_invariance")
    for case in cases:
        dt = str(case.arrays["input"].dtype)
        N = case.arrays["input"].shape[0]
        for red in ("none", "sum", "mean"):
            c = _with(case, reduction=red)
            try:
                base = _call(fn, c)
                for cs in sorted({1, 2, 3, N}):
                    t.add(c, *_compare(_call(fn, c, chunk_size=cs), base, 2 * _allowed(c, dt)))
            except Exception as exc:
                t.error(c, exc)
    return t.done()


def _batch(name, fn, cases, rng):
    t = _Tally(name, "batch_invariance")
    for case in cases:
        dt = str(case.arrays["input"].dtype)
        c = _with(case, reduction="none")
        x, y = c.arrays["input"], c.arrays["target"]
        try:
            base = _call(fn, c)
            allowed = 2 * _allowed(c, dt)
            p = rng.permutation(x.shape[0])
            t.add(c, *_compare(_call(fn, _with(c, {"input": x[p], "target": y[p]})), base[p], allowed[p]))
            h = x.shape[0] // 2
            halves = [_call(fn, _with(c, {"input": x[s], "target": y[s]})) for s in (slice(0, h), slice(h, None))]
            t.add(c, *_compare(np.concatenate(halves), base, allowed))
        except Exception as exc:
            t.error(c, exc)
    return t.done()


def _materialised(name, fn, ce, cases):
    t = _Tally(name, "materialised")
    for case in cases:
        dt = str(case.arrays["input"].dtype)
        for red in ("none", "mean"):
            c = _with(case, reduction=red)
            z = logits64(c.arrays).astype(dt)
            ce_case = Case("cross_entropy", {"input": z, "target": c.arrays["target"],
                                             **({"weight": c.arrays["weight"]} if "weight" in c.arrays else {})},
                           c.kwargs)
            try:
                kw = {k: v for k, v in c.kwargs.items()}
                want = np.asarray(ce(z, c.arrays["target"], **({"weight": c.arrays["weight"]} if "weight" in c.arrays
                                                                else {}), **kw), dtype=np.float64)
                allowed = _allowed(c, dt) + _allowed(ce_case, dt)
                t.add(c, *_compare(_call(fn, c), want, allowed))
            except Exception as exc:
                t.error(c, exc)
    return t.done()


def _split_points(rng, C: int, k: int) -> list[int]:
    inner = sorted(rng.choice(np.arange(1, C), size=k - 1, replace=False).tolist()) if k > 1 else []
    return [0, *inner, C]


def _combined(obj, c: Case, bounds) -> np.ndarray:
    """The candidate's loss of ``c`` (a cross_entropy case) from its vocabulary split at ``bounds``."""
    z, target, w = c.arrays["input"], c.arrays["target"], c.arrays.get("weight")
    opts = {k: v for k, v in c.kwargs.items() if k in ("ignore_index", "label_smoothing")}
    st = [obj.vocab_shard_stats(z[:, v0:v1], target, v0, z.shape[1],
                                **({"weight": w[v0:v1]} if w is not None else {}), **opts)
          for v0, v1 in zip(bounds[:-1], bounds[1:])]
    res = obj.vocab_combine(st, reduction=c.kwargs["reduction"])
    return np.asarray(getattr(res, "loss", res), dtype=np.float64)


def _judge_split(t: _Tally, obj, c: Case, bounds, want, tol) -> None:
    """One split against ``want``; a failure is re-judged against the sharding conventions."""
    got = _combined(obj, c, bounds)
    ok, worst, msg = _compare(got, want, tol)
    if not ok:
        ids = diagnose_shards(got, c.arrays["input"], c.arrays["target"], bounds, c.kwargs, c.arrays.get("weight"),
                              lambda g, r: _compare(g, r, tol)[0])
        for i in ids:
            t.r.diagnoses[i] = t.r.diagnoses.get(i, 0) + 1
        msg += f" (split {bounds}; explained by: {', '.join(ids) or 'no known convention'})"
    t.add(c, ok, worst, msg)


def _shards(name, obj, cases, rng):
    t = _Tally(name, "shard_split")
    for case in cases:
        a, dt = case.arrays, str(case.arrays["input"].dtype)
        z = logits64(a).astype(dt)
        C = z.shape[1]
        w = a.get("weight")
        for red in ("none", "sum", "mean"):
            c = Case("cross_entropy", {"input": z, "target": a["target"], **({"weight": w} if w is not None else {})},
                     {**case.kwargs, "reduction": red}, case.origin)
            try:
                ref, _, _ = scipy_ref.class_loss("cross_entropy", c.arrays, c.kwargs, False)
                allowed = _allowed(c, dt)
                # every split against torch's float64 loss: each is within one bound of it
                for bounds in [[0, C]] + [_split_points(rng, C, k) for k in sorted({2, 3, C} & set(range(2, C + 1)))]:
                    _judge_split(t, obj, c, bounds, ref, allowed)
            except Exception as exc:
                t.error(c, exc)
    return t.done()


def run(obj, name: str = "candidate", seed: int = 0, n: int = 6, dtypes=("float32", "float64"),
        fallback_ce=None) -> list[MetaResult]:
    """Every metamorphic check ``obj`` (a loaded candidate module or object) offers.

    A check whose function the candidate lacks is reported as 'not supported'.
    ``fallback_ce`` is the cross_entropy used where the candidate has none (default nbxent's).
    """
    rng = np.random.default_rng(seed + 1)
    cases = _cases(seed, n, tuple(dtypes))
    out = []
    fn = getattr(obj, "linear_cross_entropy", None)
    if callable(fn):
        out.append(_chunks(name, fn, cases) if _accepts(fn, "chunk_size")
                   else MetaResult(name, "chunk_invariance", "not supported", message="no chunk_size keyword"))
        out.append(_batch(name, fn, cases, rng))
        ce = getattr(obj, "cross_entropy", None)
        if not callable(ce):
            if fallback_ce is None:
                import nbxent
                fallback_ce = nbxent.cross_entropy
            ce = fallback_ce
        out.append(_materialised(name, fn, ce, cases))
    else:
        out += [MetaResult(name, c, "not supported", message="no linear_cross_entropy") for c in CHECKS[:3]]
    if callable(getattr(obj, "vocab_shard_stats", None)) and callable(getattr(obj, "vocab_combine", None)):
        out.append(_shards(name, obj, cases, rng))
    else:
        out.append(MetaResult(name, "shard_split", "not supported", message="no vocab_shard_stats/vocab_combine"))
    return out
