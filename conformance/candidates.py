"""Candidates: loading an implementation by name and finding out what it supports.

A candidate spec is ``package.module``, ``path/to/file.py``, either followed by
``:attribute`` (an object or namespace inside the module), or one of the
built-ins ``nbxent``, ``nbxent.cuda`` and ``torch``. The candidate defines any
subset of the four losses (and ``<loss>_backward``) with torch's keyword names.

What it supports is read from its signatures (a keyword it does not accept is a
feature it lacks: reported as "not supported", never failed) and narrowed by an
optional ``CONFORMANCE`` declaration (docs/candidates.md):

    CONFORMANCE = {
        "dtypes": ["float32", "float64"],      # input dtypes (float16 only when listed)
        "max_ndim": 4, "max_classes": 50000,
        "reductions": ["mean", "sum", "none"],
        "exclude": ["nonfinite"],              # features it does not support, for every loss
        "extensions": ["any_int_target"],      # inputs torch rejects that it accepts (extensions.py)
        "strict_errors": True,                 # an invalid input must raise torch's exception *type*
        "array_type": "numpy",                 # what the functions are given: "numpy", "torch" or "jax"
        "losses": {"cross_entropy": {"exclude": ["prob_target"]}},   # the same keys per loss
    }

This module imports only the standard library and NumPy: it runs inside the
worker processes, before a candidate (and Numba) is imported.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import shutil
import sys

from conformance import losses as _registry
from conformance import relations as _relations
from conformance.extensions import EXTENSION_LOSSES, EXTENSIONS

LOSSES = _registry.LOSSES
#: Built-in specs -> the module holding the functions and the CONFORMANCE declaration. nbxent's
#: backends are re-exported unchanged by small adapter modules that carry their declarations.
BUILTIN = {"nbxent": "conformance.nbxent_candidate", "nbxent.cuda": "conformance.nbxent_cuda_candidate",
           "torch": "conformance.torch_candidate"}

#: Feature names a candidate can support per loss (docs/candidates.md has one line on each); from the registry.
KEYWORD_FEATURES = _registry.KEYWORD_FEATURES
LOSS_FEATURES = {spec.name: spec.features for spec in _registry.all_specs()}
_DECL_KEYS = {"dtypes", "max_ndim", "max_classes", "reductions", "exclude", "extensions", "losses",
              "strict_errors", "array_type"}
#: Array types a candidate can ask for; results of any type come back through ``np.asarray``.
ARRAY_TYPES = ("numpy", "torch", "jax")
_DTYPES = ("float16", "float32", "float64", "bfloat16")   # bfloat16: ml_dtypes, opt-in (--dtype)
#: Reductions torch accepts ('elementwise_mean' is its deprecated alias of 'mean', docs/semantics.md §3).
_REDUCTIONS = ("mean", "sum", "none", "elementwise_mean")


class CandidateLoadError(ImportError):
    """A candidate cannot be imported, or its CONFORMANCE declaration is malformed."""


def resolve(spec: str) -> tuple[str, str]:
    """(module name or file path, attribute) for a candidate spec."""
    if spec in BUILTIN:
        return BUILTIN[spec], ""
    target, _, attr = spec.partition(":")
    if not target:
        raise CandidateLoadError(f"candidate {spec!r}: empty module or file name")
    return target, attr


def load(spec: str):
    """Import the candidate named by ``spec`` and return the object holding its functions."""
    target, attr = resolve(spec)
    try:
        if target.endswith(".py") or os.sep in target or "/" in target:
            if not os.path.isfile(target):
                raise CandidateLoadError(f"candidate {spec!r}: no such file {target!r}")
            name = "conformance_candidate_" + os.path.splitext(os.path.basename(target))[0]
            mspec = importlib.util.spec_from_file_location(name, os.path.abspath(target))
            module = importlib.util.module_from_spec(mspec)
            sys.modules[name] = module
            mspec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except CandidateLoadError:
        raise
    except BaseException as exc:   # a candidate may raise anything at import, SystemExit included
        raise CandidateLoadError(f"candidate {spec!r}: import failed: {type(exc).__name__}: {exc}") from exc
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:
        raise CandidateLoadError(f"candidate {spec!r}: module {target!r} has no attribute {attr!r}") from None


#: Keywords torch does not have (docs/semantics.md §13.1): supported only when named in the signature,
#: since a ``**kwargs`` candidate usually forwards to torch, which rejects them.
_NAMED_ONLY = ("lse_square_scale", "softcap")


def _accepts(fn, keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):      # no signature (C function): assume torch's keywords
        return keyword not in _NAMED_ONLY
    if keyword in _NAMED_ONLY:
        return keyword in params
    return keyword in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _check_decl(decl, where: str) -> None:
    if not isinstance(decl, dict):
        raise CandidateLoadError(f"{where}: CONFORMANCE must be a dict, got {type(decl).__name__}")
    unknown = set(decl) - _DECL_KEYS
    if unknown:
        raise CandidateLoadError(f"{where}: unknown CONFORMANCE keys {sorted(unknown)}; known: {sorted(_DECL_KEYS)}")
    for d in decl.get("dtypes", ()):
        if d not in _DTYPES:
            raise CandidateLoadError(f"{where}: CONFORMANCE dtype {d!r} not one of {_DTYPES}")
    for r in decl.get("reductions", ()):
        if r not in _REDUCTIONS:
            raise CandidateLoadError(f"{where}: CONFORMANCE reduction {r!r} not one of {_REDUCTIONS}")
    known = set().union(*LOSS_FEATURES.values())
    for f in decl.get("exclude", ()):
        if f not in known:
            raise CandidateLoadError(f"{where}: CONFORMANCE feature {f!r} unknown; known: {sorted(known)}")
    for e in decl.get("extensions", ()):
        if e not in EXTENSIONS:
            raise CandidateLoadError(f"{where}: CONFORMANCE extension {e!r} unknown; known: {sorted(EXTENSIONS)}")
    if decl.get("array_type", "numpy") not in ARRAY_TYPES:
        raise CandidateLoadError(f"{where}: CONFORMANCE array_type {decl['array_type']!r} not one of {ARRAY_TYPES}")
    for loss, sub in decl.get("losses", {}).items():
        if loss not in LOSSES:
            raise CandidateLoadError(f"{where}: CONFORMANCE loss {loss!r} not one of {LOSSES}")
        if "losses" in sub:
            raise CandidateLoadError(f"{where}: CONFORMANCE['losses'][{loss!r}] cannot nest 'losses'")
        _check_decl(sub, f"{where}: CONFORMANCE['losses'][{loss!r}]")


def probe(obj, spec: str, dtypes=("float32", "float64")) -> dict:
    """What the candidate supports, per loss, as plain data (it crosses the worker pipe).

    Returns ``{loss: {"features": [...], "missing": [...], "dtypes": [...], "max_ndim": int,
    "max_classes": int, "reductions": [...], "extensions": [...]}}``; a loss the candidate does
    not define has ``features == []`` and ``missing == ["forward"]``. ``extensions`` lists the
    declared extensions that concern the loss (a per-loss list replaces the top-level one).
    ``relations`` lists the metamorphic checks of the loss's row the candidate offers
    (conformance/relations.py), ``relations_missing`` maps the others to why they do not apply;
    they do not need the loss function itself (a shard-statistics candidate may have none).
    """
    decl = getattr(obj, "CONFORMANCE", None) or {}
    _check_decl(decl, f"candidate {spec!r}")
    out = {}
    for loss in LOSSES:
        fn = getattr(obj, loss, None)
        sub = {**{k: v for k, v in decl.items() if k != "losses"}, **decl.get("losses", {}).get(loss, {})}
        why = {r: _relations.offered(obj, r) for r in _relations.of_loss(loss)}
        rel = {"relations": [r for r, w in why.items() if not w],
               "relations_missing": {r: w for r, w in why.items() if w},
               "relation_dtypes": [d for d in dtypes if d in sub.get("dtypes", ("float32", "float64"))]}
        if not callable(fn):
            out[loss] = {"features": [], "missing": ["forward"], "dtypes": [], "max_ndim": 0,
                         "max_classes": 0, "reductions": [], "extensions": [], "strict_errors": False, **rel}
            continue
        excluded = set(decl.get("exclude", ())) | set(sub.get("exclude", ()))
        feats = []
        for f in LOSS_FEATURES[loss]:
            if f in KEYWORD_FEATURES:
                ok = _accepts(fn, f)
            elif f == "backward":
                ok = callable(getattr(obj, _registry.get(loss).grad_name or loss + "_backward", None))
            else:
                ok = True
            if ok and f not in excluded:
                feats.append(f)
        declared = sub.get("dtypes", ("float32", "float64"))
        reds = list(sub.get("reductions", _REDUCTIONS)) if "reduction" in feats else ["mean"]
        out[loss] = {
            "features": feats,
            "missing": [f for f in LOSS_FEATURES[loss] if f not in feats],
            "dtypes": [d for d in dtypes if d in declared],
            "max_ndim": int(sub.get("max_ndim", 5)),
            "max_classes": int(sub.get("max_classes", 100_000)),
            "reductions": reds,
            "extensions": [e for e in EXTENSIONS if e in sub.get("extensions", ()) and loss in EXTENSION_LOSSES[e]],
            "strict_errors": bool(sub.get("strict_errors", False)),
            **rel,
        }
    return out


def has_gpu() -> bool:
    """Whether a CUDA driver seems present (checked without importing numba.cuda)."""
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def worker_env(spec: str) -> dict[str, str]:
    """Environment a candidate's worker sets before importing it.

    ``nbxent.cuda`` runs on the CUDA simulator when no GPU is present; the
    variable must be set before Numba is first imported, so only the worker sets it.
    ``JAX_ENABLE_X64=1`` (unless the user set it) makes a JAX candidate compute float64
    inputs in float64; JAX's default silently computes them in float32.
    """
    env = {}
    if spec == "nbxent.cuda" and not has_gpu() and "NUMBA_ENABLE_CUDASIM" not in os.environ:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    if "JAX_ENABLE_X64" not in os.environ:
        # JAX computes in float32 unless told otherwise, even on float64 inputs (docs/candidates.md)
        env["JAX_ENABLE_X64"] = "1"
    return env


def is_simulated(spec: str) -> bool:
    return spec == "nbxent.cuda" and (worker_env(spec).get("NUMBA_ENABLE_CUDASIM") == "1"
                                      or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1")
