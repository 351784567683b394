"""Tests for pipeline.detection.align: the similarity fit, the bilinear warp and aligned face crops.

The fit is checked against transforms we made ourselves and against plain linear least squares;
the warp against hand-computed pixels and against its loop twin; the crops end to end: a face
in a photo rotated by 20 and -30 degrees comes out upright, which we see by detecting the face
again in the crop.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from strategies import MAX_SIZE, seeds
from tolerances import FAST_VS_NAIVE_F64, REFERENCE_F64, assert_close

import pipeline
from pipeline.detection.align import (ARCFACE_TEMPLATE_112, alignment_matrix, apply_transform, box_matrix,
                            extract_faces, face_template, save_crops, similarity_transform,
                            warp_affine, warp_affine_naive)
from pipeline.detection.trace import Face

# The fit recovers a transform we made (or matches linear least squares) in float64. A 2 x 2 SVD
# and a few sums over <= 7 points of size <= 100: errors of a few roundings of 1.1e-16 relative
# to the largest entry, times the conditioning of the point cloud (its spread is at least ~1 of
# coordinates up to 100 here, so ~1e2). 1e-10 keeps a wide margin; a wrong formula (a missing
# reflection fix, a transposed R) is off by ~1e-1 or more.
FIT_F64 = 1e-10

# Re-detecting the landmarks in an aligned crop, in pixels of the 112 x 112 crop. The crop is
# faithful when the landmarks found again lie where the fit moved them: measured at most 2.8 px
# on the rotated photos (O-Net's landmarks wander by a pixel or two between two views of a face).
REDETECT_PX = 4.0
# The fit cannot put five points of a real face exactly on the template (a similarity has only
# four degrees of freedom; the astronaut's broad smile puts her mouth corners ~6-7 px wider than
# the template's). Measured at most 7.0 px, mean ~4.6 px.
TEMPLATE_MAX_PX = 8.5
TEMPLATE_MEAN_PX = 5.5
# The eye line of an upright face is horizontal: measured within 0.3 degrees after alignment,
# against 17 and 29 degrees before it.
UPRIGHT_DEGREES = 3.0


def rotation(angle: float) -> np.ndarray:
    """(2, 2) rotation by angle radians (counter-clockwise with y up, clockwise on screen)."""
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def linear_least_squares_fit(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The similarity fit another way: in 2-D, s R = [[a, -b], [b, a]], so s R p + t is linear in
    (a, b, tx, ty) and ordinary least squares over those four numbers finds the best similarity."""
    x, y = points[:, 0], points[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    rows = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


# ---------------------------------------------------------------- the template


def test_template_is_arcface_in_our_pixel_convention():
    # pixel centres are at c + 0.5 here and at c in OpenCV's convention, which the numbers use
    np.testing.assert_array_equal(face_template(), ARCFACE_TEMPLATE_112 + 0.5)
    np.testing.assert_allclose(face_template(112)[0], [38.7946, 52.1963], rtol=1e-15)


def test_template_scales_with_size_and_shrinks_into_the_margin():
    np.testing.assert_allclose(face_template(224), 2 * face_template(112), rtol=1e-15)
    # margin 16 of 112: the face fills the central 96 pixels, 8 on each side are surroundings
    np.testing.assert_allclose(face_template(112, margin=16), face_template(96) + 8, rtol=1e-15)


@pytest.mark.parametrize("size, margin", [(0, 0), (112, 112), (112, -1), (11.5, 0)])
def test_bad_size_or_margin_is_refused(size, margin):
    with pytest.raises(ValueError, match="size|margin"):
        face_template(size, margin)


# ---------------------------------------------------------------- the fit


@given(seed=seeds(), k=st.integers(2, 7), angle=st.floats(-np.pi, np.pi),
       scale=st.floats(0.05, 20.0), shift=st.tuples(st.floats(-200, 200), st.floats(-200, 200)))
def test_fit_recovers_a_known_rotation_scale_and_shift(seed, k, angle, scale, shift):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-100, 100, size=(k, 2))
    known = np.hstack([scale * rotation(angle), np.array(shift)[:, None]])
    matrix = similarity_transform(points, apply_transform(known, points))
    assert_close(matrix[:, :2], known[:, :2], FIT_F64, "s R")
    assert_close(matrix, known, FIT_F64, "[s R | t]")  # t may be 0: measured against the whole matrix


