"""The tutorials as notebooks: opened with jupytext and run in a real Jupyter kernel, every figure
a tutorial writes must also appear in the notebook, as an image under its cell.

Each tutorial in NOTEBOOKS is converted from its jupytext percent format to a notebook (in
memory: nothing is written into tutorials/), executed by nbclient in a fresh ipykernel with
tutorials/ as the working directory (as a notebook opened there runs), FACECASCADE_QUICK=1 and
FACECASCADE_TUTORIAL_OUT pointing at a temporary folder. Then every PNG file the run wrote must
be among the notebook's image/png outputs, byte for byte, and no cell may show a figure or a
path as text instead.

Needs the `notebook` extra (jupytext, nbclient, nbformat, ipykernel), which the `test` extra
pulls in; without it the tests are skipped and say what to install.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"

# Every tutorial runs as a notebook (about 3-8 s each in quick mode), except these; they save their
# figures through the same `_tutorial.save`, and test_tutorials.py runs them as scripts.
NOT_AS_NOTEBOOK = {
    "05_sppnet": "the slowest (30-50 s, its timing sweep over ~2,000 candidates)",
    "06_training_a_cascade": "needs the face data kit (FACECASCADE_DATA) and trains for minutes",
    "07_training_mtcnn": "needs the face data kit (FACECASCADE_DATA) and trains P-Net",
}
NOTEBOOKS = [p.stem for p in sorted(TUTORIALS.glob("[0-9][0-9]_*.py")) if p.stem not in NOT_AS_NOTEBOOK]
CELL_TIMEOUT_SECONDS = 300  # quick mode takes seconds per cell; this only stops a hang

MISSING = [name for name in ("jupytext", "nbclient", "nbformat", "ipykernel")
           if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"running the tutorials as notebooks needs {', '.join(MISSING)}: "
                                             "python -m pip install -e \".[notebook]\""),
]


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernelspec that starts ipykernel with this very interpreter (not whatever `python` is on
    PATH), found first through JUPYTER_PATH."""
    name = "facecascade-test-python"
    spec_dir = tmp_path / "jupyter" / "kernels" / name
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (facecascade tests)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(tmp_path / "jupyter"),
                                                                      os.environ.get("JUPYTER_PATH")])))
    return name


def run_as_notebook(stem: str, out_dir: Path, kernel_name: str, monkeypatch):
    """Convert tutorials/<stem>.py with jupytext and execute it in a real kernel; return the notebook."""
    import jupytext
    from nbclient import NotebookClient

    monkeypatch.setenv("FACECASCADE_QUICK", "1")
    monkeypatch.setenv("FACECASCADE_TUTORIAL_OUT", str(out_dir))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its own (inline), as in Jupyter
    notebook = jupytext.read(TUTORIALS / f"{stem}.py")
    client = NotebookClient(notebook, kernel_name=kernel_name, timeout=CELL_TIMEOUT_SECONDS,
                            resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()
    return notebook


def outputs(notebook):
    """Every output of every code cell, in order."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_tutorial_notebook_shows_every_figure_it_saves(stem, tmp_path, kernel_name, monkeypatch):
    out_dir = tmp_path / "figures"
    notebook = run_as_notebook(stem, out_dir, kernel_name, monkeypatch)

    saved = sorted(out_dir.glob("*.png"))
    assert saved, f"{stem} wrote no figure to {out_dir}"
    shown = [base64.b64decode(output["data"]["image/png"]) for output in outputs(notebook)
             if "image/png" in output.get("data", {})]
    missing = [path.name for path in saved if path.read_bytes() not in shown]
    assert not missing, f"{stem}: figures written but not shown in the notebook: {missing}"
    assert len(shown) == len(saved), f"{stem}: {len(saved)} figures written, {len(shown)} images shown"

    # the scripts' messages stay, and no cell shows a figure or a path as text in place of an image
    printed = "".join(output.get("text", "") for output in outputs(notebook) if output["output_type"] == "stream")
    assert printed.count("figure written to") == len(saved)
    as_text = [output["data"]["text/plain"] for output in outputs(notebook)
               if "text/plain" in output.get("data", {}) and "image/png" not in output["data"]]
    assert not [text for text in as_text if "<Figure" in text or "Path(" in text], as_text


def test_a_bare_figure_ending_a_cell_is_drawn(tmp_path, kernel_name, monkeypatch):
    """A student's own Figure, left as the last expression of a cell (an exercise), shows as an
    image once `pipeline.tutorial_support` is imported, although no tutorial uses pyplot."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("FACECASCADE_TUTORIAL_OUT", str(tmp_path / "figures"))
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from pipeline import tutorial_support as _tutorial\nfrom matplotlib.figure import Figure\n"
                                  "fig = Figure(figsize=(2, 2))\nfig.subplots().plot([0, 1], [1, 0])\nfig"),
        nbformat.v4.new_code_cell("_tutorial.save(fig, _tutorial.output_dir('x') / 'mine.png')"),
    ])
    NotebookClient(notebook, kernel_name=kernel_name, timeout=120,
                   resources={"metadata": {"path": str(TUTORIALS)}}).execute()
    bare, saved = ([output for output in cell.outputs if "image/png" in output.get("data", {})]
                   for cell in notebook.cells)
    assert len(bare) == 1 and len(saved) == 1
    assert base64.b64decode(saved[0]["data"]["image/png"]) == (tmp_path / "figures" / "mine.png").read_bytes()
    assert not [output for output in notebook.cells[1].outputs if output["output_type"] == "execute_result"]
