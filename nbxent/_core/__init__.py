"""Machinery shared by every loss and both backends.

* :mod:`~nbxent._core.jit`: Numba's on-disk cache switch and the kernels' named flags.
* :mod:`~nbxent._core.reduction`: reduction codes, and the one compensated sum.
* :mod:`~nbxent._core.dtypes`: compute dtypes and torch's dtype names.
* :mod:`~nbxent._core.arrays`: array-like arguments, the one ``out=`` check and its overlap
  rule, error messages shared by the losses.
* :mod:`~nbxent._core.device`: device-array detection and the backend choice.

Everything here except the ``@njit`` sums is plain Python and runs before any JIT call.
"""
