"""The benchmark cases: inputs, the nbxent call, the torch call, the bytes moved.

A case is data (loss, kind, shape, dtype, options); ``prepare`` turns it into
zero-argument callables that each run the operation once on arrays built
here, so the timing loop, the memory probe and the first-call probe share one
definition. nbxent calls go through the public API only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FWD, FWDBWD = "fwd", "fwd+bwd"
LOSSES = ("ce", "nll", "bce", "bcewl")
_NAMES = {"ce": "cross_entropy", "nll": "nll_loss", "bce": "binary_cross_entropy",
          "bcewl": "binary_cross_entropy_with_logits"}


@dataclass(frozen=True)
class Case:
    loss: str                      # one of LOSSES
    kind: str                      # FWD or FWDBWD
    shape: tuple
    dtype: str = "float32"
    options: dict = field(default_factory=dict, hash=False, compare=False)
    tag: str = ""                  # shown after the operation name
    big: bool = False              # skipped by --quick

    @property
    def op(self):
        name = f"{_NAMES[self.loss]} {self.kind}"
        return f"{name} [{self.tag}]" if self.tag else name

    @property
    def key(self):
        shape = "x".join(map(str, self.shape))
        return f"{self.loss}-{self.kind}-{shape}-{self.dtype}" + (f"-{self.tag}" if self.tag else "")


def default_cases():
    ce_shapes = [((32, 10), False), ((1024, 1000), False), ((8192, 32000), True),
                 ((4096, 128256), True), ((8, 21, 256, 256), True)]
    cases = []
    for kind in (FWD, FWDBWD):
        cases += [Case("ce", kind, s, big=b) for s, b in ce_shapes]
        cases.append(Case("ce", kind, (8192, 32000), options=dict(weight=True, ignore_index=-100,
                          ignore_fraction=0.1, label_smoothing=0.1), tag="weight+ignore+smooth", big=True))
        cases.append(Case("ce", kind, (8192, 32000), dtype="float64", big=True))
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


def _nbxent_kwargs(case, arrays):
    kw = {}
    if arrays["w"] is not None:
        kw["weight"] = arrays["w"]
    if "ignore_index" in case.options:
        kw["ignore_index"] = case.options["ignore_index"]
    if case.options.get("label_smoothing"):
        kw["label_smoothing"] = case.options["label_smoothing"]
    return kw


def nbxent_call(case, arrays):
    """Zero-argument callable running nbxent once (fused path writes into a preallocated buffer)."""
    import nbxent

    x, t = arrays["x"], arrays["t"]
    kw = _nbxent_kwargs(case, arrays)
    name = _NAMES[case.loss]
    if case.kind == FWD:
        fn = getattr(nbxent, name)
        return lambda: fn(x, t, **kw)
    fn = getattr(nbxent, name + "_with_grad")
    buf = np.empty_like(x)
    return lambda: fn(x, t, out=buf, **kw)


def torch_call(case, arrays):
    """Zero-argument callable running torch once: forward under no_grad, or forward + backward."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(arrays["x"])
    t = torch.from_numpy(arrays["t"])
    kw = {}
    if arrays["w"] is not None:
        kw["weight"] = torch.from_numpy(arrays["w"])
    if "ignore_index" in case.options:
        kw["ignore_index"] = case.options["ignore_index"]
    if case.options.get("label_smoothing"):
        kw["label_smoothing"] = case.options["label_smoothing"]
    fn = getattr(F, _NAMES[case.loss])
    if case.kind == FWD:
        def fwd():
            with torch.no_grad():
                return fn(x, t, **kw)
        return fwd
    xg = x.requires_grad_(True)  # shares the NumPy buffer; nothing writes to it

    def fwd_bwd():
        xg.grad = None          # torch allocates a fresh gradient, as in a training step
        loss = fn(xg, t, **kw)
        loss.backward()
        return loss

    def release():
        xg.grad = None
    fwd_bwd.release = release   # lets the memory probe drop the warm-up's gradient
    return fwd_bwd
