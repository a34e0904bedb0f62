"""Every image mode becomes the expected 8-bit RGB values, from real files written with Pillow."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from vision.images import load_image
from vision.pixels import to_rgb8


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_rgb16(path: Path, pixels: np.ndarray) -> None:
    """Write a 16-bit-per-channel RGB PNG by hand, because Pillow cannot save one."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_rgb_png_unchanged(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    path = save(Image.fromarray(pixels, "RGB"), tmp_path / "rgb.png")

    loaded = load_image(path)

    assert loaded.dtype == np.uint8
    assert loaded.shape == (6, 5, 3)
    assert np.array_equal(loaded, pixels)


def test_grayscale_copied_to_channels(tmp_path):
    gray = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    path = save(Image.fromarray(gray, "L"), tmp_path / "gray.png")

    loaded = load_image(path)

    for channel in range(3):
        assert np.array_equal(loaded[..., channel], gray)


def test_one_bit_black_and_white(tmp_path):
    image = Image.new("1", (4, 2), 0)
    image.putpixel((1, 0), 1)
    path = save(image, tmp_path / "bits.png")

    loaded = load_image(path)

    assert loaded[0, 1].tolist() == [255, 255, 255]
    assert loaded[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("with_icc", [False, True], ids=["no-icc", "icc"])
def test_cmyk_pure_cyan(tmp_path, with_icc):
    options = {}
    if with_icc:
        # The embedded profile is ignored: the conversion is Pillow's plain CMYK formula.
        options["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = save(Image.new("CMYK", (3, 3), (255, 0, 0, 0)), tmp_path / "cyan.tif", **options)

    loaded = load_image(path)

    assert loaded[1, 1].tolist() == [0, 255, 255]


def test_cmyk_jpeg_close_to_cyan(tmp_path):
    path = save(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), tmp_path / "cyan.jpg", quality=95)

    loaded = load_image(path).astype(int)

    assert np.abs(loaded[8, 8] - [0, 255, 255]).max() <= 3


def test_palette_without_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([200, 10, 20, 30, 40, 250] + [0] * 762)
    image.putpixel((1, 0), 1)
    path = save(image, tmp_path / "palette.png")

    loaded = load_image(path)

    assert loaded[0, 0].tolist() == [200, 10, 20]
    assert loaded[0, 1].tolist() == [30, 40, 250]


def test_palette_transparency_becomes_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 30, 40, 250] + [0] * 762)
    image.putpixel((1, 0), 1)
    path = save(image, tmp_path / "palette.png", transparency=0)

    loaded = load_image(path)

    assert loaded[0, 0].tolist() == [255, 255, 255]
    assert loaded[0, 1].tolist() == [30, 40, 250]


