"""CUDA backend tests: run under the Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1) or on a GPU.

``make test`` runs this directory (with tests/semantic) in its own pytest process with
the simulator on; the warning filters for the simulator are in tests/conftest.py.
Without a GPU and without the simulator every test here is skipped with the reason.
Under the simulator the block size is 32 (a Python thread per GPU thread: small
blocks keep it fast); on a real GPU the library default is used, unmodified.
"""
import os

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _runnable() -> tuple[bool, str]:
    try:
        import nbxent.cuda as nc
    except ImportError as exc:  # pragma: no cover - the package itself is always importable
        return False, f"nbxent.cuda does not import: {exc}"
    if nc.is_available():
        return True, ""
    return False, "no CUDA device and NUMBA_ENABLE_CUDASIM is not set"


_OK, _WHY = _runnable()


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.cudasim)
            if not _OK:
                item.add_marker(pytest.mark.skip(reason=_WHY))


@pytest.fixture(autouse=True)
def _block_size():
    """32 threads per block under the simulator; the library default on a GPU."""
    if not _OK or not SIMULATOR:
        yield
        return
    import nbxent.cuda as nc

    old = nc.set_threads_per_block(32)
    yield
    nc.set_threads_per_block(old)
