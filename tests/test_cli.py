"""The `facecascade` command line: gradcheck, detect (with bad files in a batch) and demo."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline import __version__
from pipeline.cli import main


@pytest.fixture(scope="module")
def astronaut():
    return pytest.importorskip("skimage.data").astronaut()


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("gradcheck", "detect", "demo"):
        assert command in out


def test_python_dash_m_pipeline_runs():
    done = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and __version__ in done.stdout


def test_gradcheck_prints_a_passing_table(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for op in ("conv", "maxpool", "prelu", "relu", "linear", "softmax", "lrn", "spp", "dropout",
               "softmax_cross_entropy", "euclidean_loss"):
        assert f"\n{op} " in out
    assert "0 failed" in out and "FAIL" not in out


def test_detect_goes_on_after_bad_files(tmp_path, astronaut, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "astronaut.png")
    Image.fromarray(np.full((50, 60), 200, np.uint8)).save(photos / "blank.jpg")
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "broken.png").write_bytes((photos / "astronaut.png").read_bytes()[:2000])
    (photos / "notes.jpg").write_text("a text file with an image's name")
    out_dir = tmp_path / "out"
    code = main(["detect", str(photos), "--out", str(out_dir), "--json"])
    captured = capsys.readouterr()
    assert code == 1  # some files failed
    for name in ("empty.jpg", "broken.png", "notes.jpg"):
        assert name in captured.err
    assert len([line for line in captured.err.splitlines() if line.startswith("error:")]) == 3
    assert "2 of 5 images processed, 1 face, 3 errors" in captured.out
    faces = json.loads((out_dir / "astronaut.json").read_text())
    assert len(faces) == 1
    assert set(faces[0]) == {"box", "score", "landmarks"}
    assert len(faces[0]["box"]) == 4 and len(faces[0]["landmarks"]) == 5
    assert json.loads((out_dir / "blank.json").read_text()) == []
    annotated = Image.open(out_dir / "astronaut.png")
    assert annotated.size == (512, 512)


def test_detect_missing_file_fails_clearly(tmp_path, capsys):
    code = main(["detect", str(tmp_path / "nowhere.jpg"), "--out", str(tmp_path / "out")])
    assert code == 1
    assert "nowhere.jpg" in capsys.readouterr().err


def test_detect_refuses_bad_min_face(tmp_path):
    with pytest.raises(SystemExit):
        main(["detect", str(tmp_path), "--min-face", "0"])


def test_demo_writes_every_stage_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    written = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert written == ["0_faces.png", "1_pyramid.png", "2_stage1_heatmaps.png", "3_stage1_nms.png", "4_stage2.png",
                       "5_stage3.png", "6_stages.png", "7_counts.png"]
    assert all((tmp_path / "demo" / name).stat().st_size > 1000 for name in written)
