"""Worker processes: each candidate runs in its own process, one call at a time.

A :class:`Worker` starts a persistent process (multiprocessing *spawn*
context: forking after an OpenMP parallel region kills the child) that imports
the candidate once and then serves calls sent through a pipe. The parent
never imports the candidate. Per call:

* the candidate returns      -> ``Outcome('ok', value)``
* the candidate raises       -> ``Outcome('raised', exc_type=..., message=...)``
* the process dies           -> ``Outcome('crash')`` (segfault, abort, ``os._exit``); restarted
* no answer in ``timeout_s`` -> ``Outcome('timeout')``; killed and restarted

The worker also reports any input array the candidate modified in place.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

from conformance.candidates import CandidateLoadError

_ARRAY_KEYWORDS = ("weight", "pos_weight")
#: Block size asked of a candidate on the CUDA simulator (measured: a CE call on a (4, 5) input
#: takes 3.1 s at nbxent.cuda's default of 256 threads, 0.35 s at 16).
SIMULATOR_THREADS_PER_BLOCK = 16


@dataclass
class Outcome:
    status: str                          # 'ok' | 'raised' | 'crash' | 'timeout'
    value: np.ndarray | None = None
    exc_type: str = ""
    message: str = ""
    modified: list[str] = field(default_factory=list)


def _to_numpy(res):
    if hasattr(res, "copy_to_host"):              # numba device array
        res = res.copy_to_host()
    elif hasattr(res, "detach") and hasattr(res, "cpu"):   # a torch tensor
        res = res.detach().cpu().numpy()
    return np.asarray(res)


def apply_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values as ``a`` in another memory layout: 'C', 'F' or 'strided' (every other element)."""
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return np.ascontiguousarray(a) if a.ndim else a


def layout_of(a: np.ndarray) -> str:
    if a.flags.c_contiguous:
        return "C"
    return "F" if a.flags.f_contiguous else "strided"


def _relayout(arrays: dict, layouts: dict) -> dict:
    # pickling makes strided arrays contiguous: rebuild the layout the case was made with
    return {k: apply_layout(v, layouts.get(k, "C")) for k, v in arrays.items()}


def _serve(conn, spec: str, env: dict, dtypes: tuple) -> None:
    """Worker main loop (runs in the child process)."""
    os.environ.update(env)
    # NaN/inf cases make NumPy-based candidates (and the CUDA simulator) warn on every call;
    # the verdict is in the returned values, so the console is kept for the harness's own output.
    warnings.simplefilter("ignore")
    from conformance import candidates
    try:
        obj = candidates.load(spec)
        info = candidates.probe(obj, spec, dtypes)
        # On the CUDA simulator every thread is a Python thread: a candidate that lets the
        # block size be chosen (nbxent.cuda does) runs ~10x faster with small blocks.
        if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and callable(getattr(obj, "set_threads_per_block", None)):
            obj.set_threads_per_block(SIMULATOR_THREADS_PER_BLOCK)
    except BaseException as exc:
        conn.send(("load_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", info))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        fname, arrays, kwargs, layouts, backward = msg
        arrays = _relayout(arrays, layouts)
        before = {k: v.copy() for k, v in arrays.items()}
        kw = dict(kwargs)
        kw.update({k: arrays[k] for k in _ARRAY_KEYWORDS if k in arrays})
        try:
            fn = getattr(obj, fname)
            if backward:
                res = fn(arrays["grad_output"], arrays["input"], arrays["target"], **kw)
            else:
                res = fn(arrays["input"], arrays["target"], **kw)
            res = _to_numpy(res)
            reply = ("ok", res)
        except Exception as exc:
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            reply = ("raised", type(exc).__name__, tb[:800])
        modified = [k for k in before if not np.array_equal(before[k], arrays[k], equal_nan=True)]
        conn.send(reply + (modified,))


def _signal_name(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Worker:
    """A persistent process serving one candidate."""

    def __init__(self, spec: str, env: dict | None = None, dtypes=("float32", "float64"),
                 start_timeout_s: float = 120.0):
        self.spec, self.env, self.dtypes = spec, dict(env or {}), tuple(dtypes)
        self.start_timeout_s = start_timeout_s
        self.info: dict | None = None
        self.restarts = 0
        self._proc = self._conn = None
        self.start()

    def start(self) -> None:
        """Start the process (returns at once; :meth:`wait_ready` collects the probe)."""
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.spec, self.env, self.dtypes), daemon=True,
                                 name=f"conformance-worker[{self.spec}]")
        self._proc.start()
        child.close()
        self._ready = False
        self._pending = 0

    def wait_ready(self) -> dict:
        """Block until the candidate is imported; returns its probe (see candidates.probe)."""
        if self._ready:
            return self.info
        if not self._conn.poll(self.start_timeout_s):
            self.kill()
            raise CandidateLoadError(f"candidate {self.spec!r}: import took longer than {self.start_timeout_s:g} s")
        try:
            msg = self._conn.recv()
        except EOFError:
            self._proc.join(5)
            code = self._proc.exitcode
            raise CandidateLoadError(f"candidate {self.spec!r}: worker died while importing it "
                                     f"({_signal_name(code)})") from None
        if msg[0] == "load_error":
            self.kill()
            raise CandidateLoadError(msg[1])
        self.info, self._ready = msg[1], True
        return self.info

    def warm_up(self, requests: list[tuple[str, dict, dict, bool]]) -> None:
        """Queue calls whose results are thrown away (JIT compilation), without waiting.

        The worker runs them while the parent judges other candidates; their replies are
        drained before the next real call. A warm-up that kills or hangs the worker only
        costs a silent restart: it is never reported against a case.
        """
        for fname, arrays, kwargs, backward in requests:
            layouts = {k: layout_of(v) for k, v in arrays.items()}
            try:
                self._conn.send((fname, arrays, kwargs, layouts, backward))
            except (BrokenPipeError, OSError):
                break
            self._pending += 1

    def _drain(self, timeout_s: float) -> None:
        try:
            while self._pending:
                if not self._conn.poll(timeout_s):
                    raise TimeoutError
                self._conn.recv()
                self._pending -= 1
        except (TimeoutError, EOFError, OSError):
            self._pending = 0
            self._restart()

    def call(self, fname: str, arrays: dict, kwargs: dict, backward: bool, timeout_s: float) -> Outcome:
        """Call ``fname`` in the worker; never raises for the candidate's misbehaviour."""
        if not self._ready:
            self.wait_ready()
        self._drain(timeout_s)
        layouts = {k: layout_of(v) for k, v in arrays.items()}
        try:
            self._conn.send((fname, arrays, kwargs, layouts, backward))
            if not self._conn.poll(timeout_s):
                self._restart()
                return Outcome("timeout", message=f"no answer within {timeout_s:g} s; worker killed and restarted")
            msg = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            self._proc.join(5)
            why = _signal_name(self._proc.exitcode)
            self._restart()
            return Outcome("crash", message=f"worker process died ({why}); restarted")
        if msg[0] == "ok":
            return Outcome("ok", value=msg[1], modified=msg[2])
        return Outcome("raised", exc_type=msg[1], message=msg[2], modified=msg[3])

    def _restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()
        self.wait_ready()

    def kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)

    def close(self) -> None:
        """Ask the worker to exit, then make sure it has."""
        if self._proc is None:
            return
        try:
            if self._proc.is_alive():
                self._conn.send(None)
                self._proc.join(2)
        except (OSError, BrokenPipeError):
            pass
        self.kill()
        self._conn.close()
        self._proc = None