@given(seed=seeds(), k=st.integers(2, 7), mirror=st.booleans())
def test_fit_is_the_least_squares_similarity(seed, k, mirror):
    # noisy targets (no exact answer), and sometimes a mirror image, which no rotation can undo:
    # Umeyama's reflection fix must still give the best proper rotation
    rng = np.random.default_rng(seed)
    points = rng.uniform(-100, 100, size=(k, 2))
    target = apply_transform(np.hstack([0.7 * rotation(1.0), [[5.0], [-3.0]]]), points)
    target += rng.normal(scale=20.0, size=target.shape)
    if mirror:
        target[:, 0] *= -1
    matrix = similarity_transform(points, target)
    assert_close(matrix, linear_least_squares_fit(points, target), FIT_F64, "Umeyama vs least squares")
    assert np.linalg.det(matrix[:, :2]) >= 0, "the fit must never mirror the face"


def test_fit_by_hand_two_points():
    # (0, 0) -> (1, 1) and (2, 0) -> (1, 3): the segment turns by +90 degrees (x onto y) and
    # keeps its length, so s R = [[0, -1], [1, 0]] and t = (1, 1)
    matrix = similarity_transform([[0, 0], [2, 0]], [[1, 1], [1, 3]])
    assert_close(matrix, [[0, -1, 1], [1, 0, 1]], REFERENCE_F64, "by hand")


def test_fit_refuses_points_in_one_place_and_bad_shapes():
    with pytest.raises(ValueError, match="one place"):
        similarity_transform([[3, 4], [3, 4], [3, 4]], [[0, 0], [1, 0], [0, 1]])
    with pytest.raises(ValueError, match="same shape"):
        similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        similarity_transform([[1, 2]], [[3, 4]])
    with pytest.raises(ValueError, match="five landmarks"):
        alignment_matrix(np.zeros((0, 2)))


def test_box_matrix_puts_the_square_box_inside_the_margin():
    # box 32 wide and 16 high grows to the square [10, 12, 42, 44]; with size 112 and margin 16
    # its corners land 8 pixels in from the crop's corners
    matrix = box_matrix([10, 20, 42, 36], size=112, margin=16)
    corners = apply_transform(matrix, [[10, 12], [42, 44]])
    assert_close(corners, [[8, 8], [104, 104]], REFERENCE_F64, "corners")


# ---------------------------------------------------------------- the warp


def test_warp_identity_returns_the_image():
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    np.testing.assert_array_equal(warp_affine(x, [[1, 0, 0], [0, 1, 0]], 4, 5), x)


def test_warp_half_pixel_shift_by_hand():
    # moving the image right by half a pixel: output pixel (0, j) reads x halfway between columns
    # j - 1 and j, and column -1 is the fill (10)
    x = np.array([[[0.0], [2.0], [6.0]]])                                  # (1, 3, 1)
    out = warp_affine(x, [[1, 0, 0.5], [0, 1, 0]], 1, 3, fill=10.0)
    np.testing.assert_allclose(out[0, :, 0], [(10 + 0) / 2, (0 + 2) / 2, (2 + 6) / 2], rtol=1e-15)


def test_warp_half_scale_averages_two_by_two_blocks():
    # shrinking by 2: output pixel (i, j) has its centre at (j + 0.5, i + 0.5), which comes from
    # (2j + 1, 2i + 1), the corner shared by four pixels, so it reads their mean
    x = np.arange(16, dtype=np.float64).reshape(4, 4, 1)
    out = warp_affine(x, [[0.5, 0, 0], [0, 0.5, 0]], 2, 2)
    np.testing.assert_allclose(out[:, :, 0], [[2.5, 4.5], [10.5, 12.5]], rtol=1e-15)


