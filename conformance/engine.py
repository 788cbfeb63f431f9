"""The conformance engine's entry point: :func:`run_campaign`.

The work is split by responsibility: conformance/campaign.py runs a campaign
(workers, the plan of candidates x losses as named records, the catalogue),
conformance/fuzz.py explores one candidate and loss with hypothesis,
conformance/execute.py runs one case (references, calls, judge),
conformance/judge.py decides its checks (pure), conformance/triage.py turns
failures into classes with shrunk representatives, conformance/recorder.py keeps
the results. The losses themselves are described once, in conformance/losses/.
"""
from __future__ import annotations

from conformance.campaign import run_campaign

__all__ = ["run_campaign"]
