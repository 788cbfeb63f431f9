"""A candidate that crashes, hangs or raises costs one result, never the campaign."""
import numpy as np

from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.worker import Worker

MISBEHAVE = "tests/conformance/bugs/misbehave.py"
X = np.full((2, 3), 0.5)


def test_worker_survives_crash_timeout_and_raise():
    w = Worker(MISBEHAVE, start_timeout_s=60)
    try:
        assert w.wait_ready()["cross_entropy"]["features"]
        crash = w.call("cross_entropy", {"input": X, "target": np.array([0, 1])}, {}, False, 30)
        assert crash.status == "crash" and "SIGABRT" in crash.message
        raised = w.call("binary_cross_entropy", {"input": X, "target": X}, {}, False, 30)
        assert raised.status == "raised" and raised.exc_type == "ZeroDivisionError"
        hang = w.call("nll_loss", {"input": X, "target": np.array([0, 1])}, {}, False, 1.0)
        assert hang.status == "timeout"
        exited = w.call("binary_cross_entropy_with_logits", {"input": X, "target": X}, {}, False, 30)
        assert exited.status == "crash" and "exit code 3" in exited.message
        assert w.restarts == 3
        again = w.call("binary_cross_entropy", {"input": X, "target": X}, {}, False, 30)
        assert again.status == "raised"                 # the restarted worker serves the next call
    finally:
        w.close()


def test_campaign_records_crash_timeout_and_error_and_finishes(tmp_path):
    cfg = CampaignConfig(candidates=[MISBEHAVE], max_examples=2, oracles=["scipy"], run_catalogue=False,
                         report_dir=str(tmp_path), case_timeout_s=1.0)
    res = run_campaign(cfg)
    status = {r.loss: r.status for r in res.results if r.check in ("value", "error_semantics")}
    assert status == {"cross_entropy": "crash", "nll_loss": "timeout", "binary_cross_entropy": "error",
                      "binary_cross_entropy_with_logits": "crash"}
    assert res.failed
    assert set(res.cases_run) == set(status)
