"""Worker processes: each candidate runs in its own process, one call at a time.

A :class:`Worker` starts a persistent process (multiprocessing *spawn*
context: forking after an OpenMP parallel region kills the child) that imports
the candidate once and then serves calls sent through a pipe. The parent
never imports the candidate. Per call:

* the candidate returns      -> ``Outcome('ok', value)``
* the candidate raises       -> ``Outcome('raised', exc_type=..., message=...)``
* the process dies           -> ``Outcome('crash')`` (segfault, abort, ``os._exit``); restarted
* no answer in ``timeout_s`` -> ``Outcome('timeout')``; killed and restarted; after
  ``max_timeouts`` timeouts of one function, later calls of it are not made
  (``Outcome('not_run')``): a hanging function costs a few timeouts, not one per case
* a return value that cannot be converted or sent back -> ``Outcome('bad_return')``, named
* ``relation:<check>``       -> the candidate calls of a metamorphic check, made in the worker
  (the statistics of a vocabulary shard are any object: they never leave it)

``SystemExit`` and other ``BaseException`` raised by the candidate are reported as
raised (``Outcome.is_exception`` is False for them: they never count as the error an
invalid input must raise). The candidate's stdout and stderr (file descriptors 1 and 2,
so C extensions are captured too) go to a file per worker; each Outcome carries the
last :data:`OUTPUT_TAIL` characters written during the call. The worker exits when the
parent process disappears, so a killed campaign leaves no hung workers behind.
The worker also reports any input array the candidate modified in place.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from conformance.candidates import CandidateLoadError

_ARRAY_KEYWORDS = ("weight", "pos_weight", "linear_bias")
#: Block size asked of a candidate on the CUDA simulator (measured: a CE call on a (4, 5) input
#: takes 3.1 s at nbxent.cuda's default of 256 threads, 0.35 s at 16).
SIMULATOR_THREADS_PER_BLOCK = 16
#: Characters of the candidate's own output kept per call.
OUTPUT_TAIL = 2000
#: Timeouts of one function after which it is not called again.
MAX_TIMEOUTS = 2
#: A call named ``relation:<check>`` runs the metamorphic check's candidate calls in the worker
#: (conformance/metamorphic.py ``outputs``); its value is a dict of named float64 arrays.
RELATION = "relation:"


@dataclass
class Outcome:
    status: str                          # 'ok' | 'raised' | 'crash' | 'timeout' | 'not_run' | 'bad_return'
    value: np.ndarray | None = None
    exc_type: str = ""
    message: str = ""
    modified: list[str] = field(default_factory=list)
    is_exception: bool = True            # False for SystemExit and other BaseExceptions
    output: str = ""                     # the tail of what the candidate printed during the call
    output_chars: int = 0                # how much it printed in all


def _converter(array_type: str):
    """A function turning a NumPy array into the candidate's array type (candidates.ARRAY_TYPES)."""
    if array_type == "torch":
        import torch
        return lambda a: torch.from_numpy(np.asarray(a))
    if array_type == "jax":
        import jax.numpy as jnp        # JAX_ENABLE_X64 is set before the candidate is imported (worker_env)
        return lambda a: jnp.asarray(a)
    return lambda a: a


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


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent is gone (a SIGKILLed campaign must not leave a hung worker)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _capture_output() -> int:
    """Send file descriptors 1 and 2 to a fresh file; returns its descriptor."""
    out = tempfile.TemporaryFile(mode="w+b", buffering=0)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    _capture_output.file = out        # keep it open
    return out.fileno()


