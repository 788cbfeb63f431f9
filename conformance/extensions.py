"""Declared extensions: inputs torch 2.13 rejects that a candidate deliberately accepts.

A candidate lists them under ``CONFORMANCE["extensions"]`` (docs/candidates.md).
An invalid case (torch raises) that a declared extension makes legal is then
checked as a *value* case: the candidate must return what torch returns for the
case's canonical form, the one torch accepts. Everything else about the case
(other errors, out-of-range targets) is still checked: the canonical form is
judged by the same oracles, so it may itself be an error case.

This module imports only NumPy: it runs in the worker processes too.
"""
from __future__ import annotations

import numpy as np

#: name -> what it legalises (one line each, shown in the reports).
EXTENSIONS = {
    "any_int_target": "class-index targets of any integer dtype (int32, int16, int8, uint8 with spatial "
                      "inputs, ...), read as int64; bool and float targets still raise",
    "any_float_weight": "a class-index cross_entropy / nll_loss weight of any float dtype, cast to the "
                        "input's dtype; integer weights still raise",
}

#: Losses an extension can apply to (both concern the class-index path).
EXTENSION_LOSSES = {"any_int_target": ("cross_entropy", "nll_loss"),
                    "any_float_weight": ("cross_entropy", "nll_loss")}


def _index_path(loss: str, arrays: dict) -> bool:
    x, t = arrays["input"], arrays["target"]
    return loss in ("cross_entropy", "nll_loss") and not (loss == "cross_entropy" and t.shape == x.shape)


def canonical(loss: str, arrays: dict, extensions) -> tuple[dict, list[str]]:
    """The arrays torch accepts for the same meaning, and the extensions that were needed.

    Args:
        loss: the loss name.
        arrays: the case's arrays (not modified).
        extensions: the extension names the candidate declares for ``loss``.

    Returns:
        ``(arrays, used)``: ``arrays`` is a new dict (the same objects where nothing
        changed) and ``used`` lists the extensions that changed something, in
        :data:`EXTENSIONS` order; ``used == []`` means the case is unchanged.
    """
    out, used = dict(arrays), []
    if not _index_path(loss, arrays):
        return out, used
    x, t, w = arrays["input"], arrays["target"], arrays.get("weight")
    if "any_int_target" in extensions and np.issubdtype(t.dtype, np.integer) and t.dtype != np.int64:
        # uint8 is legal in torch for 1-D/2-D inputs only (docs/semantics.md §2.2); as int64 it means the same classes
        out["target"] = t.astype(np.int64)
        used.append("any_int_target")
    if "any_float_weight" in extensions and w is not None and np.issubdtype(w.dtype, np.floating) \
            and np.issubdtype(x.dtype, np.floating) and w.dtype != x.dtype:
        out["weight"] = w.astype(x.dtype)
        used.append("any_float_weight")
    return out, used
