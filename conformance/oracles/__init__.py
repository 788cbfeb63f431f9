"""Reference implementations the candidates are compared against.

Oracles never import candidates. Each one maps a :class:`conformance.model.Case`
to a :class:`Reference`: the loss value and input gradient in float64 (or
better), or the exception type the case must raise.

* ``scipy``: an independent float64 implementation of the spec on NumPy and
  scipy.special, with torch's semantics (quirks included). Always available;
  it also decides which cases are invalid.
* ``torch``: ``torch.nn.functional`` in float64 with autograd.
* ``mpmath``: 50-digit evaluation for small cases, taking exact limits where
  torch produces NaN (docs/semantics.md §14): the ground truth for accuracy figures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ORACLE_NAMES = ("scipy", "torch", "mpmath")


@dataclass
class Reference:
    """What an oracle says a case should produce."""

    oracle: str
    value: np.ndarray | None = None        # float64, the loss's output shape
    grad: np.ndarray | None = None         # float64, the input's shape (None: not computed)
    dtype: str | None = None               # the dtype torch returns
    error: str | None = None               # exception type name for an invalid case
    exact: bool = False                    # True when value/grad are correctly rounded exact values


class OracleUnavailable(ImportError):
    """The oracle's library is not installed."""


def make_oracle(name: str):
    """The oracle called ``name`` ('scipy', 'torch' or 'mpmath'); raises OracleUnavailable."""
    if name == "scipy":
        from conformance.oracles import scipy_ref
        return scipy_ref.ScipyOracle()
    if name == "torch":
        try:
            from conformance.oracles import torch_ref
        except ImportError as exc:  # torch is an optional dependency of the harness
            raise OracleUnavailable(f"torch oracle unavailable: {exc}") from exc
        return torch_ref.TorchOracle()
    if name == "mpmath":
        try:
            from conformance.oracles import mpmath_ref
        except ImportError as exc:
            raise OracleUnavailable(f"mpmath oracle unavailable: {exc}") from exc
        return mpmath_ref.MpmathOracle()
    raise ValueError(f"unknown oracle {name!r}; expected one of {ORACLE_NAMES}")
