"""Reproducers: a failing case as ``case.npz`` plus a short ``repro.py`` a person can run and paste.

``repro.py`` is written out in full (no harness indirection for the call under
test): it loads and prints the arrays, imports the candidate as its spec names
it, calls the loss (or its gradient) with the case's keywords, asks the named
oracle of ``conformance.oracles`` for the reference, and prints both at full
precision with the tolerance that applies and the element that exceeds it most
(measured by the harness's own ``compare``), plus the NaN/inf mismatches.

``torch_repro.py`` runs the same call on ``torch.nn.functional`` alone (NumPy and
torch, no harness, the arrays inline when small), to paste into an upstream issue.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from typing import Any

import numpy as np

from conformance import candidates, losses
from conformance.model import Case
from conformance.relations import RELATIONS
from conformance.worker import SIMULATOR_THREADS_PER_BLOCK

#: Origins of metamorphic cases (conformance/metamorphic.py ORIGIN; not imported: it pulls in the oracles).
RELATION_ORIGIN = "metamorphic:"
#: Arrays passed by keyword; input and target are positional, grad_output goes to the gradient call.
_KEYWORD_ARRAYS = ("weight", "pos_weight", "linear_bias")
_MAX_NAME = 120


def safe_name(text: str) -> str:
    """A file-name-safe form of ``text``: [A-Za-z0-9._-] only, long names shortened with a hash."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"
    if len(s) > _MAX_NAME:
        s = s[: _MAX_NAME - 9] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return s


def _candidate_label(spec: str) -> str:
    """A short name for a candidate: a file spec by its base name plus a hash of the full path."""
    target, _, attr = spec.partition(":")
    if target.endswith(".py") or "/" in target or os.sep in target:
        tag = hashlib.sha1(os.path.abspath(target).encode()).hexdigest()[:6]
        base = os.path.splitext(os.path.basename(target))[0]
        return f"{base}-{tag}" + (f".{attr}" if attr else "")
    return spec.replace(":", ".")


#: The public name of the short candidate label (the pytest plugin names its items by it).
candidate_label = _candidate_label


def reproducer_dir(report_dir: str, case_id: str, candidate_spec: str, check: str) -> str:
    """``<report_dir>/reproducers/<case id>__<candidate>__<check>``: one directory per failure,
    so two candidates (or two checks) failing the same case never overwrite each other."""
    return os.path.join(report_dir, "reproducers",
                        safe_name(f"{case_id}__{_candidate_label(candidate_spec)}__{check}"))


