"""Reading the face data kit: annotation lists in, arrays of boxes out.

Every loader takes paths and returns plain Python and NumPy values. Boxes follow
`pipeline.detection.boxes`: float64 ``x1, y1, x2, y2`` in pixels of the image they belong to, 0-based,
width ``x2 - x1``. Landmarks are float64 ``(5, 2)`` arrays of ``(x, y)`` points in the order
left eye, right eye, nose tip, left mouth corner, right mouth corner ("left" = the left side of
the image).

A line that is wrong raises `DataError` naming the file, the 1-based line number and what was
wrong, e.g.::

    cuhk80/train.txt, line 17: expected 15 fields (path, left right top bottom, 5 x,y points), got 9

The kit has three folders (a ``--data DIR`` holds them):

    cuhk80/      80x80 face crops; train.txt and val.txt, one face per line (CUHK format)
    photos/      group photos; boxes.txt in the WIDER FACE bbx_gt layout
    negatives/   photos without faces; files.txt lists them (path width height gray|color)

The splits are fixed here, in code: `face_split`, `negative_split`, `labelled_photos`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.detection.boxes import apply_regression
from pipeline.data.images import IMAGE_EXTENSIONS

# CUHK box -> MTCNN/WIDER-style box: offsets of x1, y1, x2, y2 as fractions of the CUHK box's
# width, height, width, height (see `cuhk_to_mtcnn` for where the numbers come from).
CUHK_TO_MTCNN_OFFSETS = (0.006, -0.219, 0.056, 0.141)

FACE_SPLITS = {"train": "train.txt", "val": "val.txt"}  # split name -> list file in cuhk80/
# negatives/files.txt by 0-based line index % 10: 8 validates training choices, 9 is held out for
# the final count and never used for any choice, the rest train
NEGATIVE_SPLITS = {"train": set(range(8)), "val": {8}, "heldout": {9}}

CUHK_FIELDS = 15       # path, left right top bottom, x1 y1 ... x5 y5
WIDER_FIELDS = (4, 10)  # x y w h, optionally followed by the six WIDER attributes
FDDB_FIELDS = (5, 6)    # major_radius minor_radius angle center_x center_y [1]
NEGATIVE_FIELDS = 4     # path width height gray|color

# Pillow modes with one channel of values: the image is grayscale.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class DataError(ValueError):
    """A list file that cannot be read: the message names the file, the 1-based line and why."""


@dataclass
class FaceRecord:
    """One face of a face-crop list.

    path: absolute Path of the image; box: (4,) float64 x1, y1, x2, y2 in pixels (the MTCNN
    convention after `cuhk_to_mtcnn`, or the raw CUHK box if the list was read with
    ``convert=False``); landmarks: (5, 2) float64 (x, y) in pixels: left eye, right eye,
    nose, left mouth corner, right mouth corner.
    """

    path: Path
    box: np.ndarray
    landmarks: np.ndarray


@dataclass
class NegativeImage:
    """One photo without faces. path: absolute Path; width, height: in pixels;
    gray: True for a single-channel (grayscale) image, False for colour."""

    path: Path
    width: int
    height: int
    gray: bool


# ---------------------------------------------------------------- reading lines


def _lines(path: Path):
    """(1-based line number, list of fields) for every non-blank line of a text file."""
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            fields = line.split()
            if fields:
                yield number, fields


def _numbers(fields, path, number, what: str) -> list[float]:
    """The fields as finite floats, or a DataError saying which field is not a number."""
    values = []
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            raise DataError(f"{path}, line {number}: {what}: {field!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"{path}, line {number}: {what}: {field!r} is not a finite number")
        values.append(value)
    return values


def _count(fields, path, number, name: str) -> int:
    """A line holding the number of faces of image ``name``: one integer >= 0."""
    if len(fields) != 1:
        raise DataError(f"{path}, line {number}: expected the number of faces of {name}, "
                        f"got {len(fields)} fields")
    try:
        count = int(fields[0])
    except ValueError:
        raise DataError(f"{path}, line {number}: the number of faces of {name} must be an integer, "
                        f"got {fields[0]!r}") from None
    if count < 0:
        raise DataError(f"{path}, line {number}: the number of faces of {name} is negative ({count})")
    return count


def _is_number_line(fields) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def _read_grouped(path, fields_allowed, what: str, width: int | None = None, check=None) -> dict[str, np.ndarray]:
    """The layout shared by WIDER FACE and FDDB: a name line, a count line, then ``count``
    lines of numbers. Returns name -> (count, F) float64 array of the first F numbers, in file
    order; F = width (default min(fields_allowed)), shorter lines padded with zeros.
    check: optional function of a row's numbers returning what is wrong with them (a str,
    raised as a DataError naming the file and line) or None.

    A count of 0 may be followed by one line of numbers (real WIDER files write a line of
    zeros there) or by nothing; the line is skipped.
    """
    path = Path(path)
    width = min(fields_allowed) if width is None else width
    lines = list(_lines(path))
    out: dict[str, np.ndarray] = {}
    i = 0
    while i < len(lines):
        number, fields = lines[i]
        name = " ".join(fields)
        if name in out:
            raise DataError(f"{path}, line {number}: {name} is listed a second time")
        if i + 1 == len(lines):
            raise DataError(f"{path}, line {number + 1}: file ends after the name {name}; "
                            f"expected the number of faces")
        count = _count(lines[i + 1][1], path, lines[i + 1][0], name)
        i += 2
        rows = []
        for k in range(count):
            if i == len(lines):
                last = lines[-1][0]
                raise DataError(f"{path}, line {last + 1}: file ends after {k} of the {count} "
                                f"faces of {name}")
            number, fields = lines[i]
            if len(fields) not in fields_allowed:
                expected = " or ".join(str(n) for n in fields_allowed)
                raise DataError(f"{path}, line {number}: expected {expected} fields ({what}), "
                                f"got {len(fields)}")
            values = _numbers(fields, path, number, what)[:width]
            problem = None if check is None else check(values)
            if problem:
                raise DataError(f"{path}, line {number}: {problem}")
            rows.append(values + [0.0] * (width - len(values)))
            i += 1
        if count == 0 and i < len(lines) and _is_number_line(lines[i][1]):
            i += 1  # WIDER's placeholder line of zeros after a count of 0
        out[name] = np.array(rows, dtype=np.float64).reshape(count, width)
    return out


# ---------------------------------------------------------------- face crops (CUHK)


def cuhk_to_mtcnn(boxes) -> np.ndarray:
    """Convert tight CUHK face boxes to the taller boxes that MTCNN-style detectors draw.

    boxes: (K, 4) float, CUHK boxes as x1, y1, x2, y2 in pixels.
    Returns (K, 4) float64: with w = x2 - x1 and h = y2 - y1 of each CUHK box,
    (x1 + 0.006 w, y1 - 0.219 h, x2 + 0.056 w, y2 + 0.141 h).

    Why: the CUHK boxes are tight around eyes, nose and mouth, while detectors trained on
    WIDER FACE, the released MTCNN among them, draw from the forehead to below the chin. A
    correct detection would then overlap its CUHK box with an IoU of only about 0.65 (the
    median between the released MTCNN's boxes and the CUHK boxes; some fall below 0.5), so at
    IoU 0.5 found faces would count as missed. The four offsets are the median differences
    between the released MTCNN's box and the CUHK box, measured on the first 300 lines of
    cuhk80/val.txt, relative to the CUHK box's width and height: the MTCNN box starts 0.219 h
    higher and ends 0.141 h lower, so it is 1.36 h tall and 1.05 w wide.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (K, 4) as x1, y1, x2, y2; got shape {boxes.shape}")
    offsets = np.broadcast_to(np.array(CUHK_TO_MTCNN_OFFSETS, dtype=np.float64), boxes.shape)
    return apply_regression(boxes, offsets)


BOX_OUTSIDE = 0.1  # a face box may reach outside its image by this share of its side, no more


def _check_against_image(record: FaceRecord, path, number: int) -> None:
    """A face line against its image (read for its size only): the image must exist and be
    readable, the box must lie inside it up to `BOX_OUTSIDE` of its side, the five points
    inside it. Raises DataError naming the list file, the line and the problem."""
    try:
        with Image.open(record.path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise DataError(f"{path}, line {number}: image {record.path} not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}, line {number}: cannot read image {record.path} ({exc})") from None
    x1, y1, x2, y2 = record.box
    w, h = x2 - x1, y2 - y1
    if x1 < -BOX_OUTSIDE * w or y1 < -BOX_OUTSIDE * h or x2 > width + BOX_OUTSIDE * w or y2 > height + BOX_OUTSIDE * h:
        raise DataError(f"{path}, line {number}: the box (left {x1:g}, right {x2:g}, top {y1:g}, bottom {y2:g}) "
                        f"lies outside the {width} x {height} image {record.path.name}")
    points = record.landmarks
    if np.any(points < 0) or np.any(points[:, 0] > width) or np.any(points[:, 1] > height):
        raise DataError(f"{path}, line {number}: a landmark lies outside the {width} x {height} image "
                        f"{record.path.name}")


def read_landmark_list(path, root=None, convert: bool = True, check_images: bool = False) -> list[FaceRecord]:
    """Read a CUHK face list: one face per line,

        path left right top bottom x1 y1 x2 y2 x3 y3 x4 y4 x5 y5

    (image path relative to ``root``, the box as left right top bottom, then the five points
    left eye, right eye, nose, left mouth corner, right mouth corner; all in pixels).

    path: the list file; root: folder the image paths are relative to (default: the list's
    folder); convert: True to return boxes in the MTCNN convention (`cuhk_to_mtcnn`), False
    for the raw CUHK box (left, top, right, bottom).
    Returns a list of FaceRecord in file order (blank lines skipped): path absolute, box (4,)
    float64 x1, y1, x2, y2, landmarks (5, 2) float64.
    Raises DataError for a line with the wrong number of fields, a field that is not a
    number, or a box with right <= left or bottom <= top. check_images: also read each
    image's size and refuse, naming the line, a missing or unreadable image, a box reaching
    outside it by more than a tenth of its side, or a point outside it (`_check_against_image`).
    """
    path = Path(path)
    root = (path.parent if root is None else Path(root)).absolute()
    records = []
    for number, fields in _lines(path):
        if len(fields) != CUHK_FIELDS:
            raise DataError(f"{path}, line {number}: expected {CUHK_FIELDS} fields "
                            f"(path, left right top bottom, 5 x,y points), got {len(fields)}")
        values = _numbers(fields[1:], path, number, "box and points")
        left, right, top, bottom = values[:4]
        if right <= left or bottom <= top:
            raise DataError(f"{path}, line {number}: empty box (left {left}, right {right}, "
                            f"top {top}, bottom {bottom})")
        box = np.array([left, top, right, bottom], dtype=np.float64)
        landmarks = np.array(values[4:], dtype=np.float64).reshape(5, 2)
        records.append(FaceRecord(root / fields[0], box, landmarks))
        if check_images:
            _check_against_image(records[-1], path, number)
    if convert and records:
        converted = cuhk_to_mtcnn(np.stack([r.box for r in records]))
        for record, box in zip(records, converted):
            record.box = box
    return records


# ---------------------------------------------------------------- WIDER FACE and FDDB


def read_wider_boxes(path) -> dict[str, np.ndarray]:
    """Read a WIDER FACE ``bbx_gt`` file:

        image name            (a path relative to the images' folder)
        number of faces K
        K lines: x y w h blur expression illumination invalid occlusion pose

    (the six attributes may be left out). A count of 0 may be followed by one line of zeros,
    as in the real WIDER files, or by nothing.
    Returns dict image name -> (K, 4) float64 boxes x1, y1, x2, y2 = x, y, x + w, y + h in
    pixels, in file order. The attributes are not kept.
    """
    boxes = _read_grouped(path, WIDER_FIELDS, "x y w h and 6 attributes")
    for xywh in boxes.values():
        xywh[:, 2:] += xywh[:, :2]
    return boxes


def read_fddb_ellipses(path) -> dict[str, np.ndarray]:
    """Read an FDDB ellipse list:

        image name            (e.g. 2002/08/11/big/img_591, without extension)
        number of faces K
        K lines: major_radius minor_radius angle center_x center_y 1

    Returns dict image name -> (K, 5) float64 rows major_radius, minor_radius (pixels),
    angle (radians, of the major axis from the x axis), center_x, center_y (pixels), in file
    order. The trailing 1 may be left out. See `ellipse_to_box`.
    """
    return _read_grouped(path, FDDB_FIELDS, "major_radius minor_radius angle center_x center_y 1")


def ellipse_to_box(ellipses) -> np.ndarray:
    """Axis-aligned bounding box of each rotated ellipse.

    ellipses: (K, 5) float, rows major_radius a, minor_radius b, angle t (radians, major axis
    from the x axis), center_x, center_y, in pixels.
    Returns (K, 4) float64 x1, y1, x2, y2 = cx -/+ hw, cy -/+ hh with half sizes
    hw = sqrt((a cos t)^2 + (b sin t)^2) and hh = sqrt((a sin t)^2 + (b cos t)^2): the extent
    of the points (a cos s cos t - b sin s sin t, a cos s sin t + b sin s cos t) over s.
    """
    ellipses = np.asarray(ellipses, dtype=np.float64)
    if ellipses.ndim != 2 or ellipses.shape[1] != 5:
        raise ValueError("ellipses must have shape (K, 5) as major_radius, minor_radius, angle, "
                         f"center_x, center_y; got shape {ellipses.shape}")
    a, b, angle, cx, cy = ellipses.T
    cos, sin = np.cos(angle), np.sin(angle)
    half_width = np.hypot(a * cos, b * sin)
    half_height = np.hypot(a * sin, b * cos)
    return np.stack([cx - half_width, cy - half_height, cx + half_width, cy + half_height], axis=1)


# ---------------------------------------------------------------- face-free photos


def read_negative_list(files_txt, root=None) -> list[NegativeImage]:
    """Read a list of face-free photos: one line per image,

        relpath width height gray|color

    files_txt: the list file; root: folder the paths are relative to (default: the list's
    folder). Returns a list of NegativeImage (absolute path, width and height in pixels,
    gray) in file order. Raises DataError for a wrong number of fields, a size that is not
    a positive integer, or a last field other than gray or color.
    """
    files_txt = Path(files_txt)
    root = (files_txt.parent if root is None else Path(root)).absolute()
    images = []
    for number, fields in _lines(files_txt):
        if len(fields) != NEGATIVE_FIELDS:
            raise DataError(f"{files_txt}, line {number}: expected {NEGATIVE_FIELDS} fields "
                            f"(path width height gray|color), got {len(fields)}")
        relpath, width, height, kind = fields
        sizes = []
        for word, text in (("width", width), ("height", height)):
            if not text.isdigit() or int(text) == 0:
                raise DataError(f"{files_txt}, line {number}: {word} must be a positive integer, "
                                f"got {text!r}")
            sizes.append(int(text))
        if kind not in ("gray", "color"):
            raise DataError(f"{files_txt}, line {number}: expected gray or color, got {kind!r}")
        images.append(NegativeImage(root / relpath, sizes[0], sizes[1], kind == "gray"))
    return images


def list_face_free_images(folder) -> list[NegativeImage]:
    """Every image file under ``folder`` (recursive), for a folder of face-free photos that
    has no list.

    Image files are those with the extensions of `pipeline.data.images.IMAGE_EXTENSIONS` (any
    case); hidden files and folders are skipped. Each file's header is read (not its pixels)
    for the size and the mode: gray is True for single-channel modes (L, 1, I;16, ...).
    Returns a list of NegativeImage sorted by path. Raises DataError naming a file that
    Pillow cannot open.
    """
    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    paths = sorted(
        path for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height, mode = image.width, image.height, image.mode
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: cannot read the image header ({exc})") from exc
        images.append(NegativeImage(path, width, height, mode in GRAY_MODES))
    return images


# ---------------------------------------------------------------- the kit's fixed splits


def face_split(data_dir, split: str, convert: bool = True) -> list[FaceRecord]:
    """The face crops of one split: "train" (cuhk80/train.txt, 9,000 faces) or "val"
    (cuhk80/val.txt, 1,000 faces). data_dir: the data kit folder; convert: as in
    `read_landmark_list` (True: MTCNN-convention boxes). Every line is checked against its
    image (`read_landmark_list`'s check_images). Returns a list of FaceRecord."""
    if split not in FACE_SPLITS:
        raise ValueError(f"split must be one of {tuple(FACE_SPLITS)}; got {split!r}")
    return read_landmark_list(Path(data_dir) / "cuhk80" / FACE_SPLITS[split], convert=convert, check_images=True)


def negative_split(data_dir, split: str) -> list[NegativeImage]:
    """The face-free photos of one split of negatives/files.txt, by 0-based line index:

    "train" (index % 10 from 0 to 7, 1,424 of 1,779 photos): samples and hard negatives;
    "val" (index % 10 == 8, 178): the choices made during training (thresholds, operating points);
    "heldout" (index % 10 == 9, 177): measuring false positives at the end; never used for
    training, mining or any choice. Returns a list of NegativeImage in file order.
    """
    if split not in NEGATIVE_SPLITS:
        raise ValueError(f"split must be one of {tuple(NEGATIVE_SPLITS)}; got {split!r}")
    images = read_negative_list(Path(data_dir) / "negatives" / "files.txt")
    return [image for index, image in enumerate(images) if index % 10 in NEGATIVE_SPLITS[split]]


def labelled_photos(data_dir) -> list[tuple[Path, np.ndarray]]:
    """The labelled group photos: photos/boxes.txt (WIDER layout, 9 photos, 43 faces).

    Returns a list of (absolute image path, (K, 4) float64 boxes x1, y1, x2, y2 in pixels),
    in file order.
    """
    folder = (Path(data_dir) / "photos").absolute()
    return [(folder / name, boxes) for name, boxes in read_wider_boxes(folder / "boxes.txt").items()]
