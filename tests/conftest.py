"""Shared test setup: the hypothesis profile and a few small fixtures.

Hypothesis runs under the "ci" profile: a fixed seed (derandomize=True) so a failure reproduces
on every machine, no per-example deadline (the first call of a numpy routine can be slow), and
25 examples per property, which keeps the whole layer suite well under a minute. Set
HYPOTHESIS_PROFILE=dev for a longer, randomized search while working on a layer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The tests import their helpers (tolerances.py, strategies.py) by plain name and the library
# (layers, pipeline) from the repository root, whichever way pytest was started.
_TESTS = Path(__file__).resolve().parent
for _path in (str(_TESTS), str(_TESTS.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so every test sees the same numbers on every run."""
    return np.random.default_rng(20240601)
