"""repro.py runs on its own and prints the candidate's and the reference's values at full precision."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conformance.model import Case
from conformance.oracles import make_oracle
from conformance.reproducer import reproducer_dir, safe_name, write_reproducer

# A candidate with a deliberate bug: the weight is ignored in the gradient.
CANDIDATE = textwrap.dedent('''
    import numpy as np

    def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
        l = np.maximum(input, 0) - input * target + np.log1p(np.exp(-np.abs(input)))
        if weight is not None:
            l = l * weight
        return {"none": l, "sum": l.sum(), "mean": l.mean()}[reduction].astype(input.dtype)

    def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None,
                                                  reduction="mean", pos_weight=None):
        scale = {"none": 1.0, "sum": 1.0, "mean": 1.0 / input.size}[reduction]
        return ((1 / (1 + np.exp(-input)) - target) * grad_output * scale).astype(input.dtype)

    class Impl:
        @staticmethod
        def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
            if input.shape[0] != target.shape[0]:
                raise ValueError(f"nll_loss: batch mismatch {input.shape} vs {target.shape}")
            return np.asarray(-input[np.arange(len(target)), target].mean(), dtype=input.dtype)
''')


@pytest.fixture
def cand_dir(tmp_path):
    d = tmp_path / "cand"
    d.mkdir()
    (d / "mylosses.py").write_text(CANDIDATE)
    return d


def _case(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    return Case("binary_cross_entropy_with_logits",
                {"input": x, "target": (rng.random((3, 4)) > 0.5).astype(np.float32),
                 "weight": np.full(4, 2.0, np.float32), "grad_output": np.array(1.5, np.float32)},
                {"reduction": "mean"})


def _run(directory, env_path=None):
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = os.pathsep.join([str(env_path), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, os.path.join(directory, "repro.py")], capture_output=True, text=True,
                         cwd=str(directory), env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _float_after(label, text):
    m = re.search(label + r" (\S+)", text)
    assert m, f"no {label!r} in:\n{text}"
    return float(m.group(1).rstrip(","))


def test_value_repro_prints_both_values_and_the_error(tmp_path, cand_dir):
    case = _case(np.random.default_rng(5))
    d = write_reproducer(case, str(cand_dir / "mylosses.py"), "value", "bcewl/fuzz/000001", str(tmp_path / "rep"))
    assert d == reproducer_dir(str(tmp_path / "rep"), "bcewl/fuzz/000001", str(cand_dir / "mylosses.py"), "value")
    assert sorted(os.listdir(d)) == ["case.npz", "repro.py", "torch_repro.py"]
    stdout = _run(d)
    ns = {}
    exec(CANDIDATE, ns)
    got = ns["binary_cross_entropy_with_logits"](case.arrays["input"], case.arrays["target"],
                                                 weight=case.arrays["weight"], reduction="mean")
    want = make_oracle("scipy").evaluate(case, want_grad=False).value
    assert f"got  (float32, shape ()): {np.asarray(got)!r}" in stdout                # float32 shortest round-trip digits
    assert f"want (float64, scipy, shape ()): array({float(want)!r})" in stdout  # all 17 digits of the float64
    assert _float_after("max abs error:", stdout) == abs(float(got) - float(want))
    assert f"got {got!s}, want {float(want)!r}" in stdout                 # the worst element, same digits
    assert "NaN mismatches: 0 of 1" in stdout


def test_grad_repro_shows_the_candidates_bug(tmp_path, cand_dir):
    case = _case(np.random.default_rng(6))
    d = write_reproducer(case, str(cand_dir / "mylosses.py"), "grad_input", "bcewl/fuzz/000002", str(tmp_path))
    stdout = _run(d)
    want = make_oracle("scipy").evaluate(case, want_grad=True).grad
    assert "got  (float32, shape (3, 4))" in stdout and "want (float64, scipy, shape (3, 4))" in stdout
    # the candidate ignores weight=2, so it is off by half the reference everywhere
    assert _float_after("max rel error:", stdout) == pytest.approx(0.5, rel=1e-6)
    assert _float_after("max abs error:", stdout) == pytest.approx(np.abs(want).max() / 2, rel=1e-6)


def test_module_attr_spec_error_case_and_strided_input(tmp_path, cand_dir):
    x = np.log(np.full((3, 8), 0.25, np.float32))[:, ::2]                # strided, as a fuzzed case can be
    case = Case("nll_loss", {"input": x, "target": np.array([0, 1], np.int64)}, {"reduction": "mean"},
                reason="batch mismatch must raise ValueError")
    d = write_reproducer(case, "mylosses:Impl", "error_semantics", "nll_loss/catalogue/batch", str(tmp_path))
    src = open(os.path.join(d, "repro.py")).read()
    assert "input = np.repeat(input, 2, axis=-1)[..., ::2]" in src
    stdout = _run(d, env_path=cand_dir)
    assert "candidate raised ValueError: nll_loss: batch mismatch (3, 4) vs (2,)" in stdout
    assert "reference: torch raises ValueError on this case" in stdout


def test_non_finite_keywords_are_valid_python(tmp_path, cand_dir):
    case = Case("nll_loss", {"input": np.zeros((2, 3), np.float64), "target": np.array([0, 2])},
                {"reduction": "sum", "ignore_index": np.int64(-100)})
    case.kwargs["extra"] = float("-inf")                                 # any non-finite keyword
    d = write_reproducer(case, "mylosses:Impl", "value", "x", str(tmp_path))
    src = open(os.path.join(d, "repro.py")).read()
    assert "kwargs = {'reduction': 'sum', 'ignore_index': -100, 'extra': float('-inf')}" in src
    compile(src, "repro.py", "exec")


def test_names_are_safe_and_unique():
    assert safe_name("cross_entropy/fuzz/000123") == "cross_entropy_fuzz_000123"
    long = safe_name("a/" * 200)
    assert len(long) <= 120 and re.fullmatch(r"[A-Za-z0-9._-]+", long)
    assert safe_name("a/" * 200) != safe_name("a/" * 201)
    dirs = {reproducer_dir("r", "ce/fuzz/1", c, ch) for c in ("nbxent", "torch") for ch in ("value", "grad_input")}
    assert len(dirs) == 4


def test_torch_candidate_gradient_repro_matches_the_harness_call(tmp_path):
    torch_candidate = pytest.importorskip("conformance.torch_candidate")
    rng = np.random.default_rng(8)
    case = Case("cross_entropy", {"input": rng.standard_normal((4, 3)).astype(np.float32),
                                  "target": np.array([0, 2, 1, -100], np.int64),
                                  "grad_output": np.array(0.75, np.float32)},
                {"reduction": "mean", "label_smoothing": 0.1})
    d = write_reproducer(case, "torch", "grad_input", "cross_entropy/fuzz/000009", str(tmp_path))
    stdout = _run(d)
    got = torch_candidate.cross_entropy_backward(case.arrays["grad_output"], case.arrays["input"],
                                                 case.arrays["target"], reduction="mean", label_smoothing=0.1)
    with np.printoptions(floatmode="unique", linewidth=120):
        assert f"got  (float32, shape (4, 3)): {got!r}" in stdout
    assert "NaN mismatches: 0 of 12" in stdout


def test_mpmath_repro_shows_torch_semantics_exact_and_judged_reference(tmp_path, cand_dir):
    # logits at +-inf: torch gives NaN where the exact limit is finite (docs/semantics.md §14)
    x = np.array([np.inf, -np.inf, 0.5], np.float64)
    case = Case("binary_cross_entropy_with_logits", {"input": x, "target": np.array([1.0, 0.0, 1.0])},
                {"reduction": "none"})
    d = write_reproducer(case, str(cand_dir / "mylosses.py"), "nan_pattern", "bcewl/catalogue/inf", str(tmp_path),
                         oracle="mpmath")
    stdout = _run(d)
    exact = make_oracle("mpmath").evaluate(case, want_grad=False).value
    torch_sem = make_oracle("scipy").evaluate(case, want_grad=False).value
    with np.printoptions(floatmode="unique", linewidth=120):
        assert f"torch semantics (scipy): {torch_sem!r}" in stdout
        assert f"exact (mpmath):          {exact!r}" in stdout
        judged = np.where(np.isfinite(torch_sem) & np.isfinite(exact), exact, torch_sem)
        assert f"want (float64, mpmath, shape (3,)): {judged!r}" in stdout


def test_cuda_simulator_repro_makes_the_workers_call(tmp_path, monkeypatch):
    """nbxent.cuda found on the simulator: the simulator is chosen before NumPy/Numba are imported,
    the block size is the worker's, the arrays go in as NumPy (as the harness passes them), and the
    script runs with no NUMBA_ENABLE_CUDASIM in the environment."""
    from conformance import candidates
    from conformance.worker import SIMULATOR_THREADS_PER_BLOCK

    monkeypatch.setattr(candidates, "is_simulated", lambda spec: spec == "nbxent.cuda")
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)
    case = Case("nll_loss", {"input": x, "target": np.array([2, 0], np.int32)}, {"reduction": "sum"})
    d = write_reproducer(case, "nbxent.cuda", "value", "nll_loss/catalogue/x", str(tmp_path),
                         extensions=("any_int_target",))
    text = open(os.path.join(d, "repro.py")).read()
    assert text.index('os.environ["NUMBA_ENABLE_CUDASIM"] = "1"') < text.index("import numpy")
    assert f"candidate.set_threads_per_block({SIMULATOR_THREADS_PER_BLOCK})" in text
    assert "import nbxent.cuda as candidate" in text and "to_device" not in text
    assert "got = candidate.nll_loss(input, target, **kwargs)" in text
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, os.path.join(d, "repro.py")], capture_output=True, text=True,
                         cwd=d, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    # -(x[0, 2] + x[1, 0]) = -3.5 exactly in float32; the int32 target is read through the extension
    assert "got  (float32, shape ()): array(-3.5" in out.stdout and "max abs error: 0.0" in out.stdout
    assert "torch raises" not in out.stdout


def test_repro_on_a_real_gpu_does_not_choose_the_simulator(tmp_path, monkeypatch):
    from conformance import candidates

    monkeypatch.setattr(candidates, "is_simulated", lambda spec: False)
    case = Case("nll_loss", {"input": np.zeros((2, 3)), "target": np.array([0, 1])}, {})
    text = open(os.path.join(write_reproducer(case, "nbxent.cuda", "value", "n/1", str(tmp_path)), "repro.py")).read()
    assert "NUMBA_ENABLE_CUDASIM" not in text and "set_threads_per_block" not in text