def _literal(v: Any) -> str:
    """Python source for a keyword value (NaN/inf as float('nan') etc., numpy scalars as Python ones)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return f"float({repr(v)!r})"
    return repr(v)


def write_reproducer(case: Case, candidate_spec: str, check: str, case_id: str, report_dir: str,
                     oracle: str = "scipy", extensions: tuple[str, ...] = (), result=None) -> str:
    """Save ``case`` and a runnable ``repro.py`` for one failing check; returns the directory.

    Args:
        case: the case (its arrays are saved exactly; a strided array is saved
            contiguous and re-strided by ``repro.py`` with the same values).
        candidate_spec: the candidate as the CLI names it (``package.module``,
            ``path/to/file.py``, optional ``:attr``; or ``nbxent``, ``nbxent.cuda``, ``torch``).
        check: the failing check (``'grad_input'`` reproduces the gradient; the others the loss).
        case_id: the case's stable id.
        report_dir: the campaign's report directory.
        oracle: the ``conformance.oracles`` oracle to print as the reference.
        extensions: the candidate's declared extensions that made this (torch-invalid)
            case a value case: the reference is computed for its canonical form.

    Returns:
        The directory holding ``case.npz`` and ``repro.py``.
    """
    out = reproducer_dir(report_dir, case_id, candidate_spec, check)
    os.makedirs(out, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in case.arrays.items()}
    # np.savez keeps C and Fortran order; any other layout is saved contiguous
    # and rebuilt as a strided view in repro.py (see _load_lines).
    np.savez(os.path.join(out, "case.npz"), **arrays)
    strided = [k for k, v in arrays.items()
               if v.ndim >= 1 and v.size > 1 and not (v.flags.c_contiguous or v.flags.f_contiguous)]
    with open(os.path.join(out, "repro.py"), "w", encoding="utf-8") as f:
        if case.origin.startswith(RELATION_ORIGIN):
            f.write(render_relation_repro(case, candidate_spec, check, case_id, strided))
        else:
            f.write(render_repro(case, candidate_spec, check, case_id, oracle, strided, extensions))
    with open(os.path.join(out, "torch_repro.py"), "w", encoding="utf-8") as f:
        f.write(render_torch_repro(case, check, case_id))
    return out


#: Arrays up to this many elements are written inline in torch_repro.py.
INLINE_ELEMENTS = 200


def _array_literal(name: str, a: np.ndarray) -> str:
    if a.size <= INLINE_ELEMENTS:
        body = np.array2string(np.asarray(a), separator=", ", floatmode="unique", threshold=10**6,
                               max_line_width=110)
        return f"{name} = np.array({body}, dtype=np.{a.dtype})"
    return f'{name} = np.load(os.path.join(HERE, "case.npz"))["{name}"]   # {a.dtype} {tuple(a.shape)}'


def render_torch_repro(case: Case, check: str, case_id: str) -> str:
    """The text of ``torch_repro.py``: the case on torch.nn.functional alone."""
    grad = check == "grad_input"
    arrays = {k: np.ascontiguousarray(v) if np.ndim(v) else np.asarray(v) for k, v in case.arrays.items()}
    lines = [
        f'"""torch {torch_version()} on case {case_id!r} ({case.loss}{", gradient" if grad else ""}): '
        'no harness, only NumPy and torch."""',
        "import os", "", "import numpy as np", "import torch", "import torch.nn.functional as F", "",
        "HERE = os.path.dirname(os.path.abspath(__file__))",
        'inf, nan = float("inf"), float("nan")',
        "torch.set_printoptions(precision=17)", "",
    ]
    for name, a in arrays.items():
        if name == "grad_output" and not grad:
            continue
        lines.append(_array_literal(name, a))
    kw = [f"{k}={_literal(v)}" for k, v in case.kwargs.items()]
    kw += [f"{k}=torch.from_numpy({k})" for k in _KEYWORD_ARRAYS if k in arrays]
    lines += ["", "x = torch.from_numpy(input)" + (".requires_grad_(True)" if grad else ""),
              f"out = F.{case.loss}(x, {''.join(f'torch.from_numpy({k}), ' for k in losses.get(case.loss).positional[1:])}"
              f"{', '.join(kw)})",
              'print("loss:", out)']
    if grad:
        lines += ["out.backward(torch.from_numpy(grad_output))", 'print("grad:", x.grad)']
    return "\n".join(lines) + "\n"


def torch_version() -> str:
    try:
        import importlib.metadata
        return importlib.metadata.version("torch")
    except Exception:
        return "(version unknown)"


def _load_lines(case: Case, strided: list[str]) -> list[str]:
    lines = ['data = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "case.npz"))']
    for name, a in case.arrays.items():
        a = np.asarray(a)
        lines.append(f'{name} = data["{name}"]'.ljust(40) + f"# {a.dtype} {tuple(a.shape)}")
        if name in strided:
            lines.append(f"{name} = np.repeat({name}, 2, axis=-1)[..., ::2]   # non-contiguous, as in the failing case")
    kw = ", ".join(f"{k!r}: {_literal(v)}" for k, v in case.kwargs.items())
    lines.append(f"kwargs = {{{kw}}}")
    return lines


