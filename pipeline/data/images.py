"""Loading images: every supported input becomes one (H, W, 3) uint8 RGB array.

The detector works on RGB uint8 values 0..255: the released MTCNN nets were trained on RGB
images (MATLAB's order) with each value mapped to (x - 127.5) / 128 (Zhang et al., IEEE SPL
2016, released code; `pipeline.detection.proposals.normalize`). This module is the single entry point that turns files, Pillow images and NumPy
arrays into that form, and turns every way a file can be unreadable into one `ImageError`
whose message names the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

# Pillow modes holding more than 8 bits per pixel, which convert("RGB") would not scale
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageError(ValueError):
    """An input that cannot be turned into an RGB image; the message says which and why."""


def load_image(source) -> np.ndarray:
    """Load an image as RGB.

    source: a path (str or os.PathLike), a PIL.Image.Image, or a NumPy array.
    Returns (H, W, 3) uint8 RGB, C-contiguous, a new array (never a view of the input).

    Files and Pillow images: the EXIF orientation is applied first, so the array is upright
    as a viewer shows it. Then:
      * RGB is used as is; other 8-bit modes (L, P, CMYK, YCbCr, ...) go through Pillow's
        convert("RGB");
      * modes with alpha (RGBA, LA, PA) also go through convert("RGB"), which drops the
        alpha channel rather than compositing onto a background; that is what the
        reference MTCNN's callers do, so transparent areas keep their hidden colours;
      * 16-bit modes (I;16, I;16B, I) are scaled to 0..255 as round(value / 257), clipped;
      * float images (F) are rounded and clipped to 0..255.
    Arrays are taken to be RGB already (not OpenCV's BGR): uint8 of shape (H, W) or
    (H, W, 1) (gray, copied to 3 channels), (H, W, 3), or (H, W, 4) (alpha dropped);
    uint16 arrays of those shapes are scaled by round(value / 257).
    Raises ImageError (a ValueError) naming the file, or the array's shape and dtype, for a
    missing file, a directory, an empty file, a file that is not an image, a truncated or
    corrupt image, a float or bool array (ambiguous: 0..1 or 0..255? convert to uint8 first)
    and any other shape.
    """
    if isinstance(source, (str, os.PathLike)):
        return _load_file(Path(source))
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, name="the given PIL image")
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    kind = type(source).__name__
    raise ImageError(
        f"image must be a path, a PIL image or a NumPy array; got {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    )


def set_max_pixels(pixels: int | None) -> None:
    """Refuse image files of more than ``pixels`` pixels (width x height), or none with None.

    Pillow guards against "decompression bombs", small files that decode to gigabytes: it
    refuses an image of over twice ``PIL.Image.MAX_IMAGE_PIXELS`` (by default about 179
    million pixels) and only warns between one and two times it. This sets that limit for
    the whole process so that the refusal comes exactly above ``pixels``; `load_image` does
    not repeat Pillow's warning below it.
    """
    if pixels is not None and (isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 1):
        raise ValueError(f"the pixel limit must be a whole number > 0 or None; got {pixels!r}")
    Image.MAX_IMAGE_PIXELS = None if pixels is None else pixels / 2


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _load_file(path: Path) -> np.ndarray:
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # allowed size: no warning
            with Image.open(path) as image:
                return _pil_to_rgb(image, name=str(path))
    except Image.DecompressionBombError as exc:
        # Pillow refuses images of over twice MAX_IMAGE_PIXELS as it opens them (a guard
        # against files that decode to gigabytes); one such file must not stop a batch
        raise ImageError(f"{path}: image too large ({_one_line(exc)}); "
                         "raise the limit with --max-pixels N (or set PIL.Image.MAX_IMAGE_PIXELS)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image format Pillow can read") from None
    except OSError as exc:  # e.g. permission denied
        raise ImageError(f"{path}: cannot read the file ({_one_line(exc)})") from exc


def _pil_to_rgb(image: Image.Image, name: str) -> np.ndarray:
    try:
        # Pillow decodes lazily; load() forces the full decode so that a truncated or
        # corrupt file fails here, with its name, instead of somewhere later.
        image.load()
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: image too large ({_one_line(exc)}); "
                         "raise the limit with --max-pixels N (or set PIL.Image.MAX_IMAGE_PIXELS)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({_one_line(exc)})") from exc

    if image.mode == "RGB":
        rgb = np.asarray(image)
    elif image.mode in _SIXTEEN_BIT_MODES:
        rgb = _gray_to_rgb(_scale_sixteen_bit(np.asarray(image)))
    elif image.mode == "F":
        rgb = _gray_to_rgb(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8))
    else:
        try:
            rgb = np.asarray(image.convert("RGB"))
        except ValueError as exc:  # a mode Pillow cannot convert, e.g. LAB
            raise ImageError(
                f"{name}: cannot convert image mode {image.mode!r} to RGB ({_one_line(exc)})"
            ) from exc
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"{name}: image has no pixels (size {image.size})")
    return np.array(rgb, dtype=np.uint8, order="C")


def _scale_sixteen_bit(values: np.ndarray) -> np.ndarray:
    """0..65535 to 0..255 as round(value / 257); 257 = 65535 / 255, so 65535 maps to 255."""
    scaled = np.rint(values.astype(np.float64) / 257.0)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    described = f"array of shape {array.shape} and dtype {array.dtype}"
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.floating):
        raise ImageError(
            f"image: cannot use an {described}: the value range is ambiguous; convert it to uint8 (0..255) first"
        )
    if array.dtype == np.uint16:
        array = _scale_sixteen_bit(array)
    elif array.dtype != np.uint8:
        raise ImageError(f"image: cannot use an {described}: expected uint8 (or uint16) pixel values")
    if array.size == 0:
        raise ImageError(f"image: cannot use an empty {described}")
    if array.ndim == 2:
        rgb = _gray_to_rgb(array)
    elif array.ndim == 3 and array.shape[2] == 1:
        rgb = _gray_to_rgb(array[:, :, 0])
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        rgb = array[:, :, :3]
    else:
        raise ImageError(f"image: cannot use an {described}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    return np.array(rgb, dtype=np.uint8, order="C")


def to_chw_float(image, out: np.ndarray | None = None) -> np.ndarray:
    """Channels-first float copy of an RGB image, without normalization.

    image: (H, W, 3) uint8 RGB, e.g. from `load_image`; out: optional (3, H, W) float32
    C-contiguous array to write into (e.g. memory shared with helper processes).
    Returns (3, H, W) float32, C-contiguous, values 0..255 (``out`` when given). The nets'
    input normalization (x - 127.5) / 128 is applied later, after resizing, as in the reference.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            "image must be (H, W, 3) uint8 RGB (see load_image); "
            f"got shape {image.shape}, dtype {image.dtype}"
        )
    if out is None:
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    expected = (3, *image.shape[:2])
    if out.shape != expected or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {expected}; "
                         f"got shape {out.shape}, dtype {out.dtype}")
    np.copyto(out, image.transpose(2, 0, 1))
    return out