def test_warp_quarter_turn_moves_pixels_exactly():
    # p = (x, y) -> (3 - y, x): a quarter turn (clockwise on screen) of a 3 x 2 image into 2 x 3
    x = np.arange(6, dtype=np.float64).reshape(3, 2, 1)
    out = warp_affine(x, [[0, -1, 3], [1, 0, 0]], 2, 3)
    np.testing.assert_allclose(out[:, :, 0], np.rot90(x[:, :, 0], k=-1), rtol=1e-15, atol=1e-13)


@given(seed=seeds(), H=st.integers(1, MAX_SIZE), W=st.integers(1, MAX_SIZE), C=st.integers(1, 3),
       out_h=st.integers(1, MAX_SIZE), out_w=st.integers(1, MAX_SIZE))
def test_warp_fast_equals_naive(seed, H, W, C, out_h, out_w):
    # any affine map (rotation, shear, flips, far away), so inside, border and outside all occur
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((H, W, C))
    matrix = np.hstack([rng.uniform(-2, 2, (2, 2)) + np.eye(2) * 2.5, rng.uniform(-8, 8, (2, 1))])
    fill = rng.standard_normal(C)
    assert_close(warp_affine(x, matrix, out_h, out_w, fill),
                 warp_affine_naive(x, matrix, out_h, out_w, fill), FAST_VS_NAIVE_F64, "warp fast vs naive")


def test_warp_keeps_float32_and_refuses_bad_input():
    x = np.ones((3, 3, 3), np.float32)
    assert warp_affine(x, [[2, 0, 0], [0, 2, 0]], 5, 5).dtype == np.float32
    with pytest.raises(ValueError, match="not invertible"):
        warp_affine(x, [[1, 2, 0], [2, 4, 0]], 5, 5)
    with pytest.raises(ValueError, match="float"):
        warp_affine(x.astype(np.uint8), np.eye(2, 3), 5, 5)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        warp_affine(np.ones((3, 3)), np.eye(2, 3), 5, 5)


# ---------------------------------------------------------------- extract_faces


@pytest.fixture
def photo() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)


def test_box_crop_at_the_box_size_is_a_copy(photo):
    crops = extract_faces(photo, np.array([[10.0, 20, 42, 52]]), size=32, align=False)
    assert crops.shape == (1, 32, 32, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0], photo[20:52, 10:42])


def test_box_crop_at_half_size_is_rounded_block_means(photo):
    crop = extract_faces(photo, np.array([[10.0, 20, 42, 52]]), size=16, align=False)[0]
    blocks = photo[20:52, 10:42].astype(np.float64).reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    np.testing.assert_array_equal(crop, np.rint(blocks))


def test_box_crop_grows_the_box_to_a_square_and_fills_outside(photo):
    # [-8, 0, 24, 16] is 32 x 16; its square is [-8, -8, 24, 24]: 8 rows and columns off the image
    crop = extract_faces(photo, np.array([[-8.0, 0, 24, 16]]), size=32, align=False, fill=(255, 0, 7))[0]
    np.testing.assert_array_equal(crop[8:, 8:], photo[0:24, 0:24])
    np.testing.assert_array_equal(crop[:8].reshape(-1, 3), np.tile([255, 0, 7], (8 * 32, 1)))
    np.testing.assert_array_equal(crop[:, :8].reshape(-1, 3), np.tile([255, 0, 7], (8 * 32, 1)))


def test_box_margin_shows_the_surroundings(photo):
    # margin 16 of 32: the box [16, 16, 48, 48] fills the central 16 pixels, so the crop shows
    # [0, 64) at half scale, exactly the crop of the box [0, 0, 64, 64] without margin
    with_margin = extract_faces(photo, np.array([[16.0, 16, 48, 48]]), size=32, margin=16, align=False)
    bigger_box = extract_faces(photo, np.array([[0.0, 0, 64, 64]]), size=32, align=False)
    np.testing.assert_array_equal(with_margin, bigger_box)


