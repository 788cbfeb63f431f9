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
    also: set = field(default_factory=set)     # features seen with it in absorbed groups

    def absorb(self, other: "_Group") -> None:
        self.count += other.count
        self.dtypes |= other.dtypes
        self.results += other.results
        self.calls += other.calls
        self.also |= set(other.key[5]) - set(self.key[5])


def core(sig) -> frozenset:
    """A signature without the default reduction (going to 'mean' is a simplification, not a new feature)."""
    return frozenset(sig) - {"reduction=mean"}


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
    order = sorted(groups.values(), key=lambda g: (KIND_ORDER.index(kind_of(g.key[2], g.key[3])), -g.count,
                                                   len(g.key[5])))
    targets: list[_Group] = []             # the classes reported: shrunk (or unshrinkable) representatives
    n_shrunk = 0
    for n, g in enumerate(order):
        _, _, check, status, tag, sig = g.key
        parent = next((t for t in targets if t.key[:5] == g.key[:5] and core(t.key[5]) <= sig), None)
        if parent is not None:             # the same failure with more features: most likely the same bug
            parent.absorb(g)
            continue
        if n_shrunk < shrink_budget and status not in ("crash", "timeout"):
            n_shrunk += 1
            case0, _ = g.rep
            dt = dtype_of(case0)
            last = {}

            def still_fails(c, check=check, status=status, tag=tag, sig=sig, dt=dt, last=last, n=n):
                if core(signature(c)) - sig or dtype_of(c) != dt:
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
                g.rep[1].message = (f"minimal case after shrinking ({calls} calls): "
                                    + g.rep[1].message).rstrip(": ")
        g.key = g.key[:5] + (signature(g.rep[0]),)
        same = next((t for t in targets if t.key == g.key), None)
        if same is not None:
            same.absorb(g)
        else:
            targets.append(g)
    # a class whose minimal signature contains another's (same check, status, kind) is that one too
    final: list[_Group] = []
    for g in sorted(targets, key=lambda t: len(core(t.key[5]))):
        parent = next((t for t in final if t.key[:5] == g.key[:5] and core(t.key[5]) <= g.key[5]), None)
        if parent is not None:
            parent.absorb(g)
        else:
            final.append(g)
    final.sort(key=lambda t: targets.index(t))
    classes, reps = [], []
    for i, g in enumerate(final, 1):
        _, _, check, status, tag, sig = g.key
        cid = f"{spec}/{loss}/{i}"
        case, r = g.rep
        for res in g.results + [r]:
            res.class_id = cid
        hint = ""
        if "declare it: CONFORMANCE" in (r.message or ""):
            hint = r.message[r.message.index("if "):] if "if " in r.message else ""
        msg = r.message
        if g.also:
            msg += f" (also seen with: {', '.join(sorted(g.also))})"
        classes.append(FailureClass(cid, spec, loss, check, status, kind_of(check, status),
                                    describe_signature(sig) + ([f"({tag})"] if tag else []),
                                    sorted(g.dtypes), g.count, r.case_id, case.describe(), msg, r.error,
                                    None, g.shrunk, g.calls, hint))
        reps.append((case, r))
    return classes, reps
