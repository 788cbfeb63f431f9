"""cross_entropy and nll_loss: validation, formulas, CPU kernels, CUDA kernels.

* ``validate.py``: the plan (metadata checks, torch's errors) and the kernels' option record.
* ``formulas.py``: the scalar loss and gradient formulas, compiled by both backends.
* ``cpu.py`` (host side) with ``cpu_index.py``, ``cpu_rows.py``, ``cpu_spatial.py``,
  ``cpu_prob.py``, ``cpu_small.py``: the CPU kernels.
* ``cuda.py`` (launcher) with ``cuda_kernels.py``: the CUDA kernels (imported lazily).
"""