def test_aligned_crop_undoes_a_quarter_turn_exactly():
    # Put the template into a photo turned by a quarter turn (clockwise on screen) with the crop's
    # pixel centres on the photo's pixel centres: T(x, y) = (200 - y, 50 + x). The aligned crop
    # must then be the photo's pixels, read back without any interpolation:
    # crop pixel (i, j), centre (j + 0.5, i + 0.5), comes from photo pixel (row 50 + j, col 199 - i).
    photo = np.random.default_rng(3).integers(0, 256, size=(250, 260, 3), dtype=np.uint8)
    turn = np.array([[0.0, -1, 200], [1, 0, 50]])
    landmarks = apply_transform(turn, face_template())
    crop = extract_faces(photo, (np.zeros((1, 4)), landmarks[None]))[0]
    i, j = np.mgrid[0:112, 0:112]
    np.testing.assert_array_equal(crop, photo[50 + j, 199 - i])


def test_aligned_landmarks_land_on_the_template_with_margin():
    landmarks = apply_transform(np.hstack([1.7 * rotation(0.4), [[300.0], [120.0]]]), face_template())
    for size, margin in ((112, 0), (160, 20), (64, 8)):
        moved = apply_transform(alignment_matrix(landmarks, size, margin), landmarks)
        assert_close(moved, face_template(size, margin), FIT_F64, f"size {size}, margin {margin}")


def test_every_input_form_gives_the_same_crops(tmp_path):
    photo = np.random.default_rng(5).integers(0, 256, size=(80, 100, 3), dtype=np.uint8)
    landmarks = np.stack([apply_transform(np.hstack([0.5 * rotation(a), [[50.0], [40.0]]]), face_template())
                          for a in (0.0, 0.3)])
    boxes = np.array([[20.0, 10, 70, 60], [30, 20, 80, 70]])
    faces = [Face(box, 0.99, points) for box, points in zip(boxes, landmarks)]
    Image.fromarray(photo).save(tmp_path / "photo.png")
    for align in (True, False):
        expected = extract_faces(photo, faces, size=48, align=align)
        assert expected.shape == (2, 48, 48, 3)
        for image in (tmp_path / "photo.png", str(tmp_path / "photo.png"), Image.fromarray(photo)):
            np.testing.assert_array_equal(extract_faces(image, faces, size=48, align=align), expected)
        np.testing.assert_array_equal(extract_faces(photo, (boxes, landmarks), size=48, align=align), expected)
        np.testing.assert_array_equal(pipeline.extract_faces(photo, faces, size=48, align=align), expected)
    np.testing.assert_array_equal(extract_faces(photo, boxes, size=48, align=False),
                                  extract_faces(photo, faces, size=48, align=False))


def test_no_faces_gives_an_empty_stack(photo):
    for faces in ([], (np.zeros((0, 4)), np.zeros((0, 5, 2))), np.zeros((0, 4))):
        crops = extract_faces(photo, faces, size=112, align=not isinstance(faces, np.ndarray))
        assert crops.shape == (0, 112, 112, 3) and crops.dtype == np.uint8


def test_alignment_without_landmarks_says_what_to_do(photo):
    cascade_face = Face(np.array([10.0, 10, 50, 50]), 0.9, np.zeros((0, 2)))  # Cascade-CNN: no landmarks
    with pytest.raises(ValueError, match="five landmarks.*align=False"):
        extract_faces(photo, [cascade_face])
    with pytest.raises(ValueError, match="five landmarks.*align=False"):
        extract_faces(photo, np.array([[10.0, 10, 50, 50]]))
    assert extract_faces(photo, [cascade_face], align=False).shape == (1, 112, 112, 3)


