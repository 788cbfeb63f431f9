"""Triage: a candidate x loss's failing cases -> failure classes, each with a shrunk representative.

Failing results are grouped by :func:`conformance.classes.class_key` (check, status,
exception kind, signature; dtypes folded). The representative of each class (its
smallest case) is shrunk with conformance/shrink.py, keeping check, status, kind and
dtype, never adding a feature; classes that shrink to the same key are merged. At most
:data:`MAX_SHRUNK_CLASSES` classes per candidate x loss are shrunk (the most numerous
numeric ones first); the others keep their smallest case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from conformance.classes import KIND_ORDER, class_key, describe_signature, dtype_of, kind_of, signature, tag_of
from conformance.model import FAILING, Case, CheckResult, FailureClass
from conformance.shrink import shrink

MAX_SHRUNK_CLASSES = 8
#: Candidate evaluations one class may spend shrinking (each is a forward and maybe a backward call).
SHRINK_CALLS = 24


@dataclass
class _Group:
    key: tuple
    count: int = 0
    dtypes: set = field(default_factory=set)
    rep: tuple | None = None               # (case, result)
    results: list = field(default_factory=list)
    shrunk: bool = False
    calls: int = 0


def _size(case: Case) -> int:
    return sum(int(getattr(v, "size", 1)) for v in case.arrays.values()) + len(case.kwargs)


def triage(failing: list[tuple[Case, object]], spec: str, loss: str, run_case, seed: int,
           shrink_budget: int = MAX_SHRUNK_CLASSES) -> tuple[list[FailureClass], list[tuple[Case, CheckResult]]]:
    """Group, shrink and merge; returns (classes, representatives as (case, result)).

    ``run_case(case, case_id)`` evaluates a case (``(Judgement, case as sent)`` or None).
    Every failing result gets its ``class_id``.
    """
    groups: dict[tuple, _Group] = {}
    for case, j in failing:
        for r in j.results:
            if r.status not in FAILING:
                continue
            g = groups.setdefault(class_key(case, r), _Group(class_key(case, r)))
            g.count += 1
            g.dtypes.add(dtype_of(case))
            g.results.append(r)
            if g.rep is None or _size(case) < _size(g.rep[0]):
                g.rep = (case, r)
    order = sorted(groups.values(), key=lambda g: (KIND_ORDER.index(kind_of(g.key[2], g.key[3])), -g.count))
    for n, g in enumerate(order):
        if n >= shrink_budget or g.key[3] in ("crash", "timeout"):
            continue
        _, _, check, status, tag, sig = g.key
        case0, r0 = g.rep
        dt = dtype_of(case0)
        last = {}

        def still_fails(c, check=check, status=status, tag=tag, sig=sig, dt=dt, last=last, n=n):
            if signature(c) - sig or dtype_of(c) != dt:
                return False
            last["i"] = last.get("i", 0) + 1
            out = run_case(c, f"{loss}/shrink/{seed}-{n}-{last['i']:03d}")
            if out is None:
                return False
            j, sent = out
            hits = [r for r in j.results if r.check == check and r.status == status and tag_of(r) == tag]
            if hits:
                last["hit"] = (sent, hits[0])
            return bool(hits)

        shrunk, calls = shrink(case0, still_fails, SHRINK_CALLS)
        g.calls = calls
        if shrunk is not case0 and "hit" in last:
            g.rep, g.shrunk = last["hit"], True
            g.rep[1].message = (f"minimal case after shrinking ({calls} calls): " + g.rep[1].message).rstrip(": ")
    merged: dict[tuple, _Group] = {}
    for g in order:
        key = g.key[:5] + (signature(g.rep[0]),)
        if key in merged:
            m = merged[key]
            m.count += g.count
            m.dtypes |= g.dtypes
            m.results += g.results
            m.calls += g.calls
            if _size(g.rep[0]) < _size(m.rep[0]):
                m.rep, m.shrunk = g.rep, g.shrunk
        else:
            g.key = key
            merged[key] = g
    classes, reps = [], []
    for i, g in enumerate(merged.values(), 1):
        _, _, check, status, tag, sig = g.key
        cid = f"{spec}/{loss}/{i}"
        case, r = g.rep
        for res in g.results + [r]:
            res.class_id = cid
        hint = ""
        if "declare it: CONFORMANCE" in (r.message or ""):
            hint = r.message[r.message.index("if "):] if "if " in r.message else ""
        classes.append(FailureClass(cid, spec, loss, check, status, kind_of(check, status),
                                    describe_signature(sig) + ([f"({tag})"] if tag else []),
                                    sorted(g.dtypes), g.count, r.case_id, case.describe(), r.message, r.error,
                                    None, g.shrunk, g.calls, hint))
        reps.append((case, r))
    return classes, reps
