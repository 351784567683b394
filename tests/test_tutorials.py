"""Smoke tests for the tutorials: each one runs start to finish as a script and writes its figures.

Every tutorial tutorials/NN_name.py is run in a fresh Python process, as a student would run it
(``python tutorials/NN_name.py``), from an empty temporary directory, with
FACECASCADE_TUTORIAL_OUT pointing at a temporary folder, FACECASCADE_QUICK=1 (fewer timing
repeats, every step still runs) and MPLBACKEND=Agg (no display). The tutorials contain their
own asserts (hand-computed numbers, naive == fast, gradient checks), so exit code 0 means those
held too. The list of tutorials comes from a glob, so a new tutorial is tested without being
registered here; its expected figures can be added to FIGURES.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
TIMEOUT_SECONDS = 300  # quick mode takes well under 30 s each; this only stops a hang

# The figures each tutorial promises (file names inside its output folder).
FIGURES = {
    "01_convolution_by_hand": ["conv_by_hand.png", "im2col.png", "ceil_mode.png", "timing.png"],
    "02_backprop_by_hand": ["conv_backward.png", "maxpool_backward.png", "gradcheck_errors.png"],
    "03_inside_pnet": ["receptive_field.png", "conv1_filters.png", "feature_maps_prelu1.png",
                       "feature_maps_prelu3.png", "fully_convolutional.png"],
    "04_mtcnn_step_by_step": ["pyramid.png", "heatmaps.png", "nms.png", "rnet_crops.png", "rnet.png", "onet.png",
                              "counts.png", "faces.png", "astronaut_stages.png"],
    "05_sppnet": ["box_mapping.png", "spp_bins.png", "shared_features.png"],
    "06_training_a_cascade": ["curves.png", "threshold_roc.png", "calibration_patterns.png", "calibrated_window.png",
                              "hard_negatives.png", "cascade_stages.png", "cascade_counts.png"],
    "07_training_mtcnn": ["sample_kinds.png", "loss_masks.png", "ohem.png", "loss_terms.png", "scratch_vs_released.png"],
    "08_aligned_face_crops": ["why_align.png", "crops.png", "redetect.png"],
    "09_making_it_fast": ["speedups.png"],
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# Tutorials that train on the face data kit; they get its folder through FACECASCADE_DATA.
NEEDS_DATA = {"06_training_a_cascade", "07_training_mtcnn"}


def _run(tutorial: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out_dir = tmp_path / "figures"
    env = dict(os.environ, FACECASCADE_TUTORIAL_OUT=str(out_dir), FACECASCADE_QUICK="1", MPLBACKEND="Agg")
    if tutorial.stem in NEEDS_DATA:
        from paths import require_data

        env["FACECASCADE_DATA"] = str(require_data("cuhk80", "train.txt").parents[1])
    work = tmp_path / "cwd"
    work.mkdir()
    result = subprocess.run([sys.executable, str(tutorial)], cwd=work, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_SECONDS)
    return result, out_dir


def test_tutorials_are_found():
    assert len(TUTORIALS) >= 5, f"expected the tutorials in {ROOT / 'tutorials'}, found {TUTORIALS}"


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs_and_writes_its_figures(tutorial, tmp_path):
    result, out_dir = _run(tutorial, tmp_path)
    if result.returncode != 0:
        pytest.fail(f"{tutorial.name} exited with {result.returncode}\n--- stdout (last 3000 chars) ---\n"
                    f"{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr}")
    expected = FIGURES.get(tutorial.stem)
    written = sorted(p.name for p in out_dir.glob("*.png")) if out_dir.is_dir() else []
    if expected is None:  # a new tutorial not listed above: it must write at least one figure
        assert written, f"{tutorial.name} wrote no figures to {out_dir}"
        expected = written
    for name in expected:
        path = out_dir / name
        assert path.is_file(), f"{tutorial.name} did not write {name}; it wrote {written}"
        assert path.stat().st_size > 0, f"{path} is empty"
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG file"
    # nothing may land in the working directory when an output folder is given
    assert not (tmp_path / "cwd" / "tutorial-output").exists()


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_is_a_headless_percent_script(tutorial):
    """Openable as a notebook (jupytext percent cells), never opens a window."""
    source = tutorial.read_text(encoding="utf-8")
    assert source.count("# %% [markdown]") >= 3, "expected markdown cells marked '# %% [markdown]'"
    assert re.search(r"^# %%$", source, flags=re.MULTILINE), "expected code cells marked '# %%'"
    assert ".show(" not in source, "tutorials write figures to files and never call show()"
    assert "import matplotlib.pyplot" not in source and "from matplotlib import pyplot" not in source
    assert "## Exercises" in source and "*Hint:*" in source, "every tutorial ends with exercises and hints"


def test_readme_lists_every_tutorial():
    readme = (ROOT / "tutorials" / "README.md").read_text(encoding="utf-8")
    missing = [t.name for t in TUTORIALS if t.name not in readme]
    assert not missing, f"tutorials/README.md does not mention {missing}"


def test_tutorial_2_exercise_2_works_as_written():
    """The recipe of exercise 2: the naive max-pool backward, copied with `=` instead of `+=`,
    paired with the naive forward (whose cache it reads), is caught by check_op; the copy with
    `+=` passes."""
    import inspect

    import numpy as np

    from layers import pool
    from layers.gradcheck import check_op

    source = inspect.getsource(pool.maxpool_backward_naive).replace("maxpool_backward_naive", "my_maxpool_backward")
    assert source.count("+=") == 1
    x = np.array([[1.0, 2, 3, 4, 5], [6, 7, 20, 8, 9], [10, 11, 12, 13, 14]]).reshape(1, 1, 3, 5)
    hyper = {"size": 3, "stride": 2, "ceil_mode": True}
    for text, should_pass in ((source, True), (source.replace("+=", "="), False)):
        namespace = {"np": np}
        exec(text, namespace)
        results = check_op("maxpool", pool.maxpool_forward_naive, namespace["my_maxpool_backward"], {"x": x},
                           hyper=hyper)
        assert results[0].passed == should_pass


def test_an_exercise_copied_out_of_tutorials_finds_its_helpers(tmp_path):
    """The tutorials' helpers are part of the package: a tutorial copied to another folder runs."""
    copy = tmp_path / "my_exercise.py"
    copy.write_text((ROOT / "tutorials" / "01_convolution_by_hand.py").read_text(encoding="utf-8"))
    env = dict(os.environ, FACECASCADE_QUICK="1", FACECASCADE_TUTORIAL_OUT=str(tmp_path / "out"))
    result = subprocess.run([sys.executable, str(copy)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]


def test_missing_scikit_image_gets_an_install_hint(tmp_path):
    """Tutorials 3 to 5 and 9 take the astronaut from `_tutorial.astronaut()`, which says how to install
    scikit-image when it is missing instead of failing with an ImportError."""
    code = ("import sys; sys.modules['skimage'] = None; sys.path.insert(0, %r); "
            "from pipeline import tutorial_support as _tutorial; _tutorial.astronaut()" % str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "python -m pip install scikit-image" in result.stderr
    assert "Traceback" not in result.stderr
    for name in ("03_inside_pnet", "04_mtcnn_step_by_step", "05_sppnet", "09_making_it_fast"):
        source = (ROOT / "tutorials" / f"{name}.py").read_text(encoding="utf-8")
        assert "import skimage" not in source and "_tutorial.astronaut()" in source
        assert "pip install scikit-image" in source  # said in the text, before it is needed
