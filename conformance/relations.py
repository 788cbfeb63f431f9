"""The metamorphic checks a candidate can offer, and how the harness finds out whether it does.

A metamorphic check (conformance/metamorphic.py) relates a candidate's own results to each
other: it needs no oracle of its own, but it needs entry points beyond one loss function.
Each :class:`Relation` names the loss whose row of the reports it belongs to, the functions
the candidate must define and the keyword the first of them must accept; :func:`offered`
reads that from the candidate (signatures, as conformance/candidates.py reads keywords), so
a candidate is never failed for a check it cannot take part in: the check is reported as
not applicable, with the reason.

This module imports only the standard library: it is read inside the worker processes,
before a candidate (and Numba) is imported.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

__all__ = ["RELATIONS", "Relation", "offered", "of_loss"]


@dataclass(frozen=True)
class Relation:
    name: str                     # the check's name in the reports
    loss: str                     # the loss whose row it is reported in
    needs: tuple[str, ...]        # functions the candidate must define
    keyword: str = ""             # a keyword the first function must accept ('' for none)
    summary: str = ""

    def requirement(self) -> str:
        """What a candidate must offer, in words (the 'not applicable' reason)."""
        fns = " and ".join(f"`{f}`" for f in self.needs)
        return fns + (f" accepting `{self.keyword}`" if self.keyword else "")


RELATIONS = {r.name: r for r in [
    Relation("chunk_invariance", "linear_cross_entropy", ("linear_cross_entropy",), "chunk_size",
             "the 'none', 'sum' and 'mean' losses for chunk sizes 1, 2, 3 and N equal the default chunking's"),
    Relation("batch_invariance", "linear_cross_entropy", ("linear_cross_entropy",), "",
             "a sample's 'none' loss does not depend on its neighbours (the batch permuted, and split in two)"),
    Relation("materialised", "linear_cross_entropy", ("linear_cross_entropy",), "",
             "equal to cross_entropy (the candidate's own, else the float64 reference) on the logits "
             "input @ W.T + b formed in float64 and rounded to the input's dtype"),
    Relation("shard_split", "cross_entropy", ("vocab_shard_stats", "vocab_combine"), "",
             "the logits' vocabulary split 1, 2, 3 and C ways, each shard's statistics computed alone and "
             "combined, equals cross_entropy of the unsharded logits"),
]}


def of_loss(loss: str) -> tuple[str, ...]:
    """The metamorphic checks reported in ``loss``'s row, in the reports' order."""
    return tuple(r.name for r in RELATIONS.values() if r.loss == loss)


def _names(fn, keyword: str) -> bool:
    """``keyword`` is named in ``fn``'s signature. ``**kwargs`` does not count: torch has no such
    keyword, and a candidate forwarding its keywords to torch would raise (as for softcap)."""
    try:
        return keyword in inspect.signature(fn).parameters
    except (TypeError, ValueError):       # no signature (a C function): cannot tell, so not offered
        return False


def offered(obj, name: str) -> str:
    """'' when ``obj`` offers what relation ``name`` needs, else why not (a sentence)."""
    r = RELATIONS[name]
    missing = [f for f in r.needs if not callable(getattr(obj, f, None))]
    if missing:
        return f"not applicable: no {', '.join(missing)} (needs {r.requirement()})"
    if r.keyword and not _names(getattr(obj, r.needs[0]), r.keyword):
        return f"not applicable: `{r.needs[0]}` names no `{r.keyword}` keyword"
    return ""
