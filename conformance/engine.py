"""The conformance engine's entry point: :func:`run_campaign`.

The work is split by responsibility: conformance/campaign.py runs a campaign
(workers, the plan of candidates x losses, the catalogue, the results model),
conformance/fuzz.py fuzzes one candidate and loss with hypothesis and shrinks
failures, conformance/judge.py judges one case against the oracles.
"""
from __future__ import annotations

from conformance.campaign import run_campaign

__all__ = ["run_campaign"]
