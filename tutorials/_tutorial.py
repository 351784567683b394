"""Set-up shared by the tutorials. Not a lesson: it only answers four practical questions.

* Can the tutorial import the project?  Importing this module puts the repository root on
  ``sys.path``, so ``from layers import ...`` works whether a tutorial is run as a script
  (``python tutorials/01_convolution_by_hand.py``) or opened as a notebook in tutorials/.
* Where do figures go?  ``output_dir(name)``: the folder named by the environment variable
  FACECASCADE_TUTORIAL_OUT, else ``tutorial-output/<name>/`` under the current directory.
* How long may it run?  ``QUICK`` is True when FACECASCADE_QUICK=1: the tutorials then repeat
  their timing loops fewer times (every step still runs). The test suite uses it.
* Where is the second photo?  ``astronaut()``: scikit-image's astronaut (512 x 512 px), which
  tutorials 3 to 5 use. scikit-image is not needed by the detector, so it is an extra
  install: ``python -m pip install scikit-image`` (or ``python -m pip install -e ".[test]"``,
  which also installs the test tools).

Figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``), which
needs no display and no global state, so nothing here ever calls ``plt.show()``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUICK = os.environ.get("FACECASCADE_QUICK", "0") not in ("", "0")


def output_dir(name: str) -> Path:
    """The folder for this tutorial's figures (created if missing)."""
    folder = Path(os.environ.get("FACECASCADE_TUTORIAL_OUT") or Path("tutorial-output") / name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save(fig, path: Path) -> Path:
    """Write a matplotlib Figure to path (PNG) and say where it went."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"figure written to {path}")
    return path


def astronaut():
    """scikit-image's astronaut photo, (512, 512, 3) uint8 RGB; a clear message if scikit-image
    is not installed."""
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("This tutorial uses scikit-image's astronaut photo. Install scikit-image with\n"
                         "    python -m pip install scikit-image\n"
                         "(or python -m pip install -e \".[test]\" from the repository root), then run it again.") from None
    return skimage.data.astronaut()


def best_time(fn, repeat: int) -> float:
    """Best wall-clock time of ``repeat`` calls of fn(), in seconds. The best (not the mean)
    is the least disturbed by whatever else the computer is doing."""
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
