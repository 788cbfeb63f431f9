"""Progress events count catalogue cases and shrinking, so the bar reads 100% only at the end;
finding messages print plain integers."""
import os

import numpy as np

from conformance import catalogue
from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.references import References

BUGS = os.path.join("tests", "conformance", "bugs")


def test_progress_reaches_its_total_only_at_the_end(tmp_path):
    events = []
    cfg = CampaignConfig(candidates=[os.path.join(BUGS, "bug_nll_mean_counts_ignored.py")], losses=["nll_loss"],
                         oracles=["scipy"], max_examples=15, report_dir=str(tmp_path), case_timeout_s=60)
    res = run_campaign(cfg, events.append)
    assert res.failed                                       # so the fuzz run shrank a failure
    n_cat = sum(1 for r in res.results if "/catalogue/" in r.case_id and r.check in ("value", "error_semantics"))
    assert events[0].total >= n_cat + 15                    # catalogue cases are part of the plan
    first_full = next(i for i, e in enumerate(events) if e.done == e.total)
    assert all(e.done == events[-1].done for e in events[first_full:])   # 100% only once all work is done
    assert all(e.done <= e.total for e in events)
    assert events[-1].done == events[-1].total == max(e.done for e in events)
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_finding_messages_print_plain_indices():
    refs = References(["scipy", "torch", "mpmath"])
    for case in catalogue.entries("cross_entropy", ("float32",)):
        if case.origin.startswith("ce_pos_inf_logit"):
            refs.get(case)
    msgs = [f.message for f in refs.findings.to_list()]
    assert any("torch gives nan at [0]" in m for m in msgs), msgs
    assert not any("np." in m for m in msgs)


def test_int_cast_of_worst_index_in_comparisons():
    from conformance.compare import compare

    c = compare(np.array([[1.0, 2.0]]), np.array([[1.0, 3.0]]), 0.0, "float64")
    assert c.measure.worst_index == [0, 1] and all(type(i) is int for i in c.measure.worst_index)
    assert "np." not in c.pattern_examples.__repr__()
