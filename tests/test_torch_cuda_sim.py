"""nbxent.torch's autograd functions on nbxent.cuda, under the Numba CUDA simulator.

torch here has no CUDA, so the CUDA backend's tensor glue (``as_cuda_array``,
``torch.as_tensor``, the stream waits) cannot run; this checks the rest of the CUDA
path: the same ``torch.autograd.Function``s driving ``nbxent.cuda``'s ``_with_grad``
(writing the gradient through ``out=`` into a torch-owned buffer) and ``_backward``
(``wrt='target'``) on device arrays, against torch.nn.functional as in
test_torch_autograd. The simulator must be enabled before numba is imported, so the
cases run in a subprocess.
"""
import os
import pathlib
import subprocess
import sys

SCRIPT = r'''
import contextlib, sys
import numpy as np, torch
from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
import nbxent.cuda
from nbxent.torch import _autograd
import test_torch_autograd as T

nbxent.cuda.set_threads_per_block(8)


class SimulatedDevice:
    """The CUDA backend's contract on the simulator: device arrays sharing the tensors' memory
    (what numba.cuda.as_cuda_array gives for a CUDA tensor), results copied back."""
    api = nbxent.cuda

    def array(self, t):
        return None if t is None else FakeCUDAArray(t.detach().contiguous().numpy())

    def tensor(self, a):
        assert getattr(a, "__cuda_ndarray__", False), "nbxent.cuda returned a host array"
        return torch.from_numpy(np.asarray(a.copy_to_host()))

    def launch(self):
        return contextlib.nullcontext()


class Sim:
    @staticmethod
    def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
        return _autograd.CrossEntropy.apply(SimulatedDevice(), input, target, weight,
                                            ignore_index, reduction, label_smoothing)

    @staticmethod
    def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
        return _autograd.NLLLoss.apply(SimulatedDevice(), input, target, weight, ignore_index,
                                       reduction)

    @staticmethod
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return _autograd.BinaryCrossEntropy.apply(SimulatedDevice(), input, target, weight,
                                                  reduction)

    @staticmethod
    def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                         pos_weight=None):
        return _autograd.BinaryCrossEntropyWithLogits.apply(SimulatedDevice(), input, target,
                                                            weight, reduction, pos_weight)


f64 = torch.float64
cases = [
    ("cross_entropy", T._ce_case((3, 4), False, True, "some", 0.1, "none", f64, seed=21)),
    ("cross_entropy", T._ce_case((2, 4, 2), True, True, "none", 0.1, "mean", f64, seed=22)),
    ("nll_loss", T._ce_case((3, 4), False, True, "some", 0.0, "sum", f64, seed=23)),
    ("binary_cross_entropy", T._bce_case("binary_cross_entropy", (5,), True, False, "none", f64, 24)),
    ("binary_cross_entropy_with_logits",
     T._bce_case("binary_cross_entropy_with_logits", (2, 3), True, True, "mean", f64, 25)),
]
for loss, (arrays, kw) in cases:
    T._compare_case(loss, arrays, kw, seed=26, ours=Sim)
    print("ok", loss, kw)
'''


def test_autograd_functions_on_the_cuda_backend_under_the_simulator():
    tests = pathlib.Path(__file__).resolve().parent
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join([str(tests), str(tests.parent),
                                           os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         cwd=tests.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok ") == 5, out.stdout
