"""junit.xml parses as JUnit and has one test case per candidate x loss x check."""
import xml.etree.ElementTree as ET

from _reports_data import FAIL_MESSAGE, make_run
from conformance.reports import render_junit, write_junit
from conformance.reports.junit import classname


def _parse(tmp_path, run):
    return ET.parse(write_junit(run, str(tmp_path))).getroot()


def test_counts_match_the_synthetic_run(tmp_path):
    root = _parse(tmp_path, make_run())
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "20", "failures": "1", "errors": "2", "skipped": "1"}
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["good", "bad"]
    for name, suite in suites.items():
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases)) == "10"
        assert suite.get("failures") == str(len(suite.findall("testcase/failure")))
        assert suite.get("errors") == str(len(suite.findall("testcase/error")))
        assert suite.get("skipped") == str(len(suite.findall("testcase/skipped")))
    assert suites["good"].get("timestamp") == "2026-01-01T00:00:00"      # Ant schema: no offset
    names = {(c.get("classname"), c.get("name")) for c in root.iter("testcase")}
    assert len(names) == 20                    # no duplicate test ids


def test_failure_carries_message_worst_error_and_reproducer(tmp_path):
    root = _parse(tmp_path, make_run())
    case = root.find("testsuite[@name='bad']/testcase[@classname='conformance.bad.cross_entropy'][@name='value']")
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message").startswith("2 of 3 cases failed (2 fail); worst nan ulp")
    assert FAIL_MESSAGE in failure.get("message")     # <, >, & and quotes survived escaping
    assert "got 0.2500001 want 0.25" in failure.text
    assert "reproducer: rep/cross_entropy_fuzz_000001" in failure.text
    assert "max_ulp=12" in failure.text


def test_crash_and_timeout_are_errors_and_control_chars_are_replaced(tmp_path):
    root = _parse(tmp_path, make_run())
    bad = root.find("testsuite[@name='bad']")
    crash = bad.find("testcase[@classname='conformance.bad.cross_entropy'][@name='grad_input']/error")
    assert crash.get("type") == "crash"
    assert "\x00" not in crash.text and "signal 11\ufffd" in crash.text
    timeout = bad.find("testcase[@classname='conformance.bad.nll_loss'][@name='error_semantics']/error")
    assert timeout.get("type") == "timeout" and timeout.get("message").startswith("1 of 3 cases failed (1 timeout)")


def test_not_supported_is_skipped_and_passing_has_no_failure():
    root = render_junit(make_run())
    good = root.find("testsuite[@name='good']")
    skipped = good.findall("testcase/skipped")
    assert len(skipped) == 1
    assert skipped[0].get("message") == "not supported: good declares no backward for nll_loss"
    assert good.findall("testcase/failure") == [] and good.findall("testcase/error") == []


def test_all_pass_run_has_no_failures():
    root = render_junit(make_run(with_failures=False).to_dict())   # the JSON form is accepted too
    assert (root.get("failures"), root.get("errors"), root.get("tests")) == ("0", "0", "20")


def test_classname_keeps_one_level_per_part():
    assert classname("nbxent.cuda", "nll_loss") == "conformance.nbxent_cuda.nll_loss"
    assert classname("/tmp/x/my.losses.py:Impl", "cross_entropy") == "conformance.tmp_x_my_losses_py_Impl.cross_entropy"