def test_rgba_composited_on_white(tmp_path):
    pixels = np.array([[[0, 0, 0, 0], [10, 20, 30, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    path = save(Image.fromarray(pixels, "RGBA"), tmp_path / "alpha.png")

    loaded = load_image(path)

    assert loaded[0, 0].tolist() == [255, 255, 255]
    assert loaded[0, 1].tolist() == [10, 20, 30]
    # Half-transparent black over white is mid gray.
    assert all(126 <= value <= 128 for value in loaded[0, 2].tolist())


def test_gray_alpha_composited_on_white(tmp_path):
    pixels = np.array([[[0, 0], [90, 255]]], dtype=np.uint8)
    path = save(Image.fromarray(pixels, "LA"), tmp_path / "gray-alpha.png")

    loaded = load_image(path)

    assert loaded[0, 0].tolist() == [255, 255, 255]
    assert loaded[0, 1].tolist() == [90, 90, 90]


def test_rgb_color_key_becomes_white(tmp_path):
    pixels = np.array([[[1, 2, 3], [40, 50, 60]]], dtype=np.uint8)
    path = save(Image.fromarray(pixels, "RGB"), tmp_path / "key.png", transparency=(1, 2, 3))

    loaded = load_image(path)

    assert loaded[0, 0].tolist() == [255, 255, 255]
    assert loaded[0, 1].tolist() == [40, 50, 60]


def test_sixteen_bit_gray_ramp_not_clipped(tmp_path):
    levels = np.arange(256, dtype=np.uint16) * 257
    path = save(Image.fromarray(levels.reshape(1, 256)), tmp_path / "ramp16.png")
    assert Image.open(path).mode == "I;16"

    loaded = load_image(path)

    assert loaded[0, :, 0].tolist() == list(range(256))


def test_sixteen_bit_rounds_to_nearest(tmp_path):
    values = np.array([[0, 128, 129, 32767, 65534, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "round16.png")

    loaded = load_image(path)

    assert loaded[0, :, 0].tolist() == [0, 0, 1, 127, 255, 255]


def test_big_endian_sixteen_bit():
    image = Image.frombytes("I;16B", (3, 1), np.array([0, 32896, 65535], dtype=">u2").tobytes())

    converted = np.asarray(to_rgb8(image))

    assert converted[0, :, 0].tolist() == [0, 128, 255]


def test_int32_sixteen_bit_range(tmp_path):
    values = np.array([[0, 257 * 100, 65535]], dtype=np.int32)
    path = save(Image.fromarray(values), tmp_path / "int32.tif")
    assert Image.open(path).mode == "I"

    loaded = load_image(path)

    assert loaded[0, :, 0].tolist() == [0, 100, 255]


def test_int32_wide_range_stretched(tmp_path):
    values = np.array([[-1000, 0, 1000, 99000]], dtype=np.int32)
    path = save(Image.fromarray(values), tmp_path / "wide.tif")

    loaded = load_image(path)

    assert loaded[0, :, 0].tolist() == [0, 3, 5, 255]


def test_float_unit_range_scaled(tmp_path):
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    path = save(Image.fromarray(values), tmp_path / "float.tif")
    assert Image.open(path).mode == "F"

    loaded = load_image(path)

    assert loaded[0, :, 0].tolist() == [0, 128, 255]


def test_float_other_range_stretched(tmp_path):
    values = np.array([[-1.0, 1.0, 3.0]], dtype=np.float32)
    path = save(Image.fromarray(values), tmp_path / "float-wide.tif")

    loaded = load_image(path)

    assert loaded[0, :, 0].tolist() == [0, 128, 255]


def test_constant_float_image_black():
    image = Image.fromarray(np.full((2, 2), 7.5, dtype=np.float32))

    converted = np.asarray(to_rgb8(image))

    assert not converted.any()


def test_sixteen_bit_rgb_png(tmp_path):
    pixels = np.array([[[65535, 32768, 0], [257, 514, 65280]]], dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    write_png_rgb16(path, pixels)

    loaded = load_image(path)

    assert loaded[0, 0].tolist() == [255, 128, 0]
    assert loaded[0, 1].tolist() == [1, 2, 255]


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    path = tmp_path / "two.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(path).n_frames == 2

    loaded = load_image(path)

    assert loaded[2, 2].tolist() == [255, 0, 0]


def test_tiff_first_page(tmp_path):
    pages = [Image.new("RGB", (4, 4), (0, 200, 0)), Image.new("RGB", (8, 8), (9, 9, 9))]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])

    loaded = load_image(path)

    assert loaded.shape == (4, 4, 3)
    assert loaded[0, 0].tolist() == [0, 200, 0]


# Transpose that stores an upright image so that EXIF orientation N shows it upright again.
STORE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_test_image() -> Image.Image:
    """An asymmetric 12x20 (width x height) image, so every flip or rotation changes it."""
    pixels = np.zeros((20, 12, 3), dtype=np.uint8)
    pixels[:5, :3] = (255, 0, 0)
    pixels[15:, 6:] = (0, 0, 255)
    pixels[8:12, :] = (0, 180, 0)
    return Image.fromarray(pixels, "RGB")


def save_with_orientation(image: Image.Image, path: Path, orientation: int, **options) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.transpose(STORE_FOR_ORIENTATION[orientation]).save(path, exif=exif.tobytes(), **options)
    return path


@pytest.mark.parametrize("orientation", sorted(STORE_FOR_ORIENTATION))
def test_exif_orientation_upright(tmp_path, orientation):
    upright = upright_test_image()
    path = save_with_orientation(upright, tmp_path / "turned.png", orientation)

    loaded = load_image(path)

    assert np.array_equal(loaded, np.asarray(upright))


def test_exif_orientation_six_resized(tmp_path):
    upright = upright_test_image()
    turned = save_with_orientation(upright, tmp_path / "turned.png", 6)
    straight = save(upright, tmp_path / "straight.png")

    loaded = load_image(turned, (10, 6))
    expected = load_image(straight, (10, 6))

    assert loaded.shape == (10, 6, 3)
    # Resizing before the rotation runs Pillow's two passes in the other order, and each pass
    # rounds to 8 bits, so values may differ by one level.
    assert np.abs(loaded.astype(int) - expected.astype(int)).max() <= 1


def test_exif_orientation_jpeg_draft(tmp_path):
    upright = upright_test_image().resize((480, 800))
    turned = save_with_orientation(upright, tmp_path / "turned.jpg", 6, quality=95)

    loaded = load_image(turned, (100, 60))

    assert loaded.shape == (100, 60, 3)
    # The red corner stays at the top left after the rotation.
    assert loaded[5, 5, 0] > 200
    assert loaded[5, 5, 2] < 60


def test_mpo_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), (250, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 250))]
    path = tmp_path / "stereo.jpg"
    frames[0].save(path, format="MPO", save_all=True, append_images=frames[1:], quality=95)
    assert Image.open(path).format == "MPO"

    loaded = load_image(path).astype(int)

    assert np.abs(loaded[8, 8] - [250, 0, 0]).max() <= 4


@pytest.mark.parametrize(
    ("suffix", "options"),
    [
        (".png", {}),
        (".bmp", {}),
        (".tif", {}),
        (".webp", {"lossless": True}),
    ],
)
def test_lossless_formats_exact(tmp_path, suffix, options):
    pixels = np.random.default_rng(7).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    path = save(Image.fromarray(pixels, "RGB"), tmp_path / f"picture{suffix}", **options)

    loaded = load_image(path)

    assert np.array_equal(loaded, pixels)
