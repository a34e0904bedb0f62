"""load_image and load_images on real files: sizes, determinism, bad files and batches."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from vision.errors import ImageDecodeError
from vision.images import (
    IMAGE_SUFFIXES,
    MISSING_FILE_REASON,
    PREPROCESSING_ID,
    is_candidate_image_name,
    load_image,
    load_images,
)


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth color gradient with some noise, which compresses like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    noisy = pixels + rng.integers(-8, 9, pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def write_jpeg(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    photo_like(width, height, seed).save(path, quality=90)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height gray pixels, followed by almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )
    return path


def decode_reason(path: Path, **options) -> str:
    with pytest.raises(ImageDecodeError) as caught:
        load_image(path, **options)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    return caught.value.reason


def test_preprocessing_id_names_filter():
    assert PREPROCESSING_ID.startswith("pil-rgb8-bilinear-")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", True),
        ("PHOTO.JPG", True),
        ("scan.Tiff", True),
        ("a.b.webp", True),
        ("notes.txt", False),
        ("photo.heic", False),
        ("jpg", False),
        (".jpg", False),
    ],
)
def test_candidate_image_names(name, expected):
    assert is_candidate_image_name(name) is expected


def test_suffixes_lowercase_with_dot():
    assert all(suffix.startswith(".") and suffix == suffix.lower() for suffix in IMAGE_SUFFIXES)


def test_full_size_kept_without_size(tmp_path):
    path = write_jpeg(tmp_path / "photo.jpg", width=64, height=48)

    loaded = load_image(path)

    assert loaded.shape == (48, 64, 3)
    assert loaded.dtype == np.uint8


def test_resized_without_keeping_aspect(tmp_path):
    path = write_jpeg(tmp_path / "photo.jpg", width=64, height=48)

    loaded = load_image(path, (30, 20))

    assert loaded.shape == (30, 20, 3)


def test_same_file_same_pixels(tmp_path):
    path = write_jpeg(tmp_path / "photo.jpg", width=300, height=200)

    first = load_image(path, (50, 50))
    second = load_image(path, (50, 50))

    assert np.array_equal(first, second)


def test_result_is_writable(tmp_path):
    path = write_jpeg(tmp_path / "photo.jpg")

    loaded = load_image(path, (8, 8))

    assert loaded.flags.writeable


def test_jpeg_draft_close_to_full_decode(tmp_path):
    # 1600x1200 to 100x100 decodes at 1/8 scale; the result must stay close to resizing the
    # fully decoded image with the same filter.
    path = write_jpeg(tmp_path / "big.jpg", width=1600, height=1200)
    with Image.open(path) as image:
        reference = np.asarray(image.convert("RGB").resize((100, 100), Image.Resampling.BILINEAR))

    loaded = load_image(path, (100, 100))

    difference = np.abs(loaded.astype(int) - reference.astype(int))
    assert difference.mean() < 3
    assert difference.max() < 40


def test_numpy_integer_size(tmp_path):
    path = write_jpeg(tmp_path / "photo.jpg")

    loaded = load_image(path, (np.int64(12), np.int32(9)))

    assert loaded.shape == (12, 9, 3)


def test_upscaling_small_image(tmp_path):
    path = write_jpeg(tmp_path / "small.jpg", width=10, height=10)

    loaded = load_image(path, (40, 30))

    assert loaded.shape == (40, 30, 3)


def test_content_decides_format_not_suffix(tmp_path):
    path = tmp_path / "really-a-png.jpg"
    Image.new("RGB", (3, 3), (1, 2, 3)).save(path, format="PNG")

    loaded = load_image(path)

    assert loaded[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("size", [(0, 10), (10,), (10.0, 10), (-1, 5), (1, 2, 3), "ab"])
def test_invalid_size_rejected(tmp_path, size):
    path = write_jpeg(tmp_path / "photo.jpg")

    with pytest.raises(ValueError, match="size must be"):
        load_image(path, size)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")

    assert decode_reason(path) == "empty file"


@pytest.mark.parametrize("content", [b"hello, this is text\n", b"ab", b"\x00" * 100])
def test_not_an_image(tmp_path, content):
    path = tmp_path / "text.jpg"
    path.write_bytes(content)

    assert decode_reason(path) == "not an image"


def test_truncated_jpeg(tmp_path):
    whole = write_jpeg(tmp_path / "whole.jpg", width=200, height=150).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    # Pillow's header check passes; only the full decode finds the missing data.
    with Image.open(path) as image:
        image.verify()

    assert decode_reason(path) == "truncated image data"
    assert decode_reason(path, size=(20, 20)) == "truncated image data"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png(tmp_path):
    whole_path = tmp_path / "whole.png"
    photo_like(120, 90).save(whole_path)
    whole = whole_path.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(whole[: len(whole) // 2])

    assert decode_reason(path) == "truncated image data"


def test_corrupt_jpeg_after_header(tmp_path):
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)

    reason = decode_reason(path)

    assert reason.startswith(("invalid image data", "truncated image data"))


def test_pixel_limit_from_header(tmp_path):
    path = write_png_header_only(tmp_path / "bomb.png", 40000, 40000)

    # Pillow's own limit would warn here (and refuse above twice its limit): neither happens.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reason = decode_reason(path)

    assert "40000x40000 = 1600000000 pixels" in reason
    assert "above the limit of 120000000" in reason
    assert reason.endswith("raise --max-pixels to accept it")


def test_pixel_limit_argument(tmp_path):
    path = write_jpeg(tmp_path / "photo.jpg", width=100, height=80)

    reason = decode_reason(path, max_pixels=7999)
    loaded = load_image(path, max_pixels=8000)

    assert "100x80 = 8000 pixels, above the limit of 7999" in reason
    assert loaded.shape == (80, 100, 3)


def test_invalid_max_pixels(tmp_path):
    path = write_jpeg(tmp_path / "photo.jpg")

    with pytest.raises(ValueError, match="max_pixels"):
        load_image(path, max_pixels=0)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "unsupported format HEIF"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + b"\x00" * 64, "unsupported format AVIF"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "unsupported format PDF"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "unsupported format SVG"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>', "unsupported format SVG"),
        (b"8BPS\x00\x01" + b"\x00" * 64, "unsupported format PSD"),
    ],
    ids=["heic", "avif", "pdf", "svg-xml", "svg", "psd"],
)
def test_unsupported_formats_named(tmp_path, content, reason):
    path = tmp_path / "picture.jpg"
    path.write_bytes(content)

    assert decode_reason(path) == reason


def test_other_pillow_format_rejected(tmp_path):
    # Pillow decodes PPM, but sortbox only decodes the formats of IMAGE_SUFFIXES.
    path = tmp_path / "image.ppm"
    Image.new("RGB", (4, 4), (5, 6, 7)).save(path, format="PPM")

    assert decode_reason(path) == "unsupported format PPM"


def test_missing_file_passes_through(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "gone.jpg")


def test_directory_rejected(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()

    assert decode_reason(folder) == "is a directory"


def test_batch_matches_single_loads(tmp_path):
    paths = [
        write_jpeg(tmp_path / f"photo{index}.jpg", 80 + index, 60, seed=index) for index in range(5)
    ]

    batch, failures = load_images(paths, (32, 24), workers=3)

    assert failures == []
    assert batch.shape == (5, 32, 24, 3)
    assert batch.dtype == np.uint8
    for row, path in enumerate(paths):
        assert np.array_equal(batch[row], load_image(path, (32, 24)))


def test_batch_skips_and_lists_bad_files(tmp_path):
    good_first = write_jpeg(tmp_path / "a.jpg", seed=1)
    empty = tmp_path / "b.jpg"
    empty.write_bytes(b"")
    good_second = write_jpeg(tmp_path / "c.jpg", seed=2)
    text = tmp_path / "d.jpg"
    text.write_text("not a picture")
    missing = tmp_path / "e.jpg"

    batch, failures = load_images([good_first, empty, good_second, text, missing], (16, 16))

    assert batch.shape == (2, 16, 16, 3)
    assert np.array_equal(batch[0], load_image(good_first, (16, 16)))
    assert np.array_equal(batch[1], load_image(good_second, (16, 16)))
    assert failures == [
        (str(empty), "empty file"),
        (str(text), "not an image"),
        (str(missing), MISSING_FILE_REASON),
    ]


def test_batch_workers_same_result(tmp_path):
    paths = [write_jpeg(tmp_path / f"p{index}.jpg", 90, 70, seed=index) for index in range(6)]

    sequential, _ = load_images(paths, (20, 20), workers=1)
    threaded, _ = load_images(paths, (20, 20), workers=4)

    assert np.array_equal(sequential, threaded)


def test_empty_batch_shape():
    batch, failures = load_images([], (12, 10))

    assert batch.shape == (0, 12, 10, 3)
    assert failures == []


def test_batch_invalid_workers(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        load_images([write_jpeg(tmp_path / "a.jpg")], (8, 8), workers=0)


@pytest.mark.shared
def test_clothing_photos_decode(clothing_dataset):
    paths = sorted((clothing_dataset / "validation").glob("*/*.jpg"))[:12]
    assert paths

    batch, failures = load_images(paths, (150, 150))

    assert failures == []
    assert batch.shape == (len(paths), 150, 150, 3)
    # Real photos are neither blank nor saturated.
    assert 20 < batch.mean() < 235


def test_pillow_limit_in_gif_frame(tmp_path):
    # The logical screen is 1x1, so the header check passes, but the first frame claims
    # 20000x20000: Pillow's GIF reader grows the image and applies its own process-wide limit.
    screen = struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 20000, 20000, 0)
    path = tmp_path / "frame.gif"
    path.write_bytes(b"GIF89a" + screen + frame + b"\x02\x02\x44\x01\x00\x3b")

    reason = decode_reason(path)

    assert "Image.MAX_IMAGE_PIXELS" in reason


def test_batch_needs_size(tmp_path):
    with pytest.raises(ValueError, match="needs a size"):
        load_images([write_jpeg(tmp_path / "a.jpg")], None)
