"""NumPy backend of the linear cross-entropy chunk loop (GEMMs through NumPy's BLAS)."""
from __future__ import annotations

import numpy as np

import nbxent
from nbxent._linear import _chunks


class HostChunks:
    """Buffers and per-chunk steps for NumPy arrays (see ``_chunks`` for the algorithm).

    Memory above the inputs and the returned gradients: the ``(chunk, V)`` logits
    buffer (the CE gradient is written into it in place), a ``(vb, H)`` scratch for
    the weight-gradient accumulation with ``vb * H <= chunk * V`` (so at most a
    second chunk's worth), and O(N + V) float64 vectors. float16 inputs are computed
    in float32 (linear_weight converted once) and the results rounded once.
    """

    def __init__(self, plan, hidden, linear_weight, linear_bias, target_rows, weight,
                 want_grad):
        self.plan = plan
        cd = plan.compute
        self.hidden = hidden.reshape(plan.n, plan.h)
        self.w = linear_weight.reshape(plan.width, plan.h).astype(cd, copy=False)
        self.b = None if linear_bias is None else linear_bias.reshape(plan.width).astype(cd)
        self.target = target_rows
        self.weight = weight
        self.buf = np.empty((min(plan.chunk, max(plan.n, 1)), plan.width), dtype=cd)
        if want_grad:
            self.grad_hidden = np.empty((plan.n, plan.h), dtype=cd)
            self.grad_weight = np.zeros((plan.width, plan.h), dtype=cd)
            self.grad_bias = np.zeros(plan.width, dtype=np.float64) if plan.has_bias else None
            vb = _chunks.scratch_rows(plan, self.buf.shape[0])
            self.scratch = np.empty((vb, plan.h), dtype=cd)

    def _rows(self, r0, r1):
        return self.hidden[r0:r1].astype(self.plan.compute, copy=False)

    def logits(self, r0, r1):
        z = self.buf[:r1 - r0]
        np.matmul(self._rows(r0, r1), self.w.T, out=z)
        if self.b is not None:
            z += self.b
        return z

    def cross_entropy(self, z, r0, r1, want_grad):
        loss = _chunks.chunk_cross_entropy(nbxent, self.plan, z, self.target[r0:r1], self.weight,
                                           want_grad)
        return np.asarray(loss, dtype=np.float64)

    def scale_valid_rows(self, z, r0, r1, s):
        p = self.plan
        x = _chunks.ce_view(self.plan, z)
        valid = self.target[r0:r1] != p.ignore_index
        with np.errstate(all="ignore"):
            np.multiply(x, x.dtype.type(s), out=x, where=valid[:, None, ...])

    def fold(self, g, r0, r1, first):
        _chunks.fold_into(np, self.plan, g, self._rows(r0, r1), self.w, self.grad_hidden,
                          self.grad_weight, self.grad_bias, self.scratch, r0, r1, first)

    def finish(self, scale):
        p = self.plan
        gh, gw, gb = self.grad_hidden, self.grad_weight, self.grad_bias
        if scale != 1.0:
            with np.errstate(all="ignore"):
                gh *= gh.dtype.type(scale)
                gw *= gw.dtype.type(scale)
                if gb is not None:
                    gb *= scale
        gh = gh.astype(p.dtype, copy=False).reshape((p.h,) if p.unbatched else (p.n, p.h))
        gw = gw.astype(p.dtype, copy=False).reshape((p.c,) + p.out_features + (p.h,))
        if gb is not None:
            gb = gb.astype(p.dtype).reshape((p.c,) + p.out_features)
        return gh, gw, gb
