"""Aligned face crops: each face turned upright and cut out at a fixed size, for face recognition.

Recognition nets (ArcFace/InsightFace and most of their kin) are trained on crops in which the
five landmarks of every face sit at the same five places of a 112 x 112 image. To make such a
crop from a detection takes two steps:

  1. fit:  the similarity transform (rotation, uniform scale, translation) that moves the face's
           five landmarks as close as possible, in least squares, onto the template's five
           points (`similarity_transform`, Umeyama's closed form);
  2. warp: for every pixel of the crop, map its centre back into the photo with the inverse
           transform and read the photo there by bilinear interpolation (`warp_affine`).

`extract_faces` does both for a list of faces; with ``align=False`` it cuts out the square box
instead (a scale and a shift, no rotation, through the same warp).

Coordinates follow `pipeline.detection.boxes`: x is the column, y the row, and pixel (r, c) covers the
square [c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5). A transform is a (2, 3) float
``matrix`` [A | t] that maps a point p = (x, y) to A p + t; for a similarity A = s R.

Reference: S. Umeyama, "Least-squares estimation of transformation parameters between two point
patterns", IEEE TPAMI 13(4), 1991.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.detection.boxes import make_square
from pipeline.data.images import load_image

TEMPLATE_SIZE = 112  # side of the crop the template below was made for, in pixels

# The five-point template of ArcFace/InsightFace face recognition for a 112 x 112 crop: (x, y) of
# the left eye, right eye, nose tip, left mouth corner and right mouth corner, "left" being the
# image's left (the order of MTCNN's landmarks). These are the published numbers, which use
# OpenCV's pixel convention: pixel (r, c) has its centre at (c, r). In ours its centre is at
# (c + 0.5, r + 0.5), so `face_template` adds half a pixel.
ARCFACE_TEMPLATE_112 = np.array([
    [38.2946, 51.6963],   # left eye
    [73.5318, 51.5014],   # right eye
    [56.0252, 71.7366],   # nose tip
    [41.5493, 92.3655],   # left mouth corner
    [70.7299, 92.2041],   # right mouth corner
])

LANDMARK_NAMES = ("left eye", "right eye", "nose", "left mouth corner", "right mouth corner")


# ---------------------------------------------------------------- the template


def _check_size_and_margin(size, margin) -> None:
    if int(size) != size or size < 1:
        raise ValueError(f"size must be an integer >= 1 (pixels); got {size!r}")
    if not 0 <= margin < size:
        raise ValueError(f"margin must be >= 0 and smaller than size = {size} (pixels); got {margin!r}")


def face_template(size: int = TEMPLATE_SIZE, margin: float = 0) -> np.ndarray:
    """Where the five landmarks go in a size x size crop.

    size: side of the crop in pixels (>= 1); margin: pixels of the crop, in total over both
    sides (half on each side), left around the face, 0 <= margin < size.
    Returns (5, 2) float64 (x, y) in the crop's pixel coordinates, in the order of
    `LANDMARK_NAMES`: the ArcFace template (in our pixel convention) scaled from 112 to
    size - margin pixels and shifted by margin / 2, so that the face fills the central
    (size - margin) x (size - margin) square. size=112, margin=0 is the template itself.
    """
    _check_size_and_margin(size, margin)
    inner = size - margin
    return (ARCFACE_TEMPLATE_112 + 0.5) * (inner / TEMPLATE_SIZE) + margin / 2


# ---------------------------------------------------------------- the fit


def similarity_transform(points, target) -> np.ndarray:
    """The least-squares similarity transform from points to target (Umeyama, 1991).

    points, target: (K, 2) float (x, y), K >= 2 matching points; the points must not all
    coincide.
    Returns matrix: (2, 3) float64 [s R | t] that minimizes sum_k |s R p_k + t - q_k|^2 over
    rotations R (det R = +1, never a mirror image), scales s >= 0 and translations t.

    With the centred points X = p - mean(p), Y = q - mean(q), each (K, 2), and the SVD
    Y^T X = U diag(sigma) V^T (a 2 x 2 matrix):
        D = diag(1, sign det(U V^T))      (flips the weaker axis if U V^T is a mirror image)
        R = U D V^T,   s = trace(diag(sigma) D) / sum |X|^2,   t = mean(q) - s R mean(p).
    Tutorial 8 derives these lines.
    """
    points = _as_points(points, "points")
    target = _as_points(target, "target")
    if points.shape != target.shape:
        raise ValueError(f"points and target must have the same shape; got {points.shape} and {target.shape}")
    if len(points) < 2:
        raise ValueError(f"need at least 2 points to fit a similarity; got {len(points)}")
    mean_p, mean_q = points.mean(axis=0), target.mean(axis=0)
    X, Y = points - mean_p, target - mean_q
    spread = float(np.sum(X**2))
    if spread == 0.0:
        raise ValueError("the points all lie at one place: no scale or rotation can be fitted")
    U, sigma, Vt = np.linalg.svd(Y.T @ X)
    D = np.diag([1.0, 1.0 if np.linalg.det(U @ Vt) >= 0 else -1.0])
    R = U @ D @ Vt
    s = float(np.trace(np.diag(sigma) @ D)) / spread
    t = mean_q - s * R @ mean_p
    return np.hstack([s * R, t[:, None]])


def _as_points(points, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (K, 2) as x, y; got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} contain NaN or infinite coordinates")
    return points


def apply_transform(matrix, points) -> np.ndarray:
    """Move points by a transform. matrix: (2, 3) [A | t]; points: (K, 2) (x, y).
    Returns (K, 2) float64: A p + t for every point p."""
    matrix = _as_matrix(matrix)
    points = _as_points(points, "points")
    return points @ matrix[:, :2].T + matrix[:, 2]


def _as_matrix(matrix) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix must have shape (2, 3) as [A | t]; got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("matrix contains NaN or infinite values")
    return matrix


def _as_invertible(matrix) -> np.ndarray:
    matrix = _as_matrix(matrix)
    A = matrix[:, :2]
    # relative to the size of A, so that a tiny but honest scale (a huge image shrunk to a few
    # pixels) still passes and only a (nearly) flat map is refused
    if abs(np.linalg.det(A)) <= 1e-12 * max(float(np.sum(A**2)), 1e-300):
        raise ValueError(f"matrix is not invertible (det A = {np.linalg.det(A):.3g}): it flattens the image")
    return matrix


def alignment_matrix(landmarks, size: int = TEMPLATE_SIZE, margin: float = 0) -> np.ndarray:
    """The transform that moves one face's landmarks onto `face_template(size, margin)`.

    landmarks: (5, 2) float (x, y) in pixels of the photo, in the order of `LANDMARK_NAMES`.
    Returns (2, 3) float64, photo coordinates -> crop coordinates (a similarity).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise ValueError(
            "alignment needs five landmarks per face (eyes, nose, mouth corners) as a (5, 2) array; "
            f"got shape {landmarks.shape}. Use align=False for square box crops.")
    return similarity_transform(landmarks, face_template(size, margin))


