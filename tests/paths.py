"""Where the tests find data that is not part of the project: the face data kit, found by the
project's one rule (`pipeline.data.location`: FACECASCADE_DATA, else shared/data beside the
checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.location import data_location

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DATA = data_location()[0]


def require_data(*parts: str) -> Path:
    """Path inside the data kit, or skip the test with the reason when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"face data kit not found at {path} (set FACECASCADE_DATA to the kit's folder; "
                    "README: Getting the data)")
    return path
