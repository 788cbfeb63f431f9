"""Hypothesis strategies for loss cases: every random case the harness makes comes from here.

:func:`cases` draws a :class:`conformance.model.Case` for one loss, restricted
to the :class:`Features` a candidate supports (docs/semantics.md §14: a function without
``ignore_index`` never sees a target of -100, one without ``weight`` never gets
a weight). Structure (shapes, options, special values) is drawn by
hypothesis, so a failing case shrinks to few classes, few samples and plain
options; bulk data comes from a NumPy generator seeded by a drawn integer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from scipy.special import log_softmax

from conformance import losses
from conformance.candidates import KEYWORD_FEATURES, LOSS_FEATURES
from conformance.extensions import canonical
from conformance.model import Case
from conformance.worker import apply_layout

REDUCTIONS = ("mean", "sum", "none", "elementwise_mean")


@dataclass(frozen=True)
class Features:
    """What one candidate supports for one loss."""

    names: frozenset = field(default_factory=frozenset)
    dtypes: tuple = ("float32", "float64")
    max_ndim: int = 5
    max_classes: int = 100_000
    reductions: tuple = REDUCTIONS
    extensions: frozenset = field(default_factory=frozenset)   # declared extensions (extensions.py)
    strict_errors: bool = False                                 # declared: exception types must match torch's

    def has(self, name: str) -> bool:
        return name in self.names


def full_features(loss: str, dtypes=("float32", "float64")) -> Features:
    """Everything a loss can be asked to do (what torch supports)."""
    return Features(frozenset(LOSS_FEATURES[loss]), tuple(dtypes))


def features_from_probe(entry: dict) -> Features:
    """Features from one loss's entry of :func:`conformance.candidates.probe`."""
    return Features(frozenset(entry["features"]), tuple(entry["dtypes"]), entry["max_ndim"],
                    entry["max_classes"], tuple(entry["reductions"]), frozenset(entry.get("extensions", ())),
                    bool(entry.get("strict_errors", False)))


def case_features(case: Case) -> set[str]:
    """Features a case needs from a candidate (``backward`` is optional: only the gradient check needs it)."""
    a, kw = case.arrays, case.kwargs
    need = {k for k in KEYWORD_FEATURES if k in kw or k in a}
    x, t = a["input"], a["target"]
    if case.loss in ("cross_entropy", "nll_loss") and x.ndim >= 1:
        if case.loss == "cross_entropy" and t.shape == x.shape:
            need.add("prob_target")
        elif np.issubdtype(t.dtype, np.integer) and (t == -100).any():
            need.add("ignore_index")       # the default ignore_index is -100 (docs/semantics.md §14)
        need |= {"unbatched"} if x.ndim == 1 else {"spatial"} if x.ndim >= 3 else set()
        C = x.shape[0] if x.ndim == 1 else x.shape[1]
        if C > 1000:
            need.add("large_classes")
    if case.loss == "linear_cross_entropy":     # x is the hidden state: (H,) is one sample
        need |= {"unbatched"} if x.ndim == 1 else set()
        if np.issubdtype(t.dtype, np.floating):
            need.add("prob_target")
        elif np.issubdtype(t.dtype, np.integer) and (t == -100).any():
            need.add("ignore_index")
    if x.size == 0:
        need.add("empty")
    if any(np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all() for k, v in a.items() if k != "grad_output"):
        need.add("nonfinite")
    if any(not v.flags.c_contiguous for v in a.values()):
        need.add("noncontiguous")
    if case.expect_error:
        need.add("errors")
    return need


def fits(case: Case, f: Features) -> bool:
    """Whether the case may be sent to a candidate with features ``f``."""
    x = case.arrays["input"]
    if str(x.dtype) not in f.dtypes and (np.issubdtype(x.dtype, np.floating) or x.dtype.name == "bfloat16"):
        return False
    red = case.kwargs.get("reduction", "mean")
    if x.ndim > f.max_ndim or (red in REDUCTIONS and red not in f.reductions + ("elementwise_mean",)):
        return False
    if case.loss in ("cross_entropy", "nll_loss") and x.ndim >= 1:
        if (x.shape[0] if x.ndim == 1 else x.shape[1]) > f.max_classes:
            return False
    need = case_features(case)
    if case.expect_error and f.extensions and canonical(case.loss, case.arrays, f.extensions)[1]:
        need.discard("errors")      # a declared extension may make it a value case (judge.py decides)
    return need <= set(f.names)


