"""The benchmark cases: inputs, the nbxent call, the torch calls, the work per case.

A case is data (loss, kind, shape, dtype, options); the functions below turn it into
zero-argument callables that each run the operation once on arrays built here, so the
timing loop, the accuracy check, the memory probe and the first-call probe share one
definition. nbxent calls go through the public API only. Every callable returns
``(loss, grad)`` (``grad`` None for a forward) so the accuracy check can read any
candidate's result the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FWD, FWDBWD = "fwd", "fwd+bwd"
LOSSES = ("ce", "nll", "bce", "bcewl")
_NAMES = {"ce": "cross_entropy", "nll": "nll_loss", "bce": "binary_cross_entropy",
          "bcewl": "binary_cross_entropy_with_logits"}

#: Transcendentals per input element that a kernel cannot avoid, by loss (the gradient of
#: a fused call reuses them): the work of the compute roof (benchmarks/_harness.py).
#: Per-row terms (one log per cross-entropy row) are left out: C times fewer.
#: The vectorized transcendentals each loss's CPU kernel evaluates per element (the compute
#: roof, benchmarks/_harness.py): cross-entropy's exp(x - max) (``exp_below``), BCE's log(x)
#: and log1p(-x) (``log1m_f32``), BCE with logits' exp(-|x|) (``exp_f32``) and log1p of it
#: (``log1p_unit_f32``, arguments in [0, 1]).
TRANSCENDENTALS = {"ce": ("exp_below",), "nll": (), "bce": ("log", "log1m"), "bcewl": ("exp", "log1p_unit")}


@dataclass(frozen=True)
class Case:
    loss: str                      # one of LOSSES
    kind: str                      # FWD or FWDBWD
    shape: tuple
    dtype: str = "float32"
    options: dict = field(default_factory=dict, hash=False, compare=False)
    tag: str = ""                  # shown after the operation name
    big: bool = False              # skipped by --quick
    extra: bool = False            # only with --all (not a row of the speed targets)

    @property
    def op(self):
        name = f"{self.loss} {self.kind}"
        return f"{name} [{self.tag}]" if self.tag else name

    @property
    def key(self):
        shape = "x".join(map(str, self.shape))
        return f"{self.loss}-{self.kind}-{shape}-{self.dtype}" + (f"-{self.tag}" if self.tag else "")

    @property
    def numel(self):
        return int(np.prod(self.shape))


def default_cases():
    """Every row of the speed targets, then (``extra``) option and dtype variants."""
    big2d = ((8192, 32000), (4096, 128256))
    kdim = (8, 21, 256, 256)
    cases = [Case("ce", FWD, (32, 10)), Case("ce", FWDBWD, (32, 10)),
             Case("ce", FWD, (1024, 1000)), Case("ce", FWDBWD, (1024, 1000), extra=True)]
    cases += [Case("ce", FWD, s, big=True) for s in big2d]
    cases += [Case("ce", FWDBWD, s, big=True) for s in big2d]
    cases.append(Case("ce", FWDBWD, (8192, 32000), dtype="float64", big=True))
    cases.append(Case("ce", FWD, (8192, 32000), dtype="float64", big=True, extra=True))
    cases += [Case("ce", FWD, kdim, big=True), Case("ce", FWDBWD, kdim, big=True)]
    for kind in (FWD, FWDBWD):
        cases.append(Case("ce", kind, (8192, 32000), options=dict(weight=True, ignore_index=-100,
                          ignore_fraction=0.1, label_smoothing=0.1), tag="weight+ignore+smooth",
                          big=True, extra=True))
    for loss in ("nll", "bce", "bcewl"):
        cases.append(Case(loss, FWDBWD, (8192, 4096), big=True))
    return cases


def make_inputs(case, seed=0):
    """NumPy inputs for ``case``: x, target, optional weight (C,)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(case.dtype)
    shape = case.shape
    opts = case.options
    if case.loss in ("ce", "nll"):
        c = shape[1]
        # in place: a 4096x128256 input is 2.1 GB, and two temporaries of it took seconds
        x = rng.standard_normal(shape, dtype=np.float64 if dt == np.float64 else np.float32)
        x = x.astype(dt, copy=False)
        x *= 3
        tshape = (shape[0],) + tuple(shape[2:])
        t = rng.integers(0, c, tshape)
        if opts.get("ignore_fraction"):
            t[rng.random(tshape) < opts["ignore_fraction"]] = opts.get("ignore_index", -100)
        w = rng.uniform(0.5, 2.0, c).astype(dt) if opts.get("weight") else None
        return dict(x=x, t=t, w=w)
    y = rng.random(shape, dtype=np.float32).astype(dt)
    if case.loss == "bce":
        x = rng.uniform(0.01, 0.99, shape).astype(dt)
    else:
        x = (rng.standard_normal(shape, dtype=np.float32) * 3).astype(dt)
    return dict(x=x, t=y, w=None)


def bytes_moved(case, arrays):
    """Logits (and BCE targets, int64 class targets) read once; gradient written once for fwd+bwd."""
    x, t = arrays["x"], arrays["t"]
    n = x.nbytes + t.nbytes
    return n + x.nbytes if case.kind == FWDBWD else n


def _kwargs(case, arrays, conv=lambda a: a):
    kw = {}
    if arrays["w"] is not None:
        kw["weight"] = conv(arrays["w"])
    if "ignore_index" in case.options:
        kw["ignore_index"] = case.options["ignore_index"]
    if case.options.get("label_smoothing"):
        kw["label_smoothing"] = case.options["label_smoothing"]
    return kw


def nbxent_call(case, arrays):
    """Zero-argument callable running nbxent once (fused path writes into a preallocated buffer)."""
    import nbxent

    x, t = arrays["x"], arrays["t"]
    kw = _kwargs(case, arrays)
    name = _NAMES[case.loss]
    if case.kind == FWD:
        fn = getattr(nbxent, name)
        return lambda: (fn(x, t, **kw), None)
    fn = getattr(nbxent, name + "_with_grad")
    buf = np.empty_like(x)
    return lambda: fn(x, t, out=buf, **kw)


def torch_call(case, arrays, compiled=False):
    """Zero-argument callable running torch once: forward under no_grad, or forward + backward.

    ``compiled``: the loss goes through ``torch.compile(dynamic=False)`` (Inductor's fused
    C++), compiled by the first call, which the caller times separately. Each case gets a
    fresh compilation (``torch._dynamo.reset()`` first), so a shape never reuses another's.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(arrays["x"])
    t = torch.from_numpy(arrays["t"])
    kw = _kwargs(case, arrays, torch.from_numpy)
    fn = getattr(F, _NAMES[case.loss])
    if compiled:
        torch._dynamo.reset()
        fn = torch.compile(fn, dynamic=False)
    if case.kind == FWD:
        def fwd():
            with torch.no_grad():
                return fn(x, t, **kw), None
        return fwd
    # A leaf of its own that shares the NumPy buffer (nothing writes to it): the eager and
    # the compiled callables of one case must not share a .grad slot.
    xg = torch.from_numpy(arrays["x"]).requires_grad_(True)

    def fwd_bwd():
        xg.grad = None          # torch allocates a fresh gradient, as in a training step
        loss = fn(xg, t, **kw)
        loss.backward()
        return loss.detach(), xg.grad

    def release():
        xg.grad = None
    fwd_bwd.release = release   # drops the last gradient (memory probe, accuracy check)
    return fwd_bwd
