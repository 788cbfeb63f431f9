"""Device arrays in and out, device-side checks, errors, in-place gradients, availability."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nbxent.cuda as nc


def host(a):
    """A result as a NumPy array (device arrays are copied back)."""
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    return np.asarray(a)


@pytest.fixture(scope="module")
def cuda():
    from numba import cuda

    return cuda


def test_device_inputs_give_device_outputs_equal_to_host_path(cuda):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 9)).astype(np.float32)
    t = np.array([1, -100, 8])
    w = rng.uniform(0.5, 1.5, 9).astype(np.float32)
    dx, dt, dw = cuda.to_device(x), cuda.to_device(t), cuda.to_device(w)
    loss_d, g_d = nc.cross_entropy_with_grad(dx, dt, weight=dw, label_smoothing=0.1)
    loss_h, g_h = nc.cross_entropy_with_grad(x, t, weight=w, label_smoothing=0.1)
    assert hasattr(loss_d, "copy_to_host") and hasattr(g_d, "copy_to_host")
    assert host(loss_d).shape == () and host(g_d).shape == (3, 9)
    assert host(loss_d).tobytes() == loss_h.tobytes()
    assert host(g_d).tobytes() == g_h.tobytes()
    np.testing.assert_array_equal(dx.copy_to_host(), x)


def test_device_target_range_check(cuda):
    x = cuda.to_device(np.zeros((3, 4)))
    with pytest.raises(IndexError, match=r"cross_entropy: Target 7 is out of bounds\..*\(1,\)"):
        nc.cross_entropy(x, cuda.to_device(np.array([0, 7, -3])))
    with pytest.raises(IndexError, match="nll_loss: Target -3 is out of bounds"):
        nc.nll_loss(x, cuda.to_device(np.array([0, 1, -3])), reduction="none")
    # uint8 targets on the device are widened there (and 255 is a valid ignore_index)
    got = nc.nll_loss(x, cuda.to_device(np.array([0, 255, 1], dtype=np.uint8)),
                      ignore_index=255, reduction="sum")
    assert host(got) == 0


def test_host_target_range_check_message():
    with pytest.raises(IndexError, match=r"cross_entropy: Target 3 is out of bounds\."):
        nc.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


def test_bce_range_check_on_device(cuda):
    x = cuda.to_device(np.array([0.5, 0.2, 1.5]))
    y = cuda.to_device(np.array([0.0, 1.0, 0.0]))
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        nc.binary_cross_entropy(x, y)
    yb = cuda.to_device(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(RuntimeError, match="all elements of target should be between 0 and 1"):
        nc.binary_cross_entropy(cuda.to_device(np.array([0.5, 0.2, 0.3])), yb)
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        nc.binary_cross_entropy(np.array([np.nan]), np.array([0.0]))


@pytest.mark.parametrize("call, exc", [
    (lambda: nc.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="bogus"), ValueError),
    (lambda: nc.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(4)), RuntimeError),
    (lambda: nc.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), ValueError),
    (lambda: nc.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5), RuntimeError),
    (lambda: nc.nll_loss(np.zeros((2, 3), dtype=np.int64), np.array([0, 1])), NotImplementedError),
    (lambda: nc.binary_cross_entropy(np.full(2, 0.5), np.zeros(3)), ValueError),
    (lambda: nc.binary_cross_entropy(np.full(2, 0.5, np.float32), np.zeros(2)), RuntimeError),
    (lambda: nc.binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)),
                                                 pos_weight=np.ones(2)), RuntimeError),
    (lambda: nc.cross_entropy_backward(np.ones(3), np.zeros((2, 3)), np.array([0, 1])), ValueError),
])
def test_errors_have_torch_types_and_name_the_function(call, exc):
    with pytest.raises(exc, match=r"^(cross_entropy|nll_loss|binary_cross_entropy)"):
        call()


def test_in_place_gradient_on_device(cuda):
    x = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    t = np.array([2, 0])
    _, want = nc.cross_entropy_with_grad(x, t)
    dx = cuda.to_device(x)
    loss, g = nc.cross_entropy_with_grad(dx, t, out=dx)
    assert g is dx
    np.testing.assert_array_equal(dx.copy_to_host(), want)


def test_in_place_gradient_on_host():
    x = np.array([[0.2, 0.9], [0.5, 0.5]])
    y = np.array([[1.0, 0.0], [0.5, 1.0]])
    _, want = nc.binary_cross_entropy_with_grad(x, y)
    loss, g = nc.binary_cross_entropy_with_grad(x, y, out=x)
    assert g is x
    np.testing.assert_array_equal(x, want)


def test_cpu_backend_parity():
    import nbxent

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5))
    t = np.array([4, -100, 0])
    try:
        cpu = nbxent.cross_entropy_with_grad(x, t, label_smoothing=0.1)
    except NotImplementedError:
        pytest.skip("the CPU backend is not in place in this checkout")
    gpu = nc.cross_entropy_with_grad(x, t, label_smoothing=0.1)
    # same formulas; the cross-row sum differs only in order (a few ulp of float64)
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=8 * np.finfo(np.float64).eps, atol=0)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=0, atol=8 * np.finfo(np.float64).eps)


def test_is_available_and_the_one_clear_error():
    assert nc.is_available()
    code = ("import nbxent.cuda as nc, numpy as np\n"
            "assert not nc.is_available()\n"
            "try:\n    nc.cross_entropy(np.zeros((1, 2)), np.array([0]))\n"
            "except RuntimeError as e:\n    print(e)\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"],
                           env=env, capture_output=True, text=True)
    if probe.stdout.strip() == "True":
        pytest.skip("a real GPU is present: the no-device error cannot be provoked")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "no CUDA device and the simulator is off" in out.stdout


def test_doctests_of_the_public_functions_on_cuda():
    # nbxent.cuda's functions are nbxent.functional's with the backend pinned: their one
    # set of docstring examples must give the same printed results on the CUDA backend.
    import doctest

    import nbxent.functional
    from nbxent._core import device

    token = device._PINNED.set(device.CUDA)
    try:
        res = doctest.testmod(nbxent.functional, optionflags=doctest.NORMALIZE_WHITESPACE,
                              verbose=False)
    finally:
        device._PINNED.reset(token)
    assert res.attempted >= 12 and res.failed == 0