#: Largest input scale drawn for float16: logits of 100 sigma stay far below half's max (65504) and
#: so do the sums of a few hundred such losses; 1e4 would overflow them (docs/semantics.md §2.7: torch's half sums
#: are not a behaviour worth fuzzing), and 1e-30 would be 0. Overflow is a float32/float64 topic.
F16_MAX_SCALE = 100.0


def _scales(dtype: str, scales: list[float]) -> list[float]:
    if dtype == "float16":
        return [s for s in scales if 1e-3 <= s <= F16_MAX_SCALE]
    return scales


def _grad_output(draw, rng, f, out_shape, dtype):
    if not f.has("backward"):
        return {}
    g = rng.standard_normal(out_shape) if out_shape else np.asarray(draw(st.sampled_from([1.0, 0.5, -2.0])))
    return {"grad_output": np.asarray(g, dtype=dtype)}


def rare(draw, n: int) -> bool:
    """True about once in ``n`` draws, and False when hypothesis shrinks the draw (it shrinks to 0):
    rare options are drawn this way so a shrunk case carries only the options its failure needs."""
    return draw(st.integers(0, n - 1)) == n - 1


#: Reduction strings torch rejects (docs/semantics.md §3: ValueError); 'elementwise_mean' is accepted.
BAD_REDUCTIONS = ("avg", "Mean", "", "sum ", None)


def _reduction(draw, f, kw):
    if f.has("reduction"):
        plain = [r for r in f.reductions if r != "elementwise_mean"] or list(f.reductions)
        kw["reduction"] = draw(st.sampled_from(plain))
        if "elementwise_mean" in f.reductions and rare(draw, 20):
            kw["reduction"] = "elementwise_mean"          # torch's deprecated alias of 'mean'
        elif f.has("errors") and rare(draw, 25):
            kw["reduction"] = draw(st.sampled_from(BAD_REDUCTIONS))
    return kw.get("reduction", "mean")


