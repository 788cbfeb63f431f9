"""The loss registry: one record per loss says everything the harness knows about it.

Each loss has a module here (``cross_entropy.py``, ``nll_loss.py``, ...) defining
``SPEC``, a :class:`LossSpec`: the features a candidate can support for it, and
where its hypothesis strategy, catalogue, expected errors (torch's exceptions),
tolerance units and oracle entry points live. Every part of the harness asks
:func:`get` instead of testing loss names; an unknown name raises
:class:`UnknownLoss`.

This package imports only the standard library (the entry points are resolved on
first use): it is read inside the worker processes, before a candidate is imported.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["LOSSES", "KEYWORD_FEATURES", "LossSpec", "UnknownLoss", "get", "all_specs"]

#: Keyword arguments that are features (a function that does not take one lacks the feature).
KEYWORD_FEATURES = ("reduction", "weight", "ignore_index", "label_smoothing", "pos_weight",
                    "lse_square_scale", "softcap", "linear_bias", "chunk_size")


class UnknownLoss(ValueError):
    """A loss name the registry does not know."""


@dataclass(frozen=True)
class LossSpec:
    """Everything the harness knows about one loss.

    The ``*_entry`` fields are ``"module:function"`` paths, resolved by :meth:`entry`.
    """

    name: str
    family: str                    # 'class' (class axis, index or probability targets) or 'elementwise'
    features: tuple[str, ...]      # what a candidate can support (docs/candidates.md)
    strategy_entry: str            # (loss, Features) -> hypothesis strategy of Case
    catalogue_entry: str           # dtype -> iterable of Case (valid named cases)
    expected_error_entry: str      # (loss, arrays, kwargs) -> exception type name torch raises, or None
    units_entry: str               # (case, kind) -> (E, Q) tolerance units
    scipy_entry: str               # (loss, arrays, kwargs, want_grad) -> (value, grad, result dtype)
    mpmath_entry: str              # (loss, arrays, kwargs, want_grad) -> (value, grad) as mpmath objects
    grad_name: str = ""            # '<loss>_backward'
    extensions: tuple[str, ...] = ()   # declared extensions that can apply (conformance/extensions.py)
    positional: tuple[str, ...] = ("input", "target")   # the arrays passed positionally, in order
    max_examples: int = 0          # cap on the fuzzed examples per candidate (0: the campaign's budget)
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def entry(self, what: str) -> Callable[..., Any]:
        """The function behind ``<what>_entry`` ('strategy', 'catalogue', 'expected_error', 'units',
        'scipy', 'mpmath'), imported on first use."""
        if what not in self._cache:
            path = getattr(self, f"{what}_entry")
            module, _, attr = path.partition(":")
            self._cache[what] = getattr(importlib.import_module(module), attr)
        return self._cache[what]

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f in KEYWORD_FEATURES)


def _load() -> dict[str, LossSpec]:
    from conformance.losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                                    linear_cross_entropy, nll_loss)
    return {m.SPEC.name: m.SPEC for m in (cross_entropy, nll_loss, binary_cross_entropy,
                                          binary_cross_entropy_with_logits, linear_cross_entropy)}


_REGISTRY = _load()
#: The losses, in the order reports list them.
LOSSES = tuple(_REGISTRY)


def get(loss: str) -> LossSpec:
    """The registry record of ``loss``; raises :class:`UnknownLoss` for a name it does not know."""
    try:
        return _REGISTRY[loss]
    except (KeyError, TypeError):
        raise UnknownLoss(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}") from None


def all_specs() -> tuple[LossSpec, ...]:
    return tuple(_REGISTRY.values())
