"""Shared pytest configuration: the Numba cache, hypothesis profiles, ``rng`` and ``backend``.

``make test`` runs two sessions: the CPU one (everything but tests/cuda) and the CUDA one
(tests/cuda and tests/semantic, with the Numba CUDA simulator switched on before numba is
imported). The semantic suite in tests/semantic runs in both through the ``backend``
fixture: ``nbxent`` in the CPU session, ``nbxent.cuda`` in the CUDA one
(``NBXENT_TEST_BACKEND=cuda`` selects it on a machine with a GPU).
"""
import hashlib
import os
import pathlib

import numpy as np
import pytest


def _drop_stale_numba_cache() -> None:
    """Delete nbxent's on-disk Numba cache when any nbxent source changed.

    Numba keys a cached kernel on its own file's timestamp only; a kernel that
    inlines a formula from another module (nbxent/xent/formulas.py, nbxent/bce/formulas.py,
    nbxent/_cpu/fastmath.py) would otherwise keep running the old formula after that module changes.
    """
    pkg = pathlib.Path(__file__).resolve().parent.parent / "nbxent"
    digest = hashlib.sha256()
    for src in sorted(pkg.rglob("*.py")):
        digest.update(src.relative_to(pkg).as_posix().encode())
        digest.update(src.read_bytes())
    stamp = pkg / "__pycache__" / "nbxent-sources.sha256"
    current = digest.hexdigest()
    if stamp.exists() and stamp.read_text() == current:
        return
    for cached in list(pkg.rglob("__pycache__/*.nbi")) + list(pkg.rglob("__pycache__/*.nbc")):
        cached.unlink(missing_ok=True)
    stamp.parent.mkdir(exist_ok=True)
    stamp.write_text(current)


_drop_stale_numba_cache()

# hypothesis profile: derandomized so a CI run is reproducible; the seed for
# ad-hoc exploration can be changed with HYPOTHESIS_PROFILE=explore.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    settings.register_profile("explore", deadline=None, max_examples=500)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a test dependency; the import guard keeps collection errors readable
    pass


SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
BACKEND = os.environ.get("NBXENT_TEST_BACKEND") or ("cuda" if SIMULATOR else "cpu")


def pytest_configure(config):
    if SIMULATOR:
        # The simulator evaluates kernels with NumPy scalars, which warn on the IEEE
        # divisions a GPU performs silently (g / 0 for an all-ignored mean, inf - inf).
        for what in ("divide by zero encountered", "invalid value encountered",
                     "overflow encountered"):
            config.addinivalue_line("filterwarnings", f"ignore:{what}:RuntimeWarning")


@pytest.fixture
def backend():
    """The module a semantic test calls: ``nbxent`` (CPU) or ``nbxent.cuda`` (see above).

    Under the simulator the block size is 32 (a Python thread per GPU thread: small blocks
    keep it fast); on a GPU the library default is used.
    """
    if BACKEND == "cpu":
        import nbxent

        yield nbxent
        return
    import nbxent.cuda as nc

    if not nc.is_available():
        pytest.skip("no CUDA device and NUMBA_ENABLE_CUDASIM is not set")
    old = nc.set_threads_per_block(32) if SIMULATOR else None
    yield nc
    if old is not None:
        nc.set_threads_per_block(old)


@pytest.fixture
def rng():
    """A seeded generator; tests that need their own seed make one."""
    return np.random.default_rng(20261122)
