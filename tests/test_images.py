"""Tests for pipeline.data.images: every input becomes (H, W, 3) uint8 RGB, or a clear ImageError."""

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.data.images import ImageError, list_images, load_image, to_chw_float

EXIF_ORIENTATION = 0x0112


@pytest.fixture
def rgb_array():
    """(20, 30, 3) uint8 with distinct-ish values."""
    return np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)


def jpeg_bytes(array, quality=95, **save_options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality, **save_options)
    return buffer.getvalue()


def assert_rgb(image, shape):
    assert image.shape == (*shape, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous


# ---------------------------------------------------------------- files and Pillow modes


def test_rgb_png_round_trip(tmp_path, rgb_array):
    path = tmp_path / "photo.png"
    Image.fromarray(rgb_array).save(path)
    image = load_image(path)
    assert_rgb(image, (20, 30))
    np.testing.assert_array_equal(image, rgb_array)
    np.testing.assert_array_equal(load_image(str(path)), rgb_array)  # str paths too


def test_grayscale_becomes_three_equal_channels(tmp_path, rgb_array):
    gray = rgb_array[:, :, 0]
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    image = load_image(path)
    assert_rgb(image, (20, 30))
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray)


def test_rgba_drops_alpha_without_compositing(tmp_path, rgb_array):
    alpha = np.zeros((20, 30, 1), dtype=np.uint8)  # fully transparent: colours must survive
    path = tmp_path / "rgba.png"
    Image.fromarray(np.concatenate([rgb_array, alpha], axis=2)).save(path)
    np.testing.assert_array_equal(load_image(path), rgb_array)


def test_palette_image_uses_the_palette_colours(tmp_path):
    palette_image = Image.new("P", (4, 3))
    palette_image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    palette_image.putdata([0, 1, 2, 0] * 3)
    path = tmp_path / "palette.png"
    palette_image.save(path)
    image = load_image(path)
    assert_rgb(image, (3, 4))
    np.testing.assert_array_equal(image[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 0]])


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 257, 1000], [32896, 65279, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    image = load_image(path)
    assert_rgb(image, (2, 3))
    expected = np.array([[0, 1, 4], [128, 254, 255]], dtype=np.uint8)  # round(value / 257)
    np.testing.assert_array_equal(image[:, :, 1], expected)


def test_32_bit_integer_mode_is_scaled_and_clipped():
    pil_image = Image.fromarray(np.array([[-5, 514, 70000]], dtype=np.int32))
    assert pil_image.mode == "I"
    np.testing.assert_array_equal(load_image(pil_image)[:, :, 0], [[0, 2, 255]])


def test_float_mode_is_rounded_and_clipped():
    pil_image = Image.fromarray(np.array([[-3.0, 100.4, 100.6, 300.0]], dtype=np.float32))
    assert pil_image.mode == "F"
    np.testing.assert_array_equal(load_image(pil_image)[:, :, 2], [[0, 100, 101, 255]])


@pytest.mark.parametrize("mode", ["L", "LA", "PA", "CMYK", "YCbCr", "1", "RGBA"])
def test_other_modes_convert_to_rgb(mode):
    image = load_image(Image.new(mode, (5, 4)))
    assert_rgb(image, (4, 5))


def test_exif_orientation_is_applied(tmp_path):
    # stored 40 wide x 20 tall with a red block at the top-left; orientation 6 means
    # "rotate 90 degrees clockwise to display", which moves the block to the top-right
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :, 2] = 200
    stored[:8, :8] = [255, 0, 0]
    pil_image = Image.fromarray(stored)
    exif = pil_image.getexif()
    exif[EXIF_ORIENTATION] = 6
    path = tmp_path / "rotated.jpg"
    pil_image.save(path, quality=95, exif=exif)

    image = load_image(path)
    assert_rgb(image, (40, 20))
    top_right, top_left = image[1:7, 13:19].astype(int), image[1:7, 1:7].astype(int)
    assert np.all(top_right[..., 0] > 200) and np.all(top_right[..., 2] < 60)  # red
    assert np.all(top_left[..., 0] < 60) and np.all(top_left[..., 2] > 150)  # blue


def test_pil_image_input_is_copied(rgb_array):
    pil_image = Image.fromarray(rgb_array)
    image = load_image(pil_image)
    np.testing.assert_array_equal(image, rgb_array)
    image[0, 0] = 0
    assert np.asarray(pil_image)[0, 0].tolist() == rgb_array[0, 0].tolist()


