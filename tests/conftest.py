"""Shared pytest configuration for the CPU suite."""
import hashlib
import os
import pathlib

import numpy as np
import pytest


def _drop_stale_numba_cache() -> None:
    """Delete nbxent's on-disk Numba cache when any nbxent source changed.

    Numba keys a cached kernel on its own file's timestamp only; a kernel that
    inlines a formula from another module (nbxent/xent/formulas.py, nbxent/bce/formulas.py, nbxent/_cpu/fastmath.py)
    would otherwise keep running the old formula after that module changes.
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


@pytest.fixture
def rng():
    """A seeded generator; tests that need their own seed make one."""
    return np.random.default_rng(20261122)