def box_matrix(box, size: int = TEMPLATE_SIZE, margin: float = 0) -> np.ndarray:
    """The transform that cuts out a box as a square crop: a uniform scale and a shift.

    box: (4,) float x1, y1, x2, y2 in pixels of the photo (`pipeline.detection.boxes`); size, margin: as
    in `face_template`. The box is first grown to a square about its centre (`make_square`,
    side max(w, h)); that square is mapped onto the central (size - margin) pixels of the
    crop, so the crop shows margin / 2 crop pixels of the surroundings on each side.
    Returns (2, 3) float64, photo coordinates -> crop coordinates.
    """
    _check_size_and_margin(size, margin)
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"box must have shape (4,) as x1, y1, x2, y2; got shape {box.shape}")
    x1, y1, x2, y2 = make_square(box[None])[0]
    side = x2 - x1
    if not side > 0:
        raise ValueError(f"box {box.tolist()} is empty: it has no width and no height")
    k = (size - margin) / side  # crop pixels per photo pixel
    return np.array([[k, 0.0, margin / 2 - k * x1],
                     [0.0, k, margin / 2 - k * y1]])


# ---------------------------------------------------------------- the warp


def _fill_values(fill, channels: int, dtype) -> np.ndarray:
    fill = np.asarray(fill, dtype=np.float64)
    if fill.ndim > 1 or (fill.ndim == 1 and len(fill) != channels):
        raise ValueError(f"fill must be a number or one value per channel ({channels}); got shape {fill.shape}")
    return np.broadcast_to(fill, (channels,)).astype(dtype)