def test_bad_arguments_are_refused(photo):
    faces = (np.array([[10.0, 10, 50, 50]]), None)
    with pytest.raises(ValueError, match="margin"):
        extract_faces(photo, faces, size=32, margin=32, align=False)
    with pytest.raises(ValueError, match="fill"):
        extract_faces(photo, faces, align=False, fill=300)
    with pytest.raises(ValueError, match="empty"):
        extract_faces(photo, (np.array([[10.0, 10, 10, 10]]), None), align=False)
    with pytest.raises(ValueError, match="2 sets of landmarks"):
        extract_faces(photo, (np.array([[10.0, 10, 50, 50]]), np.zeros((2, 5, 2))))


# ---------------------------------------------------------------- end to end: rotated photos


@pytest.fixture(scope="module")
def detector():
    from pipeline.detection.mtcnn import MTCNNDetector

    return MTCNNDetector(workers=1)


@pytest.fixture(scope="module")
def astronaut():
    return pytest.importorskip("skimage.data").astronaut()


def eye_line_degrees(landmarks: np.ndarray) -> float:
    """Angle of the line from the left to the right eye, in degrees (0 = horizontal)."""
    dx, dy = landmarks[1] - landmarks[0]
    return float(np.degrees(np.arctan2(dy, dx)))


@pytest.mark.parametrize("angle", [20, -30])
def test_face_in_a_rotated_photo_comes_out_upright(detector, astronaut, angle):
    turned = np.asarray(Image.fromarray(astronaut).rotate(angle, resample=Image.BILINEAR, expand=True))
    faces = detector.detect(turned)
    assert faces, f"no face found in the photo rotated by {angle} degrees"
    face = faces[0]
    crop = extract_faces(turned, [face])[0]
    box_crop = extract_faces(turned, [face], align=False)[0]

    def detect_in_crop(crop: np.ndarray) -> np.ndarray:
        # a face filling the whole image is hard to find; give it room, as in a photo
        canvas = np.zeros((256, 256, 3), np.uint8)
        canvas[72:184, 72:184] = crop
        found = detector.detect(canvas)
        assert found, "no face found again in the crop"
        return found[0].landmarks - 72                  # back to crop coordinates

    # the box crop keeps the tilt; the aligned crop is upright
    assert abs(eye_line_degrees(detect_in_crop(box_crop))) > 10
    again = detect_in_crop(crop)
    assert abs(eye_line_degrees(again)) < UPRIGHT_DEGREES
    # the landmarks are where the fit sent them, and near the template
    fitted = apply_transform(alignment_matrix(face.landmarks), face.landmarks)
    assert np.linalg.norm(again - fitted, axis=1).max() < REDETECT_PX
    off_template = np.linalg.norm(again - face_template(), axis=1)
    assert off_template.max() < TEMPLATE_MAX_PX and off_template.mean() < TEMPLATE_MEAN_PX, off_template


# ---------------------------------------------------------------- the command line


def test_detect_crops_writes_one_png_per_face(tmp_path, astronaut):
    from pipeline.cli.main import main

    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    out_dir = tmp_path / "out"
    assert main(["detect", str(tmp_path / "astronaut.png"), "--out", str(out_dir), "--crops"]) == 0
    written = sorted((out_dir / "crops").iterdir())
    assert [p.name for p in written] == ["astronaut_face0.png"]
    with Image.open(written[0]) as crop:
        assert crop.size == (112, 112) and crop.mode == "RGB"


def test_save_crops_cuts_boxes_for_faces_without_landmarks(tmp_path, photo):
    faces = [Face(np.array([10.0, 10, 50, 50]), 0.9, np.zeros((0, 2))),
             Face(np.array([60.0, 20, 90, 50]), 0.8, np.zeros((0, 2)))]
    paths = save_crops(photo, faces, tmp_path / "crops", "photo", size=40)
    assert [p.name for p in paths] == ["photo_face0.png", "photo_face1.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), photo[10:50, 10:50])