def _is_image_file(entry: Path) -> bool:
    return (entry.is_file()
            and not entry.name.startswith(".")  # e.g. macOS "._photo.jpg" metadata files
            and entry.suffix.lower() in IMAGE_EXTENSIONS)


def _as_path_list(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    if not isinstance(paths, Iterable):
        raise ValueError(f"paths must be a path or an iterable of paths; got a {type(paths).__name__}")
    return [Path(p) for p in paths]


def list_images(paths, recursive: bool = False) -> list[Path]:
    """Expand folders into the image files they hold.

    paths: one path or an iterable of paths (str or os.PathLike); recursive: also search the
    subfolders of each folder (hidden ones skipped), at any depth.
    Returns a list of Paths, in the given order: a folder is replaced by its image files
    (extensions jpg, jpeg, png, bmp, gif, tif, tiff, webp in any case; hidden files skipped;
    sorted by name; with recursive, a folder's own files first, then each subfolder's in name order).
    Any other path is kept as given, whatever its extension and even if it does not exist, so
    that `load_image` reports what is wrong with it.
    """
    found = []
    for path in _as_path_list(paths):
        if not path.is_dir():
            found.append(path)
        elif recursive:
            for root, dirs, names in os.walk(path):  # top-down: a folder, then its subfolders
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # in order, hidden ones skipped
                found.extend(sorted(f for f in (Path(root) / name for name in names) if _is_image_file(f)))
        else:
            found.extend(sorted(entry for entry in path.iterdir() if _is_image_file(entry)))
    return found


def subfolders(paths) -> list[Path]:
    """The visible subfolders directly inside the folders among ``paths`` (sorted): what
    `list_images` skips when it does not recurse."""
    return [entry for path in _as_path_list(paths) if path.is_dir()
            for entry in sorted(path.iterdir()) if entry.is_dir() and not entry.name.startswith(".")]
