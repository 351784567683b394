"""Where the face data kit is: one rule for the command line, the tutorials, the tests and the
benchmarks.

    1. the folder given (``--data DIR`` on the command line, ``data_dir=`` in code), else
    2. the folder named by the environment variable FACECASCADE_DATA, else
    3. ``shared/data`` beside the project's folder (a folder ``shared`` next to the checkout,
       holding ``data``), where the project's developers and its CI keep the kit.

Relative paths are resolved against the current folder. A missing kit is one clear error
(`MissingDataError`) that says which rule chose the folder and what it should hold.
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT_VARIABLE = "FACECASCADE_DATA"
PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = PROJECT.parent / "shared" / "data"
KIT_FOLDERS = ("cuhk80", "photos", "negatives", "wider", "wild_landmarks")


class MissingDataError(FileNotFoundError):
    """The data kit (or the part of it a step needs) is not where the rules above look."""


def data_location(given=None) -> tuple[Path, str]:
    """(absolute folder, how it was chosen) by the rules of this module.

    given: a folder (str or Path) or None. The second value is "--data", "$FACECASCADE_DATA"
    or "the default", for messages. The folder is not checked here (see `data_dir`).
    """
    if given is not None and str(given) != "":
        return Path(given).expanduser().absolute(), "--data"
    named = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if named:
        return Path(named).expanduser().absolute(), f"${ENVIRONMENT_VARIABLE}"
    return DEFAULT_DATA, "the default"


def data_dir(given=None, needs=()) -> Path:
    """The data kit folder, checked: it exists and holds each of ``needs`` (paths inside the
    kit, e.g. ("wider/wider_face_bbx_gt.txt",)).

    given: as in `data_location`. Returns the absolute Path. Raises MissingDataError naming
    the folder, the rule that chose it and how to choose another.
    """
    folder, source = data_location(given)
    hint = (f"pass --data DIR or set {ENVIRONMENT_VARIABLE} to the folder that holds "
            f"{', '.join(f + '/' for f in KIT_FOLDERS)} (README: Getting the data)")
    if not folder.is_dir():
        raise MissingDataError(f"face data kit not found: {folder} ({source}) is not a folder; {hint}")
    for part in needs:
        if not (folder / part).exists():
            raise MissingDataError(f"face data kit at {folder} ({source}) has no {part}; {hint}")
    return folder
