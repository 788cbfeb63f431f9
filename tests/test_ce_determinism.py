"""Bit-identical results for 1 and 2 Numba threads (prange writes per-row slots only; every
reduction is a serial fixed-order combine)."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import nbxent
from nbxent._cpu.threads import PARALLEL_MIN

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                reason="needs 2 Numba threads")


def _cases():
    rng = np.random.default_rng(7)
    # Sizes well above the serial cut-over, so the parallel drivers run.
    rows = (rng.standard_normal((700, 97)) * 4).astype(np.float32)
    t_rows = rng.integers(0, 97, 700)
    t_rows[::11] = -100
    spatial = (rng.standard_normal((3, 7, 40, 60)) * 4).astype(np.float32)
    t_sp = rng.integers(0, 7, (3, 40, 60))
    t_sp[:, ::5, ::3] = -100
    p_rows = rng.random(rows.shape).astype(np.float32)
    w97 = rng.uniform(0.5, 2, 97).astype(np.float32)
    assert rows.size >= PARALLEL_MIN and spatial.size >= PARALLEL_MIN
    return [
        ("rows", "cross_entropy", rows, t_rows, {}),
        ("rows smoothing weight", "cross_entropy", rows, t_rows,
         {"label_smoothing": 0.1, "weight": w97}),
        ("rows float64", "cross_entropy", rows.astype(np.float64), t_rows, {}),
        ("spatial", "cross_entropy", spatial, t_sp, {"label_smoothing": 0.2}),
        ("prob rows", "cross_entropy", rows, p_rows, {}),
        ("prob spatial", "cross_entropy", spatial, rng.random(spatial.shape).astype(np.float32),
         {"weight": rng.uniform(0.5, 2, 7).astype(np.float32)}),
        ("nll rows", "nll_loss", rows, t_rows, {"weight": w97}),
    ]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_threads_1_and_2_bit_identical(case, reduction):
    _, fn, x, t, kw = case
    results = {}
    before = numba.get_num_threads()
    try:
        for k in (1, 2):
            numba.set_num_threads(k)
            loss, grad = getattr(nbxent, fn + "_with_grad")(x, t, reduction=reduction, **kw)
            results[k] = (loss, grad)
    finally:
        numba.set_num_threads(before)
    (l1, g1), (l2, g2) = results[1], results[2]
    assert l1.tobytes() == l2.tobytes(), f"loss differs: {l1!r} vs {l2!r}"
    assert g1.tobytes() == g2.tobytes(), "gradient differs between 1 and 2 threads"
