"""CUDA backend of the linear cross-entropy chunk loop.

The chunk buffer, the targets and the cross-entropy live on the device:
``nbxent.cuda.cross_entropy_with_grad(..., out=chunk)`` writes the logit gradient
into the chunk in place. The GEMMs go through CuPy (cuBLAS) when it is installed
and a real device is in use, on zero-copy CuPy views of numba device arrays.
Without CuPy, and always under the Numba CUDA simulator (which has no cuBLAS),
the GEMMs run in NumPy on host copies of ``input`` and ``linear_weight``: the
chunk is copied out for each GEMM and its logits copied in, so the loop, the
device cross-entropy and the buffer discipline are the ones a GPU runs, and only
the matrix products move. Results are numba device arrays when any argument was
a device array, NumPy arrays otherwise (as everywhere in ``nbxent.cuda``).
"""
from __future__ import annotations

import numpy as np

from nbxent._linear import _chunks
from nbxent._linear._plan import plan_linear


def _cuda():
    import nbxent.cuda as nc

    if not nc.is_available():
        # the same ONE clear error nbxent.cuda raises (ImportError / RuntimeError)
        nc.cross_entropy(np.zeros((1, 1)), np.zeros(1, dtype=np.int64))
    from numba import cuda
    return cuda


def _simulator() -> bool:
    import os
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _cupy():
    if _simulator():
        return None
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def _is_device(obj) -> bool:
    return obj is not None and not isinstance(obj, np.ndarray) and (
        hasattr(obj, "__cuda_array_interface__") or bool(getattr(obj, "__cuda_ndarray__", False)))


def _as_numba(cuda, obj):
    return obj if getattr(obj, "__cuda_ndarray__", False) else cuda.as_cuda_array(obj)


def _host(cuda, obj):
    """A NumPy copy of a device array (a host array is returned as is)."""
    if obj is None or not _is_device(obj):
        return obj
    return _as_numba(cuda, obj).copy_to_host()


def _device(cuda, obj, dtype=None):
    """A C-contiguous numba device array for ``obj`` (device arrays are used in place)."""
    if obj is None:
        return None
    if _is_device(obj):
        d = _as_numba(cuda, obj)
        if dtype is not None and np.dtype(d.dtype) != np.dtype(dtype):
            d = cuda.to_device(d.copy_to_host().astype(dtype))
        if d.size and not d.is_c_contiguous():
            raise ValueError("argument is a non-contiguous device array; pass a C-contiguous one")
        return d
    return cuda.to_device(np.ascontiguousarray(obj, dtype=dtype))


