"""The dependency direction of STYLE.md: nbxent imports numpy and numba only."""
import subprocess
import sys

import pytest

FORBIDDEN = ("torch", "scipy", "hypothesis", "mpmath", "conformance", "numba.cuda", "ml_dtypes")


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def _forbidden(modules: set[str]) -> set[str]:
    return {m for m in modules for f in FORBIDDEN if m == f or m.startswith(f + ".")}


@pytest.mark.parametrize("statement", ["import nbxent", "import nbxent.cuda"])
def test_import_pulls_in_no_optional_dependency(statement):
    # numba itself loads parts of scipy when scipy is installed (for its BLAS
    # bindings); only what nbxent adds on top of numpy + numba counts.
    baseline = _forbidden(_modules_after("import numpy, numba"))
    bad = sorted(_forbidden(_modules_after(statement)) - baseline)
    assert not bad, f"`{statement}` imported {bad}"


def test_public_surface_is_explicit():
    import nbxent

    assert sorted(nbxent.__all__) == sorted(
        name for name in dir(nbxent) if not name.startswith("_") and callable(getattr(nbxent, name))
    )
    for name in nbxent.__all__:
        fn = getattr(nbxent, name)
        assert fn.__doc__ and fn.__doc__.strip(), f"nbxent.{name} has no docstring"


def test_the_check_detects_an_optional_import():
    # The check above must be able to fail: a module that imports mpmath is caught.
    baseline = _forbidden(_modules_after("import numpy, numba"))
    assert "mpmath" in _forbidden(_modules_after("import numpy, numba, mpmath")) - baseline


def test_nbxent_cuda_pins_the_same_functions():
    # One definition: nbxent.cuda's functions have nbxent's signatures and docstrings.
    import inspect

    import nbxent
    import nbxent.cuda

    # The vocab-parallel statistics choose their backend by the arrays alone (device logits
    # stay on the device, their results are host records): they are not pinned.
    array_dispatched = {"vocab_shard_stats", "vocab_combine", "vocab_shard_grad", "ShardStats", "VocabCombined"}
    assert array_dispatched <= set(nbxent.__all__)
    for name in sorted(set(nbxent.__all__) - array_dispatched):
        ours, pinned = getattr(nbxent, name), getattr(nbxent.cuda, name)
        if isinstance(ours, type):          # a result type is shared, not pinned
            assert pinned is ours, name
            continue
        assert pinned is not ours and pinned.__wrapped__ is ours, name
        assert inspect.signature(pinned) == inspect.signature(ours), name
        assert pinned.__doc__ == ours.__doc__, name


def test_the_package_is_typed():
    import pathlib

    import nbxent

    assert (pathlib.Path(nbxent.__file__).parent / "py.typed").is_file()