def _inject_nonfinite(draw, rng, x):
    kind = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    flat = x.reshape(-1)
    if flat.size:
        flat[rng.integers(0, flat.size, size=max(1, flat.size // 8))] = kind


def _other_float(dtype: str) -> str:
    return "float64" if dtype != "float64" else "float32"


@st.composite
def class_case(draw, loss: str, f: Features) -> Case:
    """A cross_entropy / nll_loss case; every option off when hypothesis shrinks it."""
    dtype = draw(st.sampled_from(f.dtypes))
    layouts = ["batch"] + [n for n in ("unbatched", "spatial") if f.has(n) and (n != "spatial" or f.max_ndim >= 3)]
    layout = draw(st.sampled_from(layouts))
    C = draw(st.integers(1, 8))
    if f.has("large_classes") and dtype != "float16" and layout != "spatial" and rare(draw, 10):
        # not in float16: torch's half-precision sums over C > 1000 classes overflow (docs/semantics.md §2.7);
        # not spatial: at most 2 x 20000 elements, within the exact oracle's reach for non-finite cases
        C = draw(st.sampled_from([1000, 4096, 20000]))
    C = min(C, f.max_classes)
    N = draw(st.integers(1, 6 if C <= 1000 else 2))
    if f.has("empty") and rare(draw, 12):
        N = 0
    spatial = ()
    if layout == "spatial":
        spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=min(2, f.max_ndim - 2))))
    shape = (C,) if layout == "unbatched" else (N, C) + spatial
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from(_scales(dtype, [1.0, 1e-3, 10.0, 100.0, 1e4, 1e-30, 1e30])))
    x = rng.standard_normal(shape) * scale
    if draw(st.booleans()):
        x = np.round(x / scale * 2) * scale / 2                  # ties between classes
    sshape = () if layout == "unbatched" else (N,) + spatial
    t = rng.integers(0, C, size=sshape).astype(np.int64)
    kw: dict = {}
    arrays: dict = {}
    prob = loss == "cross_entropy" and f.has("prob_target") and rare(draw, 4)
    if prob:
        p = rng.dirichlet(np.ones(C), size=int(np.prod(sshape, dtype=np.int64))) if draw(st.booleans()) \
            else rng.uniform(0, 1, (int(np.prod(sshape, dtype=np.int64)), C))
        p = p.reshape(sshape + (C,))
        target = np.moveaxis(p, -1, 0 if layout == "unbatched" else 1).astype(dtype)
    else:
        if draw(st.booleans()):                                   # confident rows: target logit far above the rest
            xt = np.moveaxis(x, 0 if layout == "unbatched" else 1, -1)
            idx = np.unravel_index(np.arange(t.size), sshape) if sshape else ()
            margin = draw(st.sampled_from([10.0, 30.0, 100.0]))
            # float16: at most 100 above the row max, or a smoothed loss (eps * the margin per row) overflows
            lift = margin * (1.0 if dtype == "float16" else max(scale, 1.0))
            xt[idx + (t.reshape(-1),)] = xt.max(axis=-1).reshape(-1) + lift
        if f.has("ignore_index") and t.size and rare(draw, 3):
            ii = -100
            if draw(st.booleans()):
                ii = draw(st.integers(0, C - 1))
                kw["ignore_index"] = ii
            mask = np.ones(t.shape, bool) if rare(draw, 5) else rng.random(t.shape) < 0.4
            t[mask] = ii
        if f.has("errors") and t.size and rare(draw, 12):
            # an out-of-range target (docs/semantics.md §4: IndexError for every reduction); never the ignore_index
            bad = draw(st.sampled_from([C, -1, C + 7, -2]))
            t.reshape(-1)[rng.integers(0, t.size)] = bad if bad != kw.get("ignore_index", -100) else C
        if layout == "unbatched" and C > 1 and rare(draw, 5):
            t = t.reshape(1)      # the 1-element 1-D target torch also accepts (C = 1 would make it prob-shaped)
        if f.has("errors") and layout == "batch" and N >= 1 and rare(draw, 30):
            # a size-1 batch with a longer target: torch raises (ValueError); a broadcasting kernel does not
            x = x[:1]
            t = rng.integers(0, C, size=draw(st.integers(2, 4))).astype(np.int64)
        if f.has("errors") and rare(draw, 25):
            t = t.astype(draw(st.sampled_from([np.int32, np.uint8, np.int16])))   # torch: int64 (and 2-D uint8) only
        target = t
    if loss == "nll_loss" and draw(st.booleans()):
        x = log_softmax(x, axis=0 if layout == "unbatched" else 1)   # real log-probabilities
    if f.has("nonfinite") and rare(draw, 6):
        _inject_nonfinite(draw, rng, x)
    if f.has("weight") and draw(st.booleans()):
        w = rng.uniform(0.0, 2.0, C)
        if draw(st.booleans()):
            w[rng.random(C) < 0.3] = 0.0
        wdtype = dtype
        if f.has("errors") and not prob and rare(draw, 15):
            wdtype = _other_float(dtype)                          # torch: the weight must be the input's dtype
        arrays["weight"] = w.astype(wdtype)
    if loss == "cross_entropy" and f.has("label_smoothing") and draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 1.0, 0.1, float("nan")]) | st.floats(0.0, 1.0))
    # the LLM options (docs/semantics.md §13.1): caps from tiny to huge, z from PaLM's 1e-4 to large
    if loss == "cross_entropy" and f.has("softcap") and rare(draw, 3):
        kw["softcap"] = draw(st.sampled_from([30.0, 5.0, 1.0, 1e-3, 1e6]) | st.floats(0.05, 100.0))
    if loss == "cross_entropy" and f.has("lse_square_scale") and rare(draw, 3):
        kw["lse_square_scale"] = draw(st.sampled_from([1e-4, 1e-2, 0.5]) | st.floats(0.0, 1.0))
    red = _reduction(draw, f, kw)
    out_shape = sshape if (red == "none" and layout != "unbatched") else ()
    x = x.astype(dtype)
    if f.has("noncontiguous"):
        x = apply_layout(x, draw(st.sampled_from(["C", "F", "strided"])))
    arrays = {"input": x, "target": target, **arrays}
    res_dtype = np.result_type(*[a.dtype for k, a in arrays.items() if k != "target" or prob]) if prob else x.dtype
    arrays.update(_grad_output(draw, rng, f, out_shape, res_dtype))
    return Case(loss, arrays, kw)


