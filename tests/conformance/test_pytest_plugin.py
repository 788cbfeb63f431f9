"""The pytest plugin (conformance/pytest_plugin.py): items per candidate x loss x check, failures with
their classes, diagnosis and reproducer, -k / -x / --lf / pytest-xdist, conformance_suite, and no
effect on a session that does not ask for it. Each test runs pytest in a subprocess in a fresh
directory (the plugin is loaded from the installed entry point).
"""
import importlib.util
import os
import subprocess
import sys

import pytest

from conformance.reproducer import candidate_label

HERE = os.path.dirname(os.path.abspath(__file__))
BUG = os.path.join(HERE, "bugs", "bug_bcewl_naive_log_sigmoid.py")
CORRECT = os.path.join(HERE, "correct", "numpy_f64.py")
LOSS = "binary_cross_entropy_with_logits"
NAME = candidate_label(BUG)       # bug_bcewl_naive_log_sigmoid-<hash of the path>
# one argument per option: pytest takes a free-standing path argument for a test path (and its rootdir)
OPTS = [f"--conformance-candidate={BUG}", f"--conformance-loss={LOSS}", "--conformance-max-examples=2", "--conformance-seed=3"]

TRIVIAL = '''
import sys

def test_plugin_loaded_and_idle():
    assert "conformance.pytest_plugin" in sys.modules      # the entry point is installed
    assert "conformance.campaign" not in sys.modules       # ... and has imported nothing of the harness
'''


def _pytest(cwd, *args):
    (cwd / "pytest.ini").write_text("[pytest]\n")        # the root is the project, not a candidate's directory
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    p = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-q", "-p", "no:randomly", *args], cwd=cwd,
                       capture_output=True, text=True, timeout=300, env=env)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with one ordinary test, and a first run of the plugin on the buggy candidate."""
    d = tmp_path_factory.mktemp("project")
    (d / "test_trivial.py").write_text(TRIVIAL)
    rc, out = _pytest(d, *OPTS)
    return d, rc, out


def test_items_per_check_and_failures_with_class_diagnosis_and_reproducer(project):
    d, rc, out = project
    assert rc == 1, out
    for check in ("value", "shape_dtype", "nan_pattern", "grad_input", "error_semantics"):
        assert f"conformance[{NAME}-{LOSS}-{check}]" in out, out
    assert f"FAILED ::conformance[{NAME}-{LOSS}-nan_pattern]" in out
    assert f"PASSED ::conformance[{NAME}-{LOSS}-shape_dtype]" in out
    assert "PASSED test_trivial.py::test_plugin_loaded_and_idle" in out
    assert "class " in out and "reproducer: python " in out and "repro.py" in out and "diagnosis: " in out
    repro = out.split("reproducer: python ", 1)[1].split()[0]
    assert os.path.isfile(os.path.join(d, repro) if not os.path.isabs(repro) else repro)
    assert (d / "conformance-report").is_dir()


def test_last_failed_k_and_x_select_and_stop_as_usual(project):
    d, rc, first = project
    # "FAILED ::conformance[<candidate>-<loss>-<check>] - <message>": the check is the id's last field
    failed = sorted(line.split("]", 1)[0].rsplit("-", 1)[-1] for line in first.splitlines()
                    if line.startswith("FAILED ::conformance["))
    assert failed == ["nan_pattern", "value"], first
    # --lf keeps the two failed checks (test_trivial and the three passed checks are deselected), -k keeps
    # both, -x stops at the first failure
    rc, out = _pytest(d, *OPTS, "--lf", "-k", "value or nan_pattern or shape_dtype", "-x")
    assert rc == 1 and "1 failed, 4 deselected" in out and "stopping after 1 failures" in out, out
    assert "PASSED" not in out


def test_conformance_suite_in_a_test_file(tmp_path):
    (tmp_path / "test_mine.py").write_text(
        "from conformance.pytest_plugin import conformance_suite\n"
        f"test_numpy_f64 = conformance_suite({CORRECT!r}, losses=['binary_cross_entropy'],\n"
        "                                   checks=['value', 'grad_input'], max_examples=5)\n")
    rc, out = _pytest(tmp_path, "-p", "no:cacheprovider")
    assert rc == 0, out
    assert "PASSED test_mine.py::test_numpy_f64[binary_cross_entropy-value]" in out
    assert "2 passed" in out


def test_inactive_without_its_option(tmp_path):
    (tmp_path / "test_trivial.py").write_text(TRIVIAL)
    rc, out = _pytest(tmp_path, "-p", "no:cacheprovider")
    assert rc == 0 and "1 passed" in out and "conformance[" not in out, out


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_xdist_runs_the_items(project):
    d = project[0]
    rc, out = _pytest(d, *OPTS, "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    assert rc == 1 and f"FAILED ::conformance[{NAME}-{LOSS}-nan_pattern]" in out, out
    assert "passed" in out


def test_a_metamorphic_check_is_an_item_of_its_loss(tmp_path):
    bug = os.path.join(HERE, "linear", "bug_lce_chunk_mean.py")
    name, loss = candidate_label(bug), "linear_cross_entropy"
    rc, out = _pytest(tmp_path, f"--conformance-candidate={bug}", f"--conformance-loss={loss}",
                      "--conformance-max-examples=2")
    assert rc == 1, out
    assert f"FAILED ::conformance[{name}-{loss}-chunk_invariance]" in out, out
    assert f"PASSED ::conformance[{name}-{loss}-batch_invariance]" in out, out
    assert f"conformance[{name}-{loss}-shard_split]" not in out       # a check of cross_entropy's row
