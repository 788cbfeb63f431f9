"""binary_cross_entropy and binary_cross_entropy_with_logits: the same rooms as nbxent.xent.

* ``validate.py``: the plan (metadata checks, broadcasting grid, torch's errors) and BCE's
  range check.
* ``formulas.py``: the per-element loss and gradient formulas, compiled by both backends.
* ``cpu.py`` (float64 kernels, launcher) with ``cpu_f32.py`` (vectorized float32 kernels).
* ``cuda.py`` (launcher) with ``cuda_kernels.py`` (imported lazily).
"""