# ---------------------------------------------------------------- unreadable files


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="nowhere.jpg.*no such file"):
        load_image(tmp_path / "nowhere.jpg")


def test_directory(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(ImageError, match="folder.jpg.*directory"):
        load_image(folder)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png.*0 bytes"):
        load_image(path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    with pytest.raises(ImageError, match="notes.jpg.*not an image"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    data = jpeg_bytes(noise)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg.*truncated or corrupt"):
        load_image(path)


def test_image_error_is_a_value_error_with_one_line(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes(np.zeros((64, 64, 3), dtype=np.uint8))[:200])
    with pytest.raises(ValueError) as caught:
        load_image(path)
    assert isinstance(caught.value, ImageError)
    assert "\n" not in str(caught.value)


def test_unsupported_source_type():
    with pytest.raises(ImageError, match="list"):
        load_image([[1, 2], [3, 4]])


# ---------------------------------------------------------------- arrays


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1)])
def test_gray_arrays_become_three_channels(shape, rgb_array):
    gray = rgb_array[:, :, 0].reshape(shape)
    image = load_image(gray)
    assert_rgb(image, (20, 30))
    np.testing.assert_array_equal(image, np.repeat(rgb_array[:, :, :1], 3, axis=2))


def test_rgba_array_drops_alpha(rgb_array):
    rgba = np.concatenate([rgb_array, np.full((20, 30, 1), 7, dtype=np.uint8)], axis=2)
    np.testing.assert_array_equal(load_image(rgba), rgb_array)


def test_rgb_array_is_copied_and_made_contiguous(rgb_array):
    view = rgb_array[:, ::2]  # not contiguous
    image = load_image(view)
    assert image.flags.c_contiguous
    np.testing.assert_array_equal(image, view)
    same = load_image(rgb_array)
    assert not np.shares_memory(same, rgb_array)


def test_uint16_array_is_scaled(rgb_array):
    np.testing.assert_array_equal(load_image(rgb_array.astype(np.uint16) * 257), rgb_array)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "float32.*uint8"),
        (np.zeros((4, 4), dtype=bool), "bool.*uint8"),
        (np.zeros((4, 4, 3), dtype=np.int64), "int64"),
        (np.zeros((4, 4, 2), dtype=np.uint8), r"\(4, 4, 2\)"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), r"\(2, 4, 4, 3\)"),
        (np.zeros((4,), dtype=np.uint8), r"\(4,\)"),
        (np.zeros((0, 4, 3), dtype=np.uint8), r"empty.*\(0, 4, 3\)"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(ImageError, match=message):
        load_image(array)


# ---------------------------------------------------------------- to_chw_float


def test_to_chw_float(rgb_array):
    chw = to_chw_float(rgb_array)
    assert chw.shape == (3, 20, 30) and chw.dtype == np.float32 and chw.flags.c_contiguous
    np.testing.assert_array_equal(chw[1], rgb_array[:, :, 1].astype(np.float32))  # no normalization


@pytest.mark.parametrize(
    "array", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((3, 4, 4), np.uint8)]
)
def test_to_chw_float_rejects_non_rgb_uint8(array):
    with pytest.raises(ValueError, match="uint8"):
        to_chw_float(array)


# ---------------------------------------------------------------- list_images


def test_list_images_expands_folders(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ["b.JPG", "a.png", "c.WebP", "notes.txt", ".hidden.jpg", "d.tiff"]:
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.jpg").write_bytes(b"x")
    explicit = tmp_path / "readme.md"  # given by name: kept whatever its extension
    missing = tmp_path / "missing.jpg"  # kept too: load_image will say what is wrong

    found = list_images([explicit, folder, str(missing)])
    names = [path.name for path in found]
    assert names == ["readme.md", "a.png", "b.JPG", "c.WebP", "d.tiff", "missing.jpg"]


def test_list_images_accepts_a_single_path(tmp_path):
    (tmp_path / "one.bmp").write_bytes(b"x")
    assert list_images(str(tmp_path)) == [tmp_path / "one.bmp"]
    assert list_images(tmp_path) == [tmp_path / "one.bmp"]


def test_list_images_of_empty_folder(tmp_path):
    assert list_images([tmp_path]) == []