@st.composite
def binary_case(draw, loss: str, f: Features) -> Case:
    """A binary_cross_entropy(_with_logits) case; every option off when hypothesis shrinks it."""
    dtype = draw(st.sampled_from(f.dtypes))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=min(3, f.max_ndim))))
    if f.has("empty") and shape and rare(draw, 12):
        shape = shape[:-1] + (0,)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays: dict = {}
    kw: dict = {}
    binary_y = draw(st.booleans())
    y = (rng.random(shape) < 0.5).astype(float) if binary_y else rng.uniform(0, 1, shape)
    if loss == "binary_cross_entropy":
        x = rng.uniform(0, 1, shape)
        # not in float16: 1e-7 is a half subnormal, where torch's half BCE gradient is not a behaviour
        # worth fuzzing (docs/semantics.md §7.4: it flushes and overflows in intermediate steps)
        special = draw(st.sampled_from(["none", "edges"] + (["tiny"] if dtype != "float16" else [])))
        if special == "edges" and x.size:                         # exactly 0 and 1: the -100 clamp
            flat = x.reshape(-1)
            flat[rng.random(x.size) < 0.3] = 0.0
            flat[rng.random(x.size) < 0.3] = 1.0
        elif special == "tiny" and x.size:
            x.reshape(-1)[rng.random(x.size) < 0.5] = draw(st.sampled_from([1e-30, 1e-7, 1 - 1e-7]))
    else:
        scale = draw(st.sampled_from(_scales(dtype, [1.0, 10.0, 100.0, 1e4, 1e-3])))
        x = rng.standard_normal(shape) * scale
        if f.has("nonfinite") and rare(draw, 6):
            _inject_nonfinite(draw, rng, x)
        if f.has("pos_weight") and draw(st.booleans()):
            pshape = draw(st.sampled_from(["scalar", "last", "full"])) if shape else "scalar"
            ps = () if pshape == "scalar" else shape[-1:] if pshape == "last" else shape
            arrays["pos_weight"] = np.asarray(rng.uniform(0.0, 3.0, ps), dtype=dtype)
    if f.has("weight") and draw(st.booleans()):
        wshape = draw(st.sampled_from(["last", "full", "keepdim"])) if shape else "scalar"
        ws = () if wshape == "scalar" else shape[-1:] if wshape == "last" else shape if wshape == "full" \
            else shape[:1] + (1,) * (len(shape) - 1)
        arrays["weight"] = np.asarray(rng.uniform(0.0, 2.0, ws), dtype=dtype)
    red = _reduction(draw, f, kw)
    x = x.astype(dtype)
    if f.has("noncontiguous") and shape:
        x = apply_layout(x, draw(st.sampled_from(["C", "F", "strided"])))
    ydtype = dtype
    if loss == "binary_cross_entropy" and f.has("errors") and rare(draw, 15):
        # mixed dtypes: torch's BCE raises (docs/semantics.md §2.5). Mixed valid cases (BCE-with-logits,
        # probability targets) compute in the input's precision and return the wider dtype: not generated,
        # since the tolerance of the wider dtype does not apply to them.
        ydtype = _other_float(dtype)
    y = y.astype(ydtype)
    if f.has("errors") and len(shape) >= 1 and rare(draw, 12):
        # a target that broadcasts to the input's shape but is not that shape: torch raises (ValueError)
        y = y[:1] if shape[0] > 1 else y[None]
    arrays = {"input": np.asarray(x), "target": np.asarray(y), **arrays}
    res = str(x.dtype) if loss == "binary_cross_entropy" else str(y.dtype)
    arrays.update(_grad_output(draw, rng, f, shape if red == "none" else (), res))
    return Case(loss, arrays, kw)


def cases(loss: str, features: Features) -> st.SearchStrategy[Case]:
    """Random cases for ``loss`` within ``features``.

    Valid by construction, except that a candidate supporting ``errors`` sometimes gets
    an input torch rejects (an out-of-range target, a longer target for a size-1 batch, a
    BCE target that only broadcasts, a bad reduction string, a mixed dtype): the oracle
    then names the exception.
    """
    return losses.get(loss).entry("strategy")(loss, features)
