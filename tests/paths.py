"""Where the tests find data that is not part of the project (shared/data beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The face data kit lives in a "shared/data" folder beside the checkout for developers and CI;
# FACECASCADE_DATA points elsewhere.
DATA = Path(os.environ.get("FACECASCADE_DATA", REPO.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    """Path inside the data kit, or skip the test with the reason when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"face data kit not found at {path} (set FACECASCADE_DATA to the shared/data folder)")
    return path
