"""A harness that survives its candidates: output captured, SystemExit and unpicklable values named,
a hanging function stopped after a few timeouts, and reports kept when the run is killed."""
import json
import signal
import subprocess
import sys
import time

import numpy as np

from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import FAILING
from conformance.worker import MAX_TIMEOUTS, OUTPUT_TAIL, Worker

MORE = "tests/conformance/bugs/misbehave_more.py"
X = np.full((2, 3), 0.5)


def test_worker_names_system_exit_and_unpicklable_returns_and_captures_output():
    w = Worker(MORE, start_timeout_s=60)
    try:
        out = w.call("cross_entropy", {"input": X, "target": np.array([0, 1])}, {}, False, 30)
        assert out.status == "ok" and out.output_chars > 1_000_000 and len(out.output) == OUTPUT_TAIL
        assert out.output.endswith("the end of a noisy call\nand a line on fd 2\n")
        ex = w.call("nll_loss", {"input": X, "target": np.array([0, 1])}, {}, False, 30)
        assert (ex.status, ex.exc_type, ex.is_exception) == ("raised", "SystemExit", False)
        bad = w.call("binary_cross_entropy", {"input": X, "target": X}, {}, False, 30)
        assert bad.status == "bad_return" and "lock" in bad.message and "cannot" in bad.message
        assert w.restarts == 0                            # none of these cost the worker
    finally:
        w.close()


def test_a_hanging_function_is_stopped_after_a_few_timeouts(tmp_path):
    cfg = CampaignConfig(candidates=[MORE], losses=["binary_cross_entropy_with_logits", "cross_entropy"],
                         oracles=["scipy"], max_examples=6, run_catalogue=False, report_dir=str(tmp_path),
                         case_timeout_s=1.0)
    t0 = time.time()
    res = run_campaign(cfg)
    hung = [r for r in res.results if r.loss == "binary_cross_entropy_with_logits"]
    assert sum(r.status == "timeout" for r in hung) == MAX_TIMEOUTS
    (skipped,) = [r for r in hung if r.status == "not_run"]
    assert skipped.case["examples"] == 6 - MAX_TIMEOUTS and "timed out" in skipped.message
    assert time.time() - t0 < 60
    # the noisy cross_entropy is right: its output goes to the report, not the console
    assert not [r for r in res.results if r.loss == "cross_entropy" and r.status in FAILING]


def _is_worker(pid: str) -> bool:
    try:
        return "spawn_main" in open(f"/proc/{pid}/cmdline").read()
    except OSError:                                   # it has exited
        return False


CLI = [sys.executable, "-m", "conformance", "run", "--no-progress", "-c", MORE, "--oracle", "scipy",
       "--no-catalogue", "--case-timeout", "300", "--max-examples", "5"]


def test_sigterm_during_a_hang_writes_a_partial_report_and_kills_the_worker(tmp_path):
    out = tmp_path / "rep"
    proc = subprocess.Popen(CLI + ["--loss", "cross_entropy", "binary_cross_entropy_with_logits",
                                   "--report-dir", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 120
        while not (out / "report.json").exists() and time.time() < deadline:   # after cross_entropy
            time.sleep(0.5)
        assert (out / "report.json").exists()
        time.sleep(2)                                           # now inside the hanging call
        children = [pid for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                  text=True).stdout.split()
                    if _is_worker(pid)]

        assert children
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2, stderr
    doc = json.load(open(out / "report.json"))
    assert doc["verdict"] == "partial" and "interrupted" in doc["partial"]
    md = open(out / "summary.md").read()
    assert "PARTIAL" in md and "PASS" not in md.splitlines()[0]
    assert "interrupted" in stderr and len(stdout) < 20_000   # the candidate's megabytes never reach the console
    time.sleep(2)
    alive = [pid for pid in children if _is_worker(pid)]
    assert not alive, f"worker processes left behind: {alive}"
