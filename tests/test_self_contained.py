"""The repository stands alone: no file sends the reader to notes that only the developers have
(a specification or a style guide kept outside the repository, or files beside the checkout).

Whatever a student needs (the receptive-field recurrences, the ROI mapping, the gradient-check
rules, the box conventions) is written where it is used, with its source: the paper and section.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".txt", ".cfg", ".toml", ".ini", ".rst", ".yml", ".yaml", ".json"}
SKIPPED_PARTS = {".git", "__pycache__", ".hypothesis", ".pytest_cache", "facecascade.egg-info"}
# "SPEC" as a word (SPEC.md, "SPEC B.3", "SPEC C.2"), the style guide, or a path outside the checkout
OUTSIDE_REFERENCE = re.compile(r"\bSPEC\b|STYLE\.md|\.\./shared")


def repository_text_files() -> list[Path]:
    """Tracked and untracked (not ignored) text files of the repository."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.splitlines()
        paths = [ROOT / name for name in listed]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an unpacked archive)
        paths = list(ROOT.rglob("*"))
    return sorted(p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and not SKIPPED_PARTS.intersection(p.relative_to(ROOT).parts))


def test_no_file_points_outside_the_repository():
    this_file = Path(__file__).resolve()
    found = []
    for path in repository_text_files():
        if path.resolve() == this_file:
            continue  # the pattern itself
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE_REFERENCE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, ("write the fact in place, with its paper and section, instead of pointing to a "
                       "file the reader does not have:\n" + "\n".join(found))


def test_the_check_sees_the_source_files():
    names = {p.relative_to(ROOT).as_posix() for p in repository_text_files()}
    assert {"pipeline/detection/roi.py", "layers/gradcheck.py", "tutorials/03_inside_pnet.py", "README.md"} <= names