def _call_args(case: Case) -> str:
    kws = [f"{k}={k}" for k in _KEYWORD_ARRAYS if k in case.arrays]
    return ", ".join([*losses.get(case.loss).positional, *kws, "**kwargs"])


def _import_lines(spec: str) -> list[str]:
    if spec == "torch":
        # the harness's torch candidate: torch.nn.functional on NumPy arrays, autograd for the gradient
        return ["import conformance.torch_candidate as candidate   # torch.nn.functional on NumPy arrays"]
    target, _, attr = spec.partition(":")
    if target.endswith(".py") or os.sep in target or "/" in target:
        lines = [
            "import importlib.util",
            f"_spec = importlib.util.spec_from_file_location('candidate', {os.path.abspath(target)!r})",
            "candidate = importlib.util.module_from_spec(_spec)",
            "_spec.loader.exec_module(candidate)",
        ]
    elif all(part.isidentifier() for part in target.split(".")):
        lines = [f"import {target} as candidate"]
    else:
        lines = ["import importlib", f"candidate = importlib.import_module({target!r})"]
    if attr:
        lines.append(f"candidate = candidate.{attr}" if attr.isidentifier() else f"candidate = getattr(candidate, {attr!r})")
    return lines


def _candidate_lines(case: Case, spec: str, grad: bool) -> list[str]:
    loss, args = case.loss, _call_args(case)
    lines = _import_lines(spec)
    grad_name = losses.get(loss).grad_name or f"{loss}_backward"
    if grad and grad_name.endswith("_with_grad"):
        lines += [f"loss_, *grads = candidate.{grad_name}({args})   # the gradients of loss.sum()",
                  "# packed as the harness compares them: grad_input, grad_linear_weight, then grad_linear_bias",
                  "got = np.concatenate([np.asarray(g).ravel() for g in grads if g is not None])"]
    elif grad:
        lines.append(f"got = candidate.{loss}_backward(grad_output, {args})")
    else:
        lines.append(f"got = candidate.{loss}({args})")
    if spec == "nbxent.cuda":
        # NumPy arrays in, as the harness passes them (nbxent.cuda copies them to the device
        # and returns NumPy); the guard only matters if a device array ever comes back
        return lines + ["got = got.copy_to_host() if hasattr(got, 'copy_to_host') else np.asarray(got)"]
    return lines + ["got = np.asarray(got)"]


def _reference_lines(case: Case, oracle: str, grad: bool, extensions: tuple[str, ...] = ()) -> list[str]:
    part = "grad" if grad else "value"
    arrays = ", ".join(f"{k}={k}" for k in case.arrays)
    lines = [
        "# The reference, from the oracles of the conformance harness",
        "from conformance.model import Case",
        "from conformance.oracles import make_oracle",
        "",
        f"case = Case(loss={case.loss!r}, arrays=dict({arrays}), kwargs=kwargs)",
    ]
    if extensions:
        lines += [
            f"# torch rejects these arguments; the candidate declares the extension(s) {', '.join(extensions)},",
            "# so the reference is torch's result for the canonical form (int64 target, weight in the input's dtype)",
            "from conformance.extensions import canonical",
            f"case = Case(loss={case.loss!r}, arrays=canonical({case.loss!r}, case.arrays, {tuple(extensions)!r})[0],"
            " kwargs=kwargs)",
        ]
    if oracle == "mpmath":
        # The harness judges against torch's semantics (NaN/inf where torch has them)
        # with the exact value wherever both are finite; show all three.
        lines += [
            f"ref = make_oracle('scipy').evaluate(case, want_grad={grad!r})      # torch's semantics, float64",
            f"exact = make_oracle('mpmath').evaluate(case, want_grad={grad!r})   # 50 digits, rounded once",
            f"want = ref.{part}",
            f"if want is not None and exact.{part} is not None:",
            '    print("torch semantics (scipy):", repr(want))',
            f'    print("exact (mpmath):         ", repr(exact.{part}))',
            f"    want = np.where(np.isfinite(want) & np.isfinite(exact.{part}), exact.{part}, want)",
        ]
    else:
        lines += [f"ref = make_oracle({oracle!r}).evaluate(case, want_grad={grad!r})",
                  f"want = ref.{part}"]
    return lines + [
        "if ref.error is not None:",
        '    print(f"reference: torch raises {ref.error} on this case")',
        "if got is not None:",
        '    print(f"got  ({got.dtype}, shape {got.shape}):", repr(got))',
        "if want is not None:",
        f'    print(f"want (float64, {oracle}, shape {{want.shape}}):", repr(want))',
    ]