class DeviceChunks:
    """Per-chunk steps on the device (see ``_chunks``). GEMMs: CuPy, else NumPy on the host."""

    def __init__(self, cuda, cp, plan, hidden, linear_weight, linear_bias, target, weight,
                 rows, want_grad, on_device):
        import nbxent.cuda as nc

        self.cuda, self.cp, self.nc, self.plan = cuda, cp, nc, plan
        self.on_device = on_device
        cd = plan.compute
        self.buf = cuda.device_array((min(plan.chunk, max(plan.n, 1)), plan.width), dtype=cd)
        if plan.prob:
            self.target = _device(cuda, target).reshape((plan.n, plan.c) + plan.out_features)
        else:
            self.target = cuda.to_device(rows)
        self.rows_host = rows
        self.weight = _device(cuda, weight)
        shape_w = (plan.width, plan.h)
        if cp is not None:      # everything stays on the device; CuPy views share the memory
            self.h = cp.asarray(_device(cuda, hidden)).reshape(plan.n, plan.h)
            self.w = cp.asarray(_device(cuda, linear_weight)).reshape(shape_w).astype(cd, copy=False)
            self.b = None if linear_bias is None else \
                cp.asarray(_device(cuda, linear_bias)).reshape(plan.width).astype(cd, copy=False)
            xp = cp
        else:                   # host GEMMs on host copies of the fixed operands
            self.h = np.asarray(_host(cuda, hidden)).reshape(plan.n, plan.h)
            self.w = np.asarray(_host(cuda, linear_weight)).reshape(shape_w).astype(cd, copy=False)
            self.b = None if linear_bias is None else \
                np.asarray(_host(cuda, linear_bias)).reshape(plan.width).astype(cd)
            xp = np
        self.xp = xp
        if want_grad:
            self.grad_hidden = xp.empty((plan.n, plan.h), dtype=cd)
            self.grad_weight = xp.zeros(shape_w, dtype=cd)
            self.grad_bias = xp.zeros(plan.width, dtype=np.float64) if plan.has_bias else None
            vb = _chunks.scratch_rows(plan, self.buf.shape[0])
            self.scratch = xp.empty((vb, plan.h), dtype=cd)

    def _rows(self, r0, r1):
        return self.h[r0:r1].astype(self.plan.compute, copy=False)

    def _chunk_xp(self, z):
        """The chunk as an ``xp`` array: a zero-copy CuPy view, or a host copy."""
        return self.cp.asarray(z) if self.cp is not None else z.copy_to_host()

    def logits(self, r0, r1):
        z = self.buf[:r1 - r0]
        if self.cp is not None:
            zc = self.cp.asarray(z)
            self.cp.matmul(self._rows(r0, r1), self.w.T, out=zc)
            if self.b is not None:
                zc += self.b
        else:
            zh = self._rows(r0, r1) @ self.w.T
            if self.b is not None:
                zh += self.b
            z.copy_to_device(np.ascontiguousarray(zh, dtype=self.plan.compute))
        return z

    def cross_entropy(self, z, r0, r1, want_grad):
        loss = _chunks.chunk_cross_entropy(self.nc, self.plan, z, self.target[r0:r1], self.weight,
                                           want_grad)
        return np.asarray(_host(self.cuda, loss), dtype=np.float64)

    def scale_valid_rows(self, z, r0, r1, s):
        # only for a 'mean' whose denominator is 0 or not finite: rare, done on the host
        p = self.plan
        g = _chunks.ce_view(self.plan, z).copy_to_host()
        valid = self.rows_host[r0:r1] != p.ignore_index
        with np.errstate(all="ignore"):
            np.multiply(g, g.dtype.type(s), out=g, where=valid[:, None, ...])
        z.copy_to_device(np.ascontiguousarray(g.reshape(z.shape)))

    def fold(self, z, r0, r1, first):
        _chunks.fold_into(self.xp, self.plan, self._chunk_xp(z), self._rows(r0, r1), self.w,
                          self.grad_hidden, self.grad_weight, self.grad_bias, self.scratch,
                          r0, r1, first)

    def _out(self, a, shape):
        p, cuda = self.plan, self.cuda
        a = a.astype(p.dtype, copy=False).reshape(shape)
        if self.cp is not None:
            a = self.cp.ascontiguousarray(a)
            return cuda.as_cuda_array(a) if self.on_device else self.cp.asnumpy(a)
        return cuda.to_device(np.ascontiguousarray(a)) if self.on_device else a

    def finish(self, scale):
        p = self.plan
        gh, gw, gb = self.grad_hidden, self.grad_weight, self.grad_bias
        if scale != 1.0:
            gh *= gh.dtype.type(scale)
            gw *= gw.dtype.type(scale)
            if gb is not None:
                gb *= scale
        out = (self._out(gh, (p.h,) if p.unbatched else (p.n, p.h)),
               self._out(gw, (p.c,) + p.out_features + (p.h,)),
               None if gb is None else self._out(gb, (p.c,) + p.out_features))
        return out


def run(fname, input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
        label_smoothing, chunk_size, want_grad):
    """``linear_cross_entropy`` on the CUDA backend; returns ``(loss, grads or None)``."""
    cuda = _cuda()
    plan, rows = plan_linear(fname, input, linear_weight, target, linear_bias, weight, reduction,
                             ignore_index, label_smoothing, chunk_size,
                             lambda: _host(cuda, target), lambda: _host(cuda, weight))
    on_device = any(_is_device(a) for a in (input, linear_weight, target, linear_bias, weight))
    backend = DeviceChunks(cuda, _cupy(), plan, input, linear_weight, linear_bias, target, weight,
                           rows, want_grad, on_device)
    loss, grads = _chunks.run(plan, backend, want_grad)
    if on_device:
        loss = cuda.to_device(np.array(loss, order="C"))   # ascontiguousarray would make 0-d 1-d
    return loss, grads
