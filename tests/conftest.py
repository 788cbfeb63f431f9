"""Shared pytest configuration for the CPU suite."""
import os

import numpy as np
import pytest

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