def _tolerance_lines(case: Case, grad: bool, oracle: str) -> list[str]:
    kind = "grad" if grad else "value"
    dtype = "str(input.dtype)" if grad else "ref.dtype or str(got.dtype)"
    return [
        "if got is not None and want is not None and got.shape == want.shape and got.size:",
        "    # the harness's own tolerance and comparison (conformance/tolerances.py, conformance/compare.py)",
        "    from conformance.compare import compare",
        "    from conformance.tolerances import tolerance",
        f"    tol, desc = tolerance(case, {kind!r}, {dtype}, ref_exact={oracle == 'mpmath'!r})",
        f"    c = compare(got, want, tol, {dtype}, desc)",
        '    print("tolerance:", desc)',
        '    print(f"{c.measure.n_bad} of {c.measure.n_total} elements outside the tolerance")',
        '    print(f"max abs error: {c.measure.max_abs!r}")',
        '    print(f"max rel error: {c.measure.max_rel!r}")',
        "    i = tuple(c.measure.worst_index)",
        "    allowed = float(np.broadcast_to(tol, want.shape)[i])",
        '    what = "the element most beyond its tolerance" if c.measure.n_bad else "the worst element (within tolerance)"',
        '    print(f"{what}: index {list(i)}: got {got[i]!s}, want {float(want[i])!r}, "',
        '          f"error {abs(float(got[i]) - float(want[i]))!r}, allowed {allowed!r}")',
        '    print(f"NaN mismatches: {c.n_pattern_bad} of {got.size}")',
        "    for line in c.pattern_examples:",
        '        print("    NaN/inf mismatch", line)',
        "elif got is not None and want is not None:",
        '    print(f"shape mismatch: got {got.shape}, want {want.shape}")',
    ]


def render_repro(case: Case, spec: str, check: str, case_id: str, oracle: str, strided: list[str] = (),
                 extensions: tuple[str, ...] = ()) -> str:
    """The text of ``repro.py`` (see ``write_reproducer``)."""
    grad = check == "grad_input"
    simulated = spec == "nbxent.cuda" and candidates.is_simulated(spec)
    what = f"the gradient of {case.loss}" if grad else case.loss
    call = _candidate_lines(case, spec, grad)
    head = [
        f'"""Reproducer: candidate {spec!r}, {what}, check {check!r}, case {case_id!r}.',
        "",
    ]
    if case.reason:
        head += [f"Case: {case.reason}", ""]
    head += [
        "Prints what the candidate returns and what the reference (oracle "
        f"{oracle!r}) says, at full precision.",
        "Run from a checkout where the candidate and the `conformance` package import:  python repro.py",
        '"""',
        "import os",
        "",
    ]
    if simulated:
        head += [
            "# Found on the CUDA simulator (no GPU there); it must be chosen before Numba is imported.",
            'os.environ["NUMBA_ENABLE_CUDASIM"] = "1"',
            "",
        ]
    head += [
        "import numpy as np",
        "",
        'np.set_printoptions(floatmode="unique", linewidth=120)   # every digit the dtype holds',
        "",
    ]
    body = _load_lines(case, list(strided)) + [
        "for _name in data.files:",
        '    print(f"{_name} =", repr(globals()[_name]))',
        'print("kwargs =", kwargs)',
        "", f"# The candidate ({spec!r})", "try:"]
    if simulated:
        call = call[:1] + [f"candidate.set_threads_per_block({SIMULATOR_THREADS_PER_BLOCK})   "
                           "# the block size the harness's worker uses on the simulator"] + call[1:]
    body += ["    " + line for line in call]
    body += [
        "except Exception as exc:",
        '    got = None',
        '    print(f"candidate raised {type(exc).__name__}: {exc}")',
        "",
    ] + _reference_lines(case, oracle, grad, tuple(extensions)) + [
    ] + _tolerance_lines(case, grad, oracle)
    return "\n".join(head + body) + "\n"


