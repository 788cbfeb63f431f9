"""CPU building blocks shared by the loss families.

* :mod:`~nbxent._cpu.fastmath`: vectorizable exp, log, log1p and exp-of-difference.
* :mod:`~nbxent._cpu.rows`: row scans (max, shifted sums of exps, scaling).
* :mod:`~nbxent._cpu.threads`: when a kernel runs in parallel, and fork safety.
"""