def _take_output(fd: int) -> tuple[str, int]:
    """(the last OUTPUT_TAIL characters written since the last call, how many bytes), then reset."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    size = os.fstat(fd).st_size
    tail = b""
    if size:
        tail = os.pread(fd, min(size, 4 * OUTPUT_TAIL), max(0, size - 4 * OUTPUT_TAIL))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return tail.decode("utf-8", "replace")[-OUTPUT_TAIL:], size


def _send_reply(conn, reply: tuple) -> None:
    try:
        conn.send(reply)
    except Exception as exc:        # an unpicklable return value: name it instead of dying
        what = type(reply[1]).__name__ if reply[0] == "ok" else "reply"
        conn.send(("bad_return", f"returned a {what} that cannot be sent back to the harness: "
                                 f"{type(exc).__name__}: {exc}", reply[-3], "", 0))


def _serve(conn, spec: str, env: dict, dtypes: tuple, parent_pid: int = 0) -> None:
    """Worker main loop (runs in the child process)."""
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the parent's to handle
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    # NaN/inf cases make NumPy-based candidates (and the CUDA simulator) warn on every call;
    # the verdict is in the returned values, so the console is kept for the harness's own output.
    warnings.simplefilter("ignore")
    out_fd = _capture_output()
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
    try:
        convert = _converter((getattr(obj, "CONFORMANCE", None) or {}).get("array_type", "numpy"))
    except ImportError as exc:
        conn.send(("load_error", f"{type(exc).__name__}: the declared array_type needs {exc.name}: {exc}"))
        return
    _take_output(out_fd)
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
        try:
            if fname.startswith(RELATION):
                # a metamorphic check's calls, made here: their results are named float64 arrays
                from conformance import metamorphic
                reply = ("ok", metamorphic.outputs(obj, fname[len(RELATION):], arrays, kwargs, convert))
            else:
                given = {k: convert(v) for k, v in arrays.items()}
                kw = dict(kwargs)
                kw.update({k: given[k] for k in _ARRAY_KEYWORDS if k in given})
                fn = getattr(obj, fname)
                args = [given[k] for k in _positional(fname, backward)]
                res = fn(given["grad_output"], *args, **kw) if backward else fn(*args, **kw)
                try:
                    # a tuple (``<loss>_with_grad``: the loss and its gradients) comes back element by element
                    reply = ("ok", tuple(None if r is None else _to_numpy(r) for r in res)
                             if isinstance(res, (tuple, list)) else _to_numpy(res))
                except Exception as exc:
                    reply = ("bad_return", f"returned a {type(res).__name__} that np.asarray cannot convert: "
                                           f"{type(exc).__name__}: {exc}")
        except BaseException as exc:    # SystemExit included: named, not a bare 'exit code N'
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            reply = ("raised", type(exc).__name__, tb[:800], isinstance(exc, Exception))
        modified = [k for k in before if not np.array_equal(before[k], arrays[k], equal_nan=True)]
        text, size = _take_output(out_fd)
        _send_reply(conn, reply + (modified, text, size))


def _positional(fname: str, backward: bool) -> tuple[str, ...]:
    """The arrays ``fname`` takes positionally (the loss registry says; ``_backward`` adds grad_output,
    ``<loss>_with_grad`` takes the loss's)."""
    from conformance import losses
    loss = fname[:-len("_backward")] if backward and fname.endswith("_backward") else fname
    loss = loss[:-len("_with_grad")] if loss.endswith("_with_grad") else loss
    try:
        return losses.get(loss).positional
    except losses.UnknownLoss:
        return ("input", "target")


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
                 start_timeout_s: float = 120.0, max_timeouts: int = MAX_TIMEOUTS):
        self.spec, self.env, self.dtypes = spec, dict(env or {}), tuple(dtypes)
        self.start_timeout_s = start_timeout_s
        self.max_timeouts = max_timeouts
        self.timeouts: Counter = Counter()      # function name -> timeouts so far
        self.info: dict | None = None
        self.restarts = 0
        self._proc = self._conn = None
        self.start()

    def start(self) -> None:
        """Start the process (returns at once; :meth:`wait_ready` collects the probe)."""
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.spec, self.env, self.dtypes, os.getpid()), daemon=True,
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
        if self.timeouts[fname] >= self.max_timeouts:
            return Outcome("not_run", message=f"not run: {fname} timed out {self.timeouts[fname]} times, "
                                              "so the harness stopped calling it")
        if not self._ready:
            self.wait_ready()
        self._drain(timeout_s)
        layouts = {k: layout_of(v) for k, v in arrays.items()}
        try:
            self._conn.send((fname, arrays, kwargs, layouts, backward))
            if not self._conn.poll(timeout_s):
                self.timeouts[fname] += 1
                self._restart()
                return Outcome("timeout", message=f"no answer within {timeout_s:g} s; worker killed and restarted")
            msg = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            self._proc.join(5)
            why = _signal_name(self._proc.exitcode)
            self._restart()
            return Outcome("crash", message=f"worker process died ({why}); restarted")
        *head, modified, output, size = msg
        if head[0] == "ok":
            return Outcome("ok", value=head[1], modified=modified, output=output, output_chars=size)
        if head[0] == "bad_return":
            return Outcome("bad_return", message=head[1], modified=modified, output=output, output_chars=size)
        return Outcome("raised", exc_type=head[1], message=head[2], modified=modified, is_exception=head[3],
                       output=output, output_chars=size)

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
