"""Tests for pipeline.data.datasets: the list formats on small files, every kind of bad line, the box
conversions, and the fixed splits of the real data kit (skipped when it is absent)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from paths import require_data
from PIL import Image

from pipeline.data.datasets import (
    DataError,
    cuhk_to_mtcnn,
    ellipse_to_box,
    face_split,
    labelled_photos,
    list_face_free_images,
    negative_split,
    read_fddb_ellipses,
    read_landmark_list,
    read_negative_list,
    read_wider_boxes,
)

CUHK_LINE = ("lfw_5590/Aaron_Eckhart_0001.jpg 26.88 51.52 29.44 54.08 "
             "34.00 34.48 46.96 35.92 40.08 45.68 33.68 50.48 44.72 51.76")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- CUHK face lists


def test_cuhk_list_raw_and_converted(tmp_path):
    path = write(tmp_path, "train.txt", CUHK_LINE + "\n\n" + CUHK_LINE.replace("Aaron", "Bob") + "\n")
    raw = read_landmark_list(path, convert=False)
    assert len(raw) == 2  # the blank line is skipped
    face = raw[0]
    assert face.path == tmp_path.absolute() / "lfw_5590" / "Aaron_Eckhart_0001.jpg"
    assert face.path.is_absolute()
    # left right top bottom -> x1 y1 x2 y2
    np.testing.assert_array_equal(face.box, [26.88, 29.44, 51.52, 54.08])
    assert face.box.dtype == np.float64
    np.testing.assert_array_equal(face.landmarks, [[34.00, 34.48], [46.96, 35.92], [40.08, 45.68],
                                                   [33.68, 50.48], [44.72, 51.76]])
    converted = read_landmark_list(path)
    np.testing.assert_array_equal(converted[0].box, cuhk_to_mtcnn(face.box[None])[0])
    np.testing.assert_array_equal(converted[0].landmarks, face.landmarks)  # points never move


def test_cuhk_list_root(tmp_path):
    path = write(tmp_path, "list.txt", CUHK_LINE + "\n")
    [face] = read_landmark_list(path, root=tmp_path / "images")
    assert face.path == tmp_path.absolute() / "images" / "lfw_5590" / "Aaron_Eckhart_0001.jpg"


def test_cuhk_to_mtcnn_numbers():
    # w = 100, h = 50: x1 + 0.6, y1 - 10.95, x2 + 5.6, y2 + 7.05
    boxes = np.array([[10.0, 20.0, 110.0, 70.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(cuhk_to_mtcnn(boxes), [[10.6, 9.05, 115.6, 77.05],
                                                      [0.006, -0.219, 1.056, 1.141]], rtol=1e-12)
    assert cuhk_to_mtcnn(np.zeros((0, 4))).shape == (0, 4)
    np.testing.assert_array_equal(boxes, [[10, 20, 110, 70], [0, 0, 1, 1]])  # input unchanged
    with pytest.raises(ValueError, match="shape"):
        cuhk_to_mtcnn(np.zeros(4))


def test_cuhk_to_mtcnn_same_floats_as_the_formula():
    # the evaluation must agree bit for bit with x1 + 0.006 * w etc. written out by hand
    rng = np.random.default_rng(0)
    left, top = rng.uniform(0, 40, 50), rng.uniform(0, 40, 50)
    right, bottom = left + rng.uniform(20, 57, 50), top + rng.uniform(20, 57, 50)
    w, h = right - left, bottom - top
    by_hand = np.stack([left + 0.006 * w, top - 0.219 * h, right + 0.056 * w, bottom + 0.141 * h], axis=1)
    np.testing.assert_array_equal(cuhk_to_mtcnn(np.stack([left, top, right, bottom], axis=1)), by_hand)


@pytest.mark.parametrize("line, message", [
    (CUHK_LINE.rsplit(" ", 6)[0], "line 2: expected 15 fields (path, left right top bottom, 5 x,y points), got 9"),
    (CUHK_LINE + " 1.0", "line 2: expected 15 fields"),
    (CUHK_LINE.replace("51.52", "5l.52"), "line 2: box and points: '5l.52' is not a number"),
    (CUHK_LINE.replace("51.52", "nan"), "line 2: box and points: 'nan' is not a finite number"),
    (CUHK_LINE.replace("51.52", "20.00"), "line 2: empty box"),
])
def test_cuhk_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "train.txt", CUHK_LINE + "\n" + line + "\n")
    with pytest.raises(DataError, match=re.escape(message)) as error:
        read_landmark_list(path)
    assert str(error.value).startswith(f"{path}, line 2: ")


# ---------------------------------------------------------------- WIDER FACE boxes

WIDER = """b.jpg
2
10 20 30 40 0 0 0 0 0 0
1 2 3 4 1 0 0 0 0 0
a.jpg
0
0 0 0 0 0 0 0 0 0 0
c.jpg
0
d/e.jpg
1
5 6 7 8
"""


def test_wider_boxes_in_file_order(tmp_path):
    boxes = read_wider_boxes(write(tmp_path, "boxes.txt", WIDER))
    assert list(boxes) == ["b.jpg", "a.jpg", "c.jpg", "d/e.jpg"]  # file order, not sorted
    np.testing.assert_array_equal(boxes["b.jpg"], [[10, 20, 40, 60], [1, 2, 4, 6]])  # x y w h -> x1 y1 x2 y2
    # a count of 0 with WIDER's line of zeros after it, and without
    assert boxes["a.jpg"].shape == (0, 4) and boxes["c.jpg"].shape == (0, 4)
    np.testing.assert_array_equal(boxes["d/e.jpg"], [[5, 6, 12, 14]])  # attributes may be left out
    assert all(b.dtype == np.float64 for b in boxes.values())


@pytest.mark.parametrize("text, message", [
    ("a.jpg\n1\n10 20 30\n", "line 3: expected 4 or 10 fields (x y w h and 6 attributes), got 3"),
    ("a.jpg\n1\n10 20 thirty 40 0 0 0 0 0 0\n", "line 3: x y w h and 6 attributes: 'thirty' is not a number"),
    ("a.jpg\n-1\n", "line 2: the number of faces of a.jpg is negative"),
    ("a.jpg\ntwo\n", "line 2: the number of faces of a.jpg must be an integer, got 'two'"),
    ("a.jpg\n1 2\n", "line 2: expected the number of faces of a.jpg, got 2 fields"),
    ("a.jpg\n3\n1 2 3 4\n", "line 4: file ends after 1 of the 3 faces of a.jpg"),
    ("a.jpg\n2\n", "line 3: file ends after 0 of the 2 faces of a.jpg"),
    ("a.jpg\n", "line 2: file ends after the name a.jpg"),
    ("a.jpg\n0\nb.jpg\n0\na.jpg\n0\n", "line 5: a.jpg is listed a second time"),
])
def test_wider_bad_lines_name_file_and_line(tmp_path, text, message):
    path = write(tmp_path, "boxes.txt", text)
    with pytest.raises(DataError, match=re.escape(message)) as error:
        read_wider_boxes(path)
    assert str(error.value).startswith(f"{path}, line ")


# ---------------------------------------------------------------- FDDB ellipses


def test_fddb_ellipses(tmp_path):
    text = "2002/08/11/big/img_591\n1\n123.58 85.55 1.265839 269.69 161.78  1\n2002/08/26/big/img_265\n0\n"
    ellipses = read_fddb_ellipses(write(tmp_path, "ellipses.txt", text))
    assert list(ellipses) == ["2002/08/11/big/img_591", "2002/08/26/big/img_265"]
    np.testing.assert_array_equal(ellipses["2002/08/11/big/img_591"], [[123.58, 85.55, 1.265839, 269.69, 161.78]])
    assert ellipses["2002/08/26/big/img_265"].shape == (0, 5)
    with pytest.raises(DataError, match="line 3: expected 5 or 6 fields"):
        read_fddb_ellipses(write(tmp_path, "bad.txt", "img\n1\n1 2 3\n"))


def test_ellipse_to_box_unrotated_and_rotated():
    # semi-axes 30 (major) and 20 (minor) about (100, 50)
    ellipses = np.array([[30.0, 20.0, 0.0, 100.0, 50.0],           # major axis along x
                         [30.0, 20.0, np.pi / 2, 100.0, 50.0],     # turned 90 degrees: along y
                         [30.0, 30.0, 0.7, 0.0, 0.0]])             # a circle: any angle
    np.testing.assert_allclose(ellipse_to_box(ellipses), [[70, 30, 130, 70], [80, 20, 120, 80],
                                                          [-30, -30, 30, 30]], rtol=1e-12, atol=1e-12)


def test_ellipse_to_box_encloses_the_ellipse():
    a, b, t, cx, cy = 40.0, 15.0, 0.5, 10.0, -5.0
    s = np.linspace(0, 2 * np.pi, 10001)
    x = cx + a * np.cos(s) * np.cos(t) - b * np.sin(s) * np.sin(t)
    y = cy + a * np.cos(s) * np.sin(t) + b * np.sin(s) * np.cos(t)
    box = ellipse_to_box(np.array([[a, b, t, cx, cy]]))[0]
    # the sampled extremes lie inside the box and within a hair of its sides
    np.testing.assert_allclose([x.min(), y.min(), x.max(), y.max()], box, rtol=0, atol=1e-4)


# ---------------------------------------------------------------- face-free photos


def test_negative_list(tmp_path):
    path = write(tmp_path, "files.txt", "haar/a.jpg 640 480 gray\nurban/b.jpg 1024 683 color\n")
    images = read_negative_list(path)
    assert [(i.path, i.width, i.height, i.gray) for i in images] == [
        (tmp_path.absolute() / "haar" / "a.jpg", 640, 480, True),
        (tmp_path.absolute() / "urban" / "b.jpg", 1024, 683, False)]


@pytest.mark.parametrize("line, message", [
    ("a.jpg 640 480", "line 2: expected 4 fields (path width height gray|color), got 3"),
    ("a.jpg 640 4x0 gray", "line 2: height must be a positive integer, got '4x0'"),
    ("a.jpg -640 480 gray", "line 2: width must be a positive integer, got '-640'"),
    ("a.jpg 640 0 gray", "line 2: height must be a positive integer, got '0'"),
    ("a.jpg 640 480 grey", "line 2: expected gray or color, got 'grey'"),
])
def test_negative_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "files.txt", "ok.jpg 10 10 gray\n" + line + "\n")
    with pytest.raises(DataError, match=re.escape(message)) as error:
        read_negative_list(path)
    assert str(error.value).startswith(f"{path}, line 2: ")


def test_list_face_free_images(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "sub" / "b.jpg")
    Image.fromarray(np.zeros((20, 10, 3), np.uint8)).save(tmp_path / "a.PNG")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / ".hidden" / "c.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    images = list_face_free_images(tmp_path)
    assert [(i.path.relative_to(tmp_path.absolute()).as_posix(), i.width, i.height, i.gray) for i in images] == [
        ("a.PNG", 10, 20, False), ("sub/b.jpg", 40, 30, True)]
    (tmp_path / "broken.jpg").write_text("not an image either")
    with pytest.raises(DataError, match="broken.jpg"):
        list_face_free_images(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        list_face_free_images(tmp_path / "nowhere")


# ---------------------------------------------------------------- the splits of the real kit


def test_split_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        face_split(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        negative_split(tmp_path, "test")


def test_face_splits_of_the_kit():
    data = require_data("cuhk80", "val.txt").parents[1]
    train, val = face_split(data, "train"), face_split(data, "val")
    assert (len(train), len(val)) == (9000, 1000)
    assert not {f.path for f in train} & {f.path for f in val}
    assert val[0].path == (data / "cuhk80" / "lfw_5590" / "Abdulaziz_Kamilov_0001.jpg").absolute()
    assert val[0].path.is_file()
    raw = face_split(data, "val", convert=False)[0].box
    np.testing.assert_array_equal(raw, [24.32, 28.80, 51.84, 56.64])
    np.testing.assert_array_equal(val[0].box, cuhk_to_mtcnn(raw[None])[0])


def test_negative_splits_of_the_kit():
    data = require_data("negatives", "files.txt").parents[1]
    train, val, heldout = (negative_split(data, split) for split in ("train", "val", "heldout"))
    assert (len(train), len(val), len(heldout)) == (1424, 178, 177)
    assert not {i.path for i in train} & {i.path for i in heldout}
    assert not {i.path for i in train} & {i.path for i in val} and not {i.path for i in val} & {i.path for i in heldout}
    assert val == read_negative_list(data / "negatives" / "files.txt")[8::10]
    assert (sum(i.gray for i in heldout), sum(not i.gray for i in heldout)) == (157, 20)
    everything = read_negative_list(data / "negatives" / "files.txt")
    assert heldout == everything[9::10]
    assert heldout[0].path.is_file()


def test_labelled_photos_of_the_kit():
    data = require_data("photos", "boxes.txt").parents[1]
    photos = labelled_photos(data)
    assert len(photos) == 9
    assert sum(len(boxes) for _, boxes in photos) == 43
    path, boxes = photos[0]
    assert path == (data / "photos" / "2007_007763.jpg").absolute() and path.is_file()
    np.testing.assert_array_equal(boxes[0], [194, 90, 231, 127])  # 194 90 37 37 as x1 y1 x2 y2


@pytest.mark.parametrize("line, message", [
    ("missing.jpg 26.88 51.52 29.44 54.08 34 34 46 35 40 45 33 50 44 51", "line 2: image {root}/missing.jpg not found"),
    ("face.jpg -20 10 29.44 54.08 34 34 46 35 40 45 33 50 44 51",
     "line 2: the box (left -20, right 10, top 29.44, bottom 54.08) lies outside the 80 x 80 image face.jpg"),
    ("face.jpg 60 120 29.44 54.08 34 34 46 35 40 45 33 50 44 51", "line 2: the box (left 60, right 120"),
    ("face.jpg 26.88 51.52 29.44 54.08 34 34 46 35 40 45 33 50 44 91", "line 2: a landmark lies outside the 80 x 80"),
])
def test_checked_lists_refuse_impossible_boxes_naming_the_list_and_line(tmp_path, line, message):
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(tmp_path / "face.jpg")
    path = write(tmp_path, "list.txt", CUHK_LINE.replace("lfw_5590/Aaron_Eckhart_0001.jpg", "face.jpg") + "\n" + line + "\n")
    assert len(read_landmark_list(path, check_images=False)) == 2  # unchecked: as written
    with pytest.raises(DataError, match=re.escape(f"{path}, " + message.format(root=tmp_path.absolute()))):
        read_landmark_list(path, check_images=True)


def test_a_box_a_little_over_the_edge_is_kept(tmp_path):
    # the kit has one box 3 px (6% of its side) below its 80 x 80 crop, left as it was drawn
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(tmp_path / "face.jpg")
    line = "face.jpg 30 80 33 83 40 45 60 45 50 55 42 65 58 65"
    assert len(read_landmark_list(write(tmp_path, "list.txt", line + "\n"), check_images=True)) == 1