def _check_warp(x, matrix, out_h, out_w) -> tuple[np.ndarray, np.ndarray]:
    """The arguments of a warp, checked: x as a float (H, W, C) array, matrix as (2, 3) float64."""
    x = np.asarray(x)
    if x.ndim != 3 or min(x.shape) < 1:
        raise ValueError(f"x must have shape (H, W, C) with H, W, C >= 1; got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a float array (convert uint8 images with .astype(np.float32)); "
                         f"got dtype {x.dtype}")
    for name, value in (("out_h", out_h), ("out_w", out_w)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return x, _as_invertible(matrix)


def warp_affine(x, matrix, out_h: int, out_w: int, fill=0.0) -> np.ndarray:
    """Resample an image through a transform, by bilinear interpolation.

    x: (H, W, C) float image (float32 in the pipeline); matrix: (2, 3) [A | t], invertible,
    mapping the coordinates of x to those of the output (e.g. from `alignment_matrix`);
    out_h, out_w: output size in pixels (>= 1); fill: value of the pixels outside x, a number
    or (C,) one per channel.
    Returns out: (out_h, out_w, C), same dtype as x.

    Output pixel (i, j) has its centre at u = (j + 0.5, i + 0.5); it reads x at the point
    p = A^-1 (u - t). In units of x's pixel centres that point is (col, row) = p - 0.5 =
    (c + fx, r + fy) with whole c, r and fractions fx, fy in [0, 1), and
        out[i, j] = (1-fy) (1-fx) x[r, c]   + (1-fy) fx x[r, c+1]
                  +    fy (1-fx) x[r+1, c] +    fy  fx x[r+1, c+1],
    where a neighbour outside x counts as ``fill`` (so the edge of the image blends into the
    fill over one pixel, as OpenCV's warpAffine does with a constant border). Shrinking by
    more than 2x skips pixels, as any bilinear warp does (no smoothing first).

    This is the fast version: all output pixels at once, with four gathers from x padded by
    one pixel of fill. `warp_affine_naive` is the same formula in loops.
    """
    x, matrix = _check_warp(x, matrix, out_h, out_w)
    H, W, C = x.shape
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]  # output -> input coordinates
    v, u = np.mgrid[0:out_h, 0:out_w] + 0.5                             # (out_h, out_w) pixel centres
    col = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2] - 0.5
    row = inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2] - 0.5
    c, r = np.floor(col), np.floor(row)
    fx = (col - c).astype(x.dtype)[:, :, None]
    fy = (row - r).astype(x.dtype)[:, :, None]
    # x sits at [1:H+1, 1:W+1] of `padded`; every index outside x is clipped onto the fill border
    padded = np.empty((H + 2, W + 2, C), dtype=x.dtype)
    padded[...] = _fill_values(fill, C, x.dtype)
    padded[1:-1, 1:-1] = x
    # indices into padded: column c of x is column c + 1 there, and every column left of x
    # (c < 0) becomes 0, every column right of it (c >= W) becomes W + 1, both fill; clipping
    # before the cast to int also keeps far-away points from overflowing
    c0, c1 = (np.clip(c + dc, -1, W).astype(np.intp) + 1 for dc in (0, 1))
    r0, r1 = (np.clip(r + dr, -1, H).astype(np.intp) + 1 for dr in (0, 1))
    top = (1 - fx) * padded[r0, c0] + fx * padded[r0, c1]
    bottom = (1 - fx) * padded[r1, c0] + fx * padded[r1, c1]
    return (1 - fy) * top + fy * bottom


