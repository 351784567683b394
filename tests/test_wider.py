"""Tests for pipeline.data.wider (WIDER FACE as published, the fixed splits) and
pipeline.data.location (one rule for where the kit is)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from paths import require_data
from PIL import Image

from pipeline.data.location import MissingDataError, data_dir, data_location
from pipeline.data.datasets import DataError
from pipeline.data.wider import (BBX_GT, WILD_TO_DETECTOR, landmark_faces, read_wider, wider_boxes, wider_folder_photos,
                            wider_split, wild_landmark_split)

BBX = """0--Parade/a.jpg
3
10 20 30 40 0 0 0 0 0 0
5 5 0 9 0 0 0 0 0 0
50 60 8 10 2 1 1 1 2 1
1--Handshaking/b.jpg
0
0 0 0 0 0 0 0 0 0 0
2--Demonstration/c.jpg
1
1.5 2.5 3 4
"""


def write(tmp_path, text, name=BBX_GT):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_wider_as_published(tmp_path):
    photos = read_wider(write(tmp_path, BBX))
    assert [p.name for p in photos] == ["0--Parade/a.jpg", "1--Handshaking/b.jpg", "2--Demonstration/c.jpg"]
    assert [p.index for p in photos] == [0, 1, 2]
    assert photos[0].path == (tmp_path / "images" / "0--Parade" / "a.jpg").absolute()
    a = photos[0]
    # the box of zero width is dropped; x2 = x + w, y2 = y + h
    np.testing.assert_array_equal(a.boxes, [[10, 20, 40, 60], [50, 60, 58, 70]])
    np.testing.assert_array_equal(a.attributes, [[0, 0, 0, 0, 0, 0], [2, 1, 1, 1, 2, 1]])
    # the invalid face is not a face to find, but is kept apart as a box to avoid
    np.testing.assert_array_equal(a.faces, [[10, 20, 40, 60]])
    np.testing.assert_array_equal(a.ignored, [[50, 60, 58, 70]])
    assert photos[1].boxes.shape == (0, 4) and photos[1].faces.shape == (0, 4)
    # four numbers only: flags of 0
    np.testing.assert_array_equal(photos[2].boxes, [[1.5, 2.5, 4.5, 6.5]])
    np.testing.assert_array_equal(photos[2].attributes, np.zeros((1, 6)))


def test_wider_boxes_is_x_y_w_h_unchanged():
    np.testing.assert_array_equal(wider_boxes([[3, 4, 10, 20]]), [[3, 4, 13, 24]])


@pytest.mark.parametrize("line, message", [
    ("10 20 -3 40 0 0 0 0 0 0", "line 3: negative box size"),
    ("10 20 30 40 3 0 0 0 0 0", "line 3: the blur flag must be a whole number from 0 to 2; got 3"),
    ("10 20 30 40 0 0 0 0.5 0 0", "line 3: the invalid flag must be a whole number from 0 to 1; got 0.5"),
    ("10 20 30 40 0 0 0 0 0", "line 3: expected 4 or 10 fields"),
    ("10 20 thirty 40", "line 3: x y w h and 6 flags: 'thirty' is not a number"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, f"a.jpg\n1\n{line}\n")
    with pytest.raises(DataError, match=re.escape(f"{path}, {message}")):
        read_wider(path)


def test_a_folder_without_bbx_gt_is_named(tmp_path):
    with pytest.raises(DataError, match="not a WIDER FACE folder"):
        wider_folder_photos(tmp_path)


def test_wider_split_rule(tmp_path):
    names = "".join(f"e/{k}.jpg\n1\n1 1 20 20 0 0 0 0 0 0\n" for k in range(12))
    (tmp_path / "wider").mkdir()
    write(tmp_path / "wider", names)
    val = wider_split(tmp_path, "val")
    train = wider_split(tmp_path, "train")
    assert [p.index for p in val] == [4, 9]
    assert [p.index for p in train] == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11]
    with pytest.raises(ValueError, match="split must be"):
        wider_split(tmp_path, "test")


def test_wild_landmarks_split_and_box_convention(tmp_path):
    folder = tmp_path / "wild_landmarks"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(folder / "images" / "x.jpg")
    line = "images/x.jpg 20 60 30 80 30 45 50 45 40 55 32 65 48 65\n"
    (folder / "landmarks.txt").write_text(line * 6)
    val, train = wild_landmark_split(tmp_path, "val"), wild_landmark_split(tmp_path, "train")
    assert len(val) == 1 and len(train) == 5
    w, h = 40, 50
    dx1, dy1, dx2, dy2 = WILD_TO_DETECTOR
    np.testing.assert_allclose(val[0].box, [20 + dx1 * w, 30 + dy1 * h, 60 + dx2 * w, 80 + dy2 * h])
    np.testing.assert_array_equal(val[0].landmarks[0], [30, 45])


# ---------------------------------------------------------------- the kit


def test_wider_splits_of_the_kit():
    root = require_data("wider", BBX_GT).parents[1]
    train, val = wider_split(root, "train"), wider_split(root, "val")
    assert (len(train), len(val)) == (877, 219)
    assert all(p.index % 5 == 4 for p in val) and not any(p.index % 5 == 4 for p in train)
    boxes = sum(len(p.boxes) for p in train + val)
    invalid = sum(len(p.ignored) for p in train + val)
    assert (boxes, invalid) == (13718 - 4, 181)  # the kit's README: 4 boxes of zero size, 181 invalid
    assert all(p.path.is_file() for p in val)


def test_landmark_faces_of_the_kit():
    root = require_data("wild_landmarks", "landmarks.txt").parents[1]
    assert len(wild_landmark_split(root, "train")) == 1230
    assert len(wild_landmark_split(root, "val")) == 307
    assert len(landmark_faces(root, "val")) == 1000 + 307


# ---------------------------------------------------------------- where the kit is


def test_data_location_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("FACECASCADE_DATA", raising=False)
    folder, source = data_location(None)
    assert source == "the default" and folder == Path(__file__).resolve().parents[2] / "shared" / "data"
    monkeypatch.setenv("FACECASCADE_DATA", str(tmp_path))
    assert data_location(None) == (tmp_path, "$FACECASCADE_DATA")
    monkeypatch.chdir(tmp_path)
    assert data_location("kit") == (tmp_path / "kit", "--data")  # relative: against the current folder


def test_missing_data_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FACECASCADE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(MissingDataError, match=r"nowhere \(\$FACECASCADE_DATA\) is not a folder; pass --data"):
        data_dir()
    with pytest.raises(MissingDataError, match=r"has no wider/wider_face_bbx_gt.txt"):
        data_dir(tmp_path, needs=("wider/wider_face_bbx_gt.txt",))
    assert data_dir(tmp_path) == tmp_path
