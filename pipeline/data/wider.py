"""WIDER FACE photos and the wild landmark faces: reading them as published, and the fixed splits.

A WIDER FACE folder, as the dataset is downloaded (``WIDER_train`` or ``WIDER_val``) and as
the data kit's ``wider/`` holds it::

    images/<event>/<file>.jpg
    wider_face_bbx_gt.txt       (a user's download: wider_face_split/wider_face_train_bbx_gt.txt)

The ``bbx_gt`` file gives, per photo, its path relative to ``images/``, the number of faces
K, then K lines ``x y w h blur expression illumination invalid occlusion pose``: the box's
top-left corner and its size in pixels, then six flags (blur 0-2, expression 0-1,
illumination 0-1, invalid 0-1, occlusion 0-2, pose 0-1).

Box convention. WIDER's boxes run from the forehead to the chin, as the released MTCNN's do
(it was trained on them), so they are the detectors' convention as they stand:
x1, y1, x2, y2 = x, y, x + w, y + h (`wider_boxes`, the one place this is decided). Measured
on the kit's training photos: the released MTCNN's confident detections (p >= 0.95) against
the valid boxes of 24 px and more they match (IoU >= 0.5): 755 pairs on every fourth training
photo, median IoU 0.83, median corner offsets (dx1, dy1, dx2, dy2) = (+0.001, +0.014, -0.017,
-0.008) of the box's width and height. Under 2% on every side, so no shift is applied.

Faces marked invalid, and boxes of zero width or height, are not faces to find or learn
(`WiderPhoto.faces`); the invalid ones are still kept apart (`WiderPhoto.ignored`), so that a
window drawn as a negative can stay away from them too.

Splits, fixed here: the photos whose 0-based position in the ``bbx_gt`` file is % 5 == 4 are
validation, the others training (`wider_split`). The same rule splits the lines of
``wild_landmarks/landmarks.txt`` (`wild_landmark_split`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.datasets import (WIDER_FIELDS, DataError, FaceRecord, _read_grouped, face_split,
                       read_landmark_list)

BBX_GT = "wider_face_bbx_gt.txt"  # the kit's name for the bbx_gt file in a WIDER folder
ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
ATTRIBUTE_MAX = (2, 1, 1, 1, 2, 1)   # each flag is a whole number from 0 to this
INVALID = ATTRIBUTES.index("invalid")
VALIDATION_EVERY, VALIDATION_REMAINDER = 5, 4  # position % 5 == 4 is validation

# The corner offsets (dx1, dy1, dx2, dy2, fractions of the WIDER box's width, height, width,
# height) that take a WIDER box to the released MTCNN's box. Measured as the module doc says;
# all four are under 0.02, so WIDER boxes are used unchanged (`wider_boxes`).
WIDER_TO_DETECTOR = (0.0, 0.0, 0.0, 0.0)

# wild_landmarks/ boxes are the bounding box of 68 points (eyebrows to chin, jaw side to jaw
# side); the detectors' boxes start at the forehead. The median offsets from such a box to the
# released MTCNN's detection on 410 training crops (every third training line; median IoU 0.69):
# the detector's box starts 0.30 of the height higher. Applied by `wild_landmark_split`.
WILD_TO_DETECTOR = (0.001, -0.303, -0.028, -0.020)


@dataclass
class WiderPhoto:
    """One WIDER FACE photo and its labelled faces.

    name: the path relative to ``images/`` as the ``bbx_gt`` file writes it; path: absolute
    Path of the image; boxes: (K, 4) float64 x1, y1, x2, y2 in pixels of every non-empty box,
    in file order; attributes: (K, 6) int64 flags of those boxes (`ATTRIBUTES` order);
    index: the photo's 0-based position in the ``bbx_gt`` file.
    """

    name: str
    path: Path
    boxes: np.ndarray
    attributes: np.ndarray
    index: int

    @property
    def valid(self) -> np.ndarray:
        """(K,) bool: the faces to find and to learn (not marked invalid)."""
        return self.attributes[:, INVALID] == 0

    @property
    def faces(self) -> np.ndarray:
        """(F, 4) float64 boxes of the valid faces."""
        return self.boxes[self.valid]

    @property
    def ignored(self) -> np.ndarray:
        """(I, 4) float64 boxes marked invalid: neither faces to find nor background."""
        return self.boxes[~self.valid]


def wider_boxes(xywh) -> np.ndarray:
    """WIDER's ``x y w h`` boxes in the detectors' convention.

    xywh: (K, 4) float, top-left corner and size in pixels. Returns (K, 4) float64
    x1, y1, x2, y2 = x, y, x + w, y + h, moved by `WIDER_TO_DETECTOR` (no move: see the module
    doc for the measurement).
    """
    xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    w, h = xywh[:, 2:3], xywh[:, 3:4]
    return boxes + np.array(WIDER_TO_DETECTOR) * np.concatenate([w, h, w, h], axis=1)


def _check_face_line(values) -> str | None:
    """What is wrong with one face line of a bbx_gt file (x y w h and six flags), or None."""
    if values[2] < 0 or values[3] < 0:
        return f"negative box size (w {values[2]:g}, h {values[3]:g})"
    for name, value, largest in zip(ATTRIBUTES, values[4:], ATTRIBUTE_MAX):
        if value != int(value) or not 0 <= value <= largest:
            return f"the {name} flag must be a whole number from 0 to {largest}; got {value:g}"
    return None


def read_wider(bbx_gt, images_dir=None) -> list[WiderPhoto]:
    """Read a WIDER FACE ``bbx_gt`` file (layout in the module doc).

    bbx_gt: the annotation file; images_dir: the folder the names are relative to (default:
    ``images/`` beside the file). Lines of four numbers (no flags) are read as flags of 0.
    Boxes of zero width or height are left out (they cannot be found or learned).
    Returns a list of WiderPhoto in file order. Raises DataError naming the file and the line
    for a malformed line, a negative size or a flag out of range.
    """
    bbx_gt = Path(bbx_gt)
    images_dir = (bbx_gt.parent / "images" if images_dir is None else Path(images_dir)).absolute()
    rows = _read_grouped(bbx_gt, WIDER_FIELDS, "x y w h and 6 flags", width=10, check=_check_face_line)
    photos = []
    for index, (name, values) in enumerate(rows.items()):
        keep = (values[:, 2] > 0) & (values[:, 3] > 0)
        photos.append(WiderPhoto(name, images_dir / name, wider_boxes(values[keep, :4]),
                                 values[keep, 4:].astype(np.int64), index))
    return photos


def wider_folder_photos(folder) -> list[WiderPhoto]:
    """The photos of a WIDER-layout folder: ``<folder>/wider_face_bbx_gt.txt`` and
    ``<folder>/images/``. Raises DataError if the folder has no such file."""
    folder = Path(folder)
    if not (folder / BBX_GT).is_file():
        raise DataError(f"{folder}: not a WIDER FACE folder (no {BBX_GT}; a download's "
                        "wider_face_split/wider_face_*_bbx_gt.txt can be copied there under that name)")
    return read_wider(folder / BBX_GT)


def is_validation(index: int) -> bool:
    """The fixed split rule of wider/ and wild_landmarks/: 0-based position % 5 == 4."""
    return index % VALIDATION_EVERY == VALIDATION_REMAINDER


def wider_split(data_dir, split: str) -> list[WiderPhoto]:
    """The kit's WIDER photos of one split: "train" (877 photos) or "val" (219), in file order.
    data_dir: the data kit folder (it holds wider/)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
    photos = wider_folder_photos(Path(data_dir) / "wider")
    return [photo for photo in photos if is_validation(photo.index) == (split == "val")]


def wild_landmark_split(data_dir, split: str) -> list[FaceRecord]:
    """The wild_landmarks/ faces of one split ("train" or "val", by line: % 5 == 4 is val),
    boxes moved to the detectors' convention by `WILD_TO_DETECTOR`, points as written."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
    records = read_landmark_list(Path(data_dir) / "wild_landmarks" / "landmarks.txt", convert=False,
                                 check_images=True)
    records = [r for k, r in enumerate(records) if is_validation(k) == (split == "val")]
    for record in records:
        x1, y1, x2, y2 = record.box
        w, h = x2 - x1, y2 - y1
        record.box = record.box + np.array(WILD_TO_DETECTOR) * np.array([w, h, w, h])
    return records


def landmark_faces(data_dir, split: str) -> list[FaceRecord]:
    """Every face with five points for one split: cuhk80's, then wild_landmarks'."""
    return face_split(data_dir, split) + wild_landmark_split(data_dir, split)