def warp_affine_naive(x, matrix, out_h: int, out_w: int, fill=0.0) -> np.ndarray:
    """Reference version of `warp_affine`: a loop over output pixels and their four neighbours.

    Same arguments, same result (up to rounding). Each output pixel's source point is found by
    solving A p = u - t, straight from the definition, instead of inverting the matrix once.
    """
    x, matrix = _check_warp(x, matrix, out_h, out_w)
    H, W, C = x.shape
    fill = _fill_values(fill, C, x.dtype)
    out = np.empty((out_h, out_w, C), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            u = np.array([j + 0.5, i + 0.5])
            px, py = np.linalg.solve(matrix[:, :2], u - matrix[:, 2])
            col, row = px - 0.5, py - 0.5
            c, r = math.floor(col), math.floor(row)
            fx, fy = col - c, row - r
            value = np.zeros(C)
            for dr, weight_r in ((0, 1 - fy), (1, fy)):
                for dc, weight_c in ((0, 1 - fx), (1, fx)):
                    inside = 0 <= r + dr < H and 0 <= c + dc < W
                    value += weight_r * weight_c * (x[r + dr, c + dc] if inside else fill)
            out[i, j] = value
    return out


# ---------------------------------------------------------------- crops of detected faces


def _boxes_and_landmarks(faces) -> tuple[np.ndarray, list | None]:
    """faces as (boxes (K, 4) float64, list of K landmark arrays, or None when not given)."""
    if isinstance(faces, np.ndarray):
        boxes, landmarks = faces, None
    elif isinstance(faces, tuple) and len(faces) == 2 and not hasattr(faces[0], "box"):
        boxes, landmarks = faces
        landmarks = None if landmarks is None else [np.asarray(points, np.float64) for points in landmarks]
    else:
        faces = list(faces)
        if not all(hasattr(face, "box") and hasattr(face, "landmarks") for face in faces):
            raise ValueError("faces must be a list of Face (with .box and .landmarks), a pair "
                             "(boxes (K, 4), landmarks (K, 5, 2)) or an array of boxes (K, 4)")
        boxes = [np.asarray(face.box, np.float64) for face in faces]
        boxes = np.stack(boxes) if boxes else np.zeros((0, 4))
        landmarks = [np.asarray(face.landmarks, np.float64) for face in faces]
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (K, 4) as x1, y1, x2, y2; got shape {boxes.shape}")
    if landmarks is not None and len(landmarks) != len(boxes):
        raise ValueError(f"got {len(boxes)} boxes but {len(landmarks)} sets of landmarks")
    return boxes, landmarks


def extract_faces(image, faces, size: int = TEMPLATE_SIZE, margin: float = 0, align: bool = True,
                  fill=0) -> np.ndarray:
    """Cut every face out of an image as a size x size RGB crop.

    image: a path, a PIL image or an array, anything `pipeline.data.images.load_image` accepts;
    faces: a list of Face (from a detector's ``detect``), or a pair (boxes (K, 4) x1, y1, x2, y2,
    landmarks (K, 5, 2) x, y), all in pixels of the image, or just boxes (K, 4) for align=False;
    size: side of each crop in pixels (112 for ArcFace-style recognition nets);
    margin: crop pixels of surroundings around the face, in total over both sides (half on each
    side), 0 <= margin < size; the face fills the central (size - margin) pixels. This is the
    meaning of facenet-pytorch's ``margin`` (pixels of the final image, not of the photo);
    align: True to turn each face upright with its five landmarks (`alignment_matrix`: the
    landmarks land on `face_template(size, margin)`); False to cut out the box grown to a square
    about its centre (`box_matrix`), without rotating;
    fill: value (0..255) of crop pixels that fall outside the image, a number or (3,) RGB.
    Returns crops: (K, size, size, 3) uint8 RGB, crops[k] for faces[k]; (0, size, size, 3) for
    no faces. Bilinear values are rounded to the nearest integer.

    Raises ValueError when align=True and a face has no five landmarks (Cascade-CNN faces carry
    an empty (0, 2) array): use align=False for those.
    """
    _check_size_and_margin(size, margin)
    fill_values = np.asarray(fill, dtype=np.float64)
    if not np.all((0 <= fill_values) & (fill_values <= 255)):
        raise ValueError(f"fill must lie in 0..255; got {fill!r}")
    boxes, landmarks = _boxes_and_landmarks(faces)
    if align:
        if landmarks is None:
            raise ValueError("alignment needs five landmarks per face, and none were given; "
                             "use align=False for square box crops")
        for k, points in enumerate(landmarks):
            if points.shape != (5, 2):
                raise ValueError(
                    f"alignment needs five landmarks per face (eyes, nose, mouth corners); face {k} has "
                    f"landmarks of shape {points.shape} (the Cascade-CNN detector finds none). "
                    "Use align=False for square box crops.")
        matrices = [alignment_matrix(points, size, margin) for points in landmarks]
    else:
        matrices = [box_matrix(box, size, margin) for box in boxes]
    x = load_image(image).astype(np.float32)
    crops = np.zeros((len(matrices), size, size, 3), dtype=np.uint8)
    for k, matrix in enumerate(matrices):
        crop = warp_affine(x, matrix, size, size, fill=fill_values)
        crops[k] = np.clip(np.rint(crop), 0, 255)
    return crops


def save_crops(image, faces, folder, stem: str, size: int = TEMPLATE_SIZE) -> list[Path]:
    """Write each face as a PNG, for `facecascade detect --crops`.

    image: anything `load_image` accepts; faces: list of Face; folder: where to write (created
    if missing); stem: the image's name. Faces with five landmarks (MTCNN) are aligned; if any
    face has none (Cascade-CNN), all are cut out as square boxes. Writes
    ``folder/{stem}_face{k}.png`` (size x size RGB), k = 0, 1, ... in the order of ``faces``.
    Returns the paths written.
    """
    from PIL import Image

    faces = list(faces)
    align = all(np.shape(face.landmarks) == (5, 2) for face in faces)
    crops = extract_faces(image, faces, size=size, align=align)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, crop in enumerate(crops):
        path = folder / f"{stem}_face{k}.png"
        Image.fromarray(crop).save(path)
        paths.append(path)
    return paths
