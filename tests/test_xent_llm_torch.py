"""cross_entropy's LLM options against their torch composition in float64.

torch has neither option: the harness's torch oracle composes them (the softcap by hand,
``c * tanh(x / c)``, the z-loss from ``torch.logsumexp``; docs/semantics.md §13.1) and autograd
differentiates the composition. nbxent's value and gradient must be within the harness's
tolerance of it, and the composition within the same tolerance of the exact (mpmath) oracle
(the cross-check the harness runs on every case), except for one error torch's composition
adds: autograd's ``tanh`` backward forms ``1 - tanh(u)^2`` from the rounded ``tanh``, an
absolute error of ~2 eps in a slope that is tiny where ``|u|`` is large (nbxent forms
``4a / (1 + a)^2``, ``a = exp(-2|u|)``: docs/semantics.md §14). That term,
``4 eps |dL/dy_j|``, is added to the tolerance of comparisons with the composition.
"""
import numpy as np
import pytest

from conformance.tolerances import tolerance

from support import assert_conforms, assert_within, make_case, reference

pytest.importorskip("torch")

import nbxent  # noqa: E402


def _cases():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 9)) * 6
    t = rng.integers(0, 9, 5)
    t[2] = -100
    w = rng.uniform(0.2, 2.0, 9)
    p = rng.dirichlet(np.ones(9), 5)
    xk = rng.standard_normal((2, 4, 3)) * 3
    tk = rng.integers(0, 4, (2, 3))
    for red in ("none", "mean", "sum"):
        for opts in (dict(softcap=4.0), dict(lse_square_scale=1e-3),
                     dict(softcap=15.0, lse_square_scale=1e-2, label_smoothing=0.1)):
            yield f"index-{red}-{sorted(opts)}", (x, t, w), dict(reduction=red, **opts)
            yield f"prob-{red}-{sorted(opts)}", (x, p, None), dict(reduction=red, **opts)
        yield f"kdim-{red}", (xk, tk, None), dict(reduction=red, softcap=2.0,
                                                   lse_square_scale=1e-2)


CASES = list(_cases())


@pytest.mark.parametrize("name,arrays,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_composition(name, arrays, kw):
    x, t, w = arrays
    loss, grad = nbxent.cross_entropy_with_grad(x, t, weight=w, **kw)
    case = make_case("cross_entropy", x, t, w, **kw)
    gcase = make_case("cross_entropy", x, t, w, grad_output=np.ones(np.shape(loss)), **kw)
    for kind, got, c in (("value", loss, case), ("grad", grad, gcase)):
        composed = reference(c, kind, oracle="torch")
        exact = reference(c, kind, oracle="mpmath")
        tol, why = tolerance(c, kind, "float64")
        if kind == "grad" and "softcap" in kw:
            a = np.exp(-2 * np.abs(x / kw["softcap"]))
            slope = 4 * a / (1 + a) ** 2
            tol = tol + 4 * np.finfo(np.float64).eps * np.abs(exact / slope)
            why += " + 4 eps |dL/dy| (torch's 1 - tanh^2)"
        assert_within(got, composed, tol, f"nbxent vs torch composition ({kind})", why, c, kind)
        assert_within(composed, exact, tol, f"torch composition vs mpmath ({kind})", why, c, kind)
        assert_conforms(got, exact, c, kind, what=f"nbxent vs mpmath ({kind})", exact=True)
