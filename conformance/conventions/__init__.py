"""The convention library: which known alternative semantics a failing candidate follows.

Every real library departs from torch 2.13 (docs/semantics.md) in a few known
ways. :data:`CONVENTIONS` names each one (a stable id, a one-line summary, the
losses it concerns, the libraries that follow it where public sources say so)
with a float64 reference of the loss under it; :func:`diagnose` re-judges a
candidate's failing checks against them and reports which explain what.
docs/conventions.md describes the library.

    >>> from conformance.conventions import CONVENTIONS
    >>> CONVENTIONS["smoothing_eps_over_c_minus_1"].losses
    ('cross_entropy',)
"""
from conformance.conventions._diagnose import FailedCase, diagnose, failed_checks
from conformance.conventions._library import CONVENTIONS, Convention
from conformance.conventions._semantics import TORCH, Outcome, Semantics, evaluate
from conformance.conventions._sharding import SHARD_CONVENTIONS, ShardConvention, diagnose_shards

__all__ = ["CONVENTIONS", "Convention", "FailedCase", "Outcome", "Semantics", "TORCH", "diagnose", "evaluate", "failed_checks",
           "SHARD_CONVENTIONS", "ShardConvention", "diagnose_shards"]