#: What each metamorphic check calls, for the reproducer's reader.
_RELATION_CALLS = {
    "chunk_invariance": "candidate.linear_cross_entropy(input, linear_weight, target, ..., **kwargs) with the "
                        "default chunking, then with chunk_size = 1, 2, 3 and N",
    "batch_invariance": "candidate.linear_cross_entropy on the batch, on the batch permuted, and (reduction "
                        "'none') on its two halves",
    "materialised": "candidate.linear_cross_entropy, and candidate.cross_entropy (if any, else the float64 "
                    "reference) on logits64(...) rounded to the input's dtype",
    "shard_split": "candidate.vocab_shard_stats on each shard of input[:, v0:v1] (1, 2, 3 and C shards), then "
                   "candidate.vocab_combine of the shards' statistics",
}


def render_relation_repro(case: Case, spec: str, check: str, case_id: str, strided: list[str] = ()) -> str:
    """The text of ``repro.py`` for a metamorphic check's failure: the relation's calls, every
    result it compares and the verdict, through conformance.metamorphic (the calls are listed)."""
    simulated = spec == "nbxent.cuda" and candidates.is_simulated(spec)
    rel = RELATIONS[check]
    head = [f'"""Reproducer: candidate {spec!r}, metamorphic check {check!r} ({rel.loss}), case {case_id!r}.', "",
            f"The relation: {rel.summary}.",
            f"It calls {_RELATION_CALLS[check]}.",
            "Prints every result the relation compares, at full precision, and the harness's verdict.",
            "Run from a checkout where the candidate and the `conformance` package import:  python repro.py",
            '"""', "import os", ""]
    if simulated:
        head += ['os.environ["NUMBA_ENABLE_CUDASIM"] = "1"   # found on the CUDA simulator', ""]
    head += ["import numpy as np", "", 'np.set_printoptions(floatmode="unique", linewidth=120)', ""]
    body = _load_lines(case, list(strided)) + [
        "for _name in data.files:",
        '    print(f"{_name} =", repr(globals()[_name]))',
        'print("kwargs =", kwargs)', "", f"# The candidate ({spec!r})"]
    body += _import_lines(spec)
    if simulated:
        body.append(f"candidate.set_threads_per_block({SIMULATOR_THREADS_PER_BLOCK})")
    arrays = ", ".join(f"{k}={k}" for k in case.arrays)
    body += [
        "from conformance import metamorphic",
        "from conformance.model import Case",
        "",
        f"case = Case(loss={case.loss!r}, arrays=dict({arrays}), kwargs=kwargs, origin={case.origin!r})",
        f"outs = metamorphic.outputs(candidate, {check!r}, case.arrays, case.kwargs)",
        "for _what, _v in outs.items():",
        '    print(f"{_what}:", repr(_v))',
        f"ref = metamorphic.reference({check!r}, case)",
        "if ref is not None:",
        '    print("float64 reference:", repr(ref))',
        'print("allowed (each result\'s bound against the exact value):", repr(metamorphic.allowed(case)))',
        f"verdict = metamorphic.judge({check!r}, case, outs, ref)",
        'print("verdict:", verdict.status, verdict.message)',
        "if verdict.measure is not None:",
        '    print("tolerance:", verdict.measure.tolerance)',
    ]
    return "\n".join(head + body) + "\n"
