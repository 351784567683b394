"""Set-up shared by the tutorials (``from pipeline import tutorial_support as _tutorial``). Not a
lesson: it only answers four practical questions. It is part of the installed package, so a
tutorial, or an exercise copied out of tutorials/, finds it from any folder.

* Where do figures go?  ``output_dir(name)``: the folder named by the environment variable
  FACECASCADE_TUTORIAL_OUT, else ``tutorial-output/<name>/`` under the current directory.
  ``save(fig, path)`` writes each one there, and in a notebook also shows it under its cell.
* How long may it run?  ``QUICK`` is True when FACECASCADE_QUICK=1: the tutorials then repeat
  their timing loops fewer times (every step still runs). The test suite uses it.
* Where is the face data kit?  ``data_kit()``: FACECASCADE_DATA, else shared/data beside the project, which
  tutorials 6 and 7 train on.
* Where is the second photo?  ``astronaut()``: scikit-image's astronaut (512 x 512 px), which
  tutorials 3 to 5 use. scikit-image is not needed by the detector, so it is an extra
  install: ``python -m pip install scikit-image`` (or ``python -m pip install -e ".[test]"``,
  which also installs the test tools).

Figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``), which
needs no display and no global state, so nothing here ever calls ``plt.show()``. Instead,
``save`` hands the PNG it wrote to Jupyter when the tutorial runs in a Jupyter kernel (a notebook,
JupyterLab, VS Code's cells); run as a script, it only writes and prints, and IPython is never
imported. In a kernel, importing this module also lets a ``Figure`` left as the last expression
of a cell be drawn as an image (without pyplot, Jupyter would print ``<Figure size ...>``).
"""

from __future__ import annotations

import base64
import io
import os
import sys
import time
from pathlib import Path

QUICK = os.environ.get("FACECASCADE_QUICK", "0") not in ("", "0")


def output_dir(name: str) -> Path:
    """The folder for this tutorial's figures (created if missing)."""
    folder = Path(os.environ.get("FACECASCADE_TUTORIAL_OUT") or Path("tutorial-output") / name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


DPI = 110  # pixels per inch of the saved (and shown) figures


def save(fig, path: Path) -> None:
    """Write a matplotlib Figure to path (PNG) and say where it went; in a notebook, also show it.

    Returns nothing, so that a cell ending in ``save(...)`` shows the figure and not a path."""
    path = Path(path)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    print(f"figure written to {path}")
    shell = _notebook_shell()
    if shell is not None:
        from IPython.display import Image, display
        png = path.read_bytes() if path.suffix.lower() == ".png" else _png_bytes(fig)
        display(Image(data=png, format="png"))  # exactly the file just written


def _notebook_shell():
    """The IPython shell of a Jupyter kernel (notebook, JupyterLab, VS Code cells), or None.

    A plain ``python tutorial.py`` never loads ipykernel, so this returns None without importing
    IPython; so does a terminal IPython, which cannot draw images."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if getattr(shell, "kernel", None) is not None else None


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _draw_bare_figures(shell) -> None:
    """Teach the kernel to draw a ``Figure`` that ends a cell. Without pyplot, nothing registers a
    picture for ``matplotlib.figure.Figure`` and Jupyter prints ``<Figure size ...>`` instead."""
    from matplotlib.figure import Figure

    def figure_png(fig):
        if not fig.axes:
            return None  # an empty figure: text, not a blank picture
        return base64.b64encode(_png_bytes(fig)).decode("ascii")

    shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


_shell = _notebook_shell()
if _shell is not None:
    _draw_bare_figures(_shell)


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


def data_kit() -> Path:
    """The face data kit folder that the training tutorials use, found as the command line
    finds it (FACECASCADE_DATA, else shared/data beside the project's folder; README: Getting
    the data); a clear message if it is not there."""
    from pipeline.data.location import MissingDataError, data_dir

    try:
        return data_dir(needs=("cuhk80/train.txt", "wider/wider_face_bbx_gt.txt"))
    except MissingDataError as exc:
        raise SystemExit(str(exc)) from None


def best_time(fn, repeat: int) -> float:
    """Best wall-clock time of ``repeat`` calls of fn(), in seconds. The best (not the mean)
    is the least disturbed by whatever else the computer is doing."""
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
