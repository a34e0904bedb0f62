"""The one image loader of sortbox: training, evaluation and the daemon get the same pixels.

`load_image` turns a file into a uint8 RGB array of shape (height, width, 3):

1. The header is read and the pixel count is checked against `max_pixels` before any pixel is
   decoded, so a decompression bomb costs a few bytes of reading.
2. Only JPEG (with MPO), PNG, WebP, BMP, GIF and TIFF are decoded. Other formats that Pillow
   could open (EPS, PSD, ...) are rejected by name, which also keeps Ghostscript out of reach.
3. Multi-frame files (GIF, TIFF, MPO) give their first frame.
4. When a target size is given, a JPEG is decoded with DCT scaling (`Image.draft`) at the
   smallest power-of-two reduction that still covers the target, which is several times faster
   on large photos than a full decode.
5. The pixels are converted to 8-bit RGB by `vision.pixels.to_rgb8` (transparency on white,
   16-bit and float images scaled rather than clipped).
6. The whole image is resized to the target with Pillow's antialiased bilinear filter and
   `reducing_gap=3.0`. There is no crop and the aspect ratio is not kept, like the default of
   `keras.utils.image_dataset_from_directory` (whose bilinear resize does not antialias).
7. The EXIF orientation is applied last, so rotating a small array costs little. The target
   size is the size of the upright image.

Truncated files are rejected as long as PIL.ImageFile.LOAD_TRUNCATED_IMAGES keeps its default,
False; sortbox never sets it. Any change to these steps changes the pixels given to a model:
bump PREPROCESSING_ID with it.
"""

from __future__ import annotations

import logging
import operator
import os
import struct
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import ExifTags, Image

from vision.errors import ImageDecodeError
from vision.pixels import to_rgb8

logger = logging.getLogger(__name__)

PREPROCESSING_ID = "pil-rgb8-bilinear-v1"
"""Name of the pixel pipeline above; every model version stores the one it was trained with."""

DEFAULT_MAX_PIXELS = 120_000_000
"""Largest width * height accepted by default.

It admits the 108-megapixel photos of current phone cameras (12032x9024). Pillow keeps RGB at
4 bytes a pixel, so a full decode at the limit takes about 480 MB per decoding thread (a JPEG
decoded with DCT scaling takes far less).
"""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

MISSING_FILE_REASON = "file not found"
"""The reason `load_images` gives for a path that vanished before it was read."""

RESAMPLE = Image.Resampling.BILINEAR
REDUCING_GAP = 3.0

# Pillow format ids that are decoded. The JPEG opener also returns MPO files.
_DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})

# EXIF orientation value -> transpose that makes the image upright (EXIF 2.32, tag 0x0112).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})

# Errors that Pillow raises for malformed headers and pixel data. Image.DecompressionBombError
# derives from Exception only, so it is handled apart.
_PILLOW_DATA_ERRORS = (OSError, SyntaxError, ValueError, TypeError, EOFError, IndexError, struct.error)

_HEADER_BYTES = 16
_SNIFF_BYTES = 1024
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


class DecodeFailure(NamedTuple):
    """A path that `load_images` could not decode, with the short reason."""

    path: str
    reason: str


def is_candidate_image_name(name: str | os.PathLike[str]) -> bool:
    """Tell whether a file name has one of IMAGE_SUFFIXES, ignoring case (".JPG" counts)."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def load_image(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode an image file into a uint8 RGB array of shape (height, width, 3).

    Args:
        path: The image file. Its content decides the format, not its suffix.
        size: Target (height, width). The whole image is resized to it, without crop. Defaults
            to None, which keeps the upright size of the image.
        max_pixels: Largest width * height accepted, checked from the header before decoding.
            Defaults to DEFAULT_MAX_PIXELS.

    Raises:
        FileNotFoundError: the file does not exist (the daemon treats a vanished file apart
            from a bad one, so this is not wrapped).
        ImageDecodeError: any other reason the file gives no pixels, named by `reason`.
        ValueError: `size` or `max_pixels` is not a valid value.
    """
    size = _check_arguments(size, max_pixels)
    name = os.fspath(path)

    try:
        with open(name, "rb") as file:
            return _decode(file, name, size, max_pixels)
    except FileNotFoundError:
        raise
    except IsADirectoryError as error:
        raise ImageDecodeError(name, "is a directory") from error
    except PermissionError as error:
        raise ImageDecodeError(name, "permission denied") from error


def load_images(
    paths: Iterable[str | os.PathLike[str]],
    size: tuple[int, int],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> tuple[np.ndarray, list[DecodeFailure]]:
    """Decode many files in a thread pool into one uint8 batch of shape (N, height, width, 3).

    Pillow releases the GIL while it decodes and resizes, so threads run in parallel.

    Args:
        paths: The image files.
        size: Target (height, width) of every image.
        max_pixels: As in `load_image`.
        workers: Number of decoding threads. Defaults to None, which uses min(8, CPU count).

    Returns:
        The batch and the failures. Rows of the batch follow the order of `paths`, skipping
        the failed ones. A vanished file is a failure with reason MISSING_FILE_REASON.
    """
    size = _check_arguments(size, max_pixels)
    if size is None:
        raise ValueError(
            "load_images needs a size (height, width) so that the images stack into one batch"
        )
    names = [os.fspath(path) for path in paths]
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    def decode_one(name: str) -> np.ndarray | DecodeFailure:
        try:
            return load_image(name, size, max_pixels=max_pixels)
        except FileNotFoundError:
            return DecodeFailure(name, MISSING_FILE_REASON)
        except ImageDecodeError as error:
            return DecodeFailure(name, error.reason)

    if workers == 1 or len(names) <= 1:
        results = [decode_one(name) for name in names]
    else:
        threads = min(workers, len(names))
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
            results = list(pool.map(decode_one, names))

    arrays = [result for result in results if isinstance(result, np.ndarray)]
    failures = [result for result in results if isinstance(result, DecodeFailure)]
    for failure in failures:
        logger.debug("skipped %s: %s", failure.path, failure.reason)

    batch = np.empty((len(arrays), size[0], size[1], 3), dtype=np.uint8)
    for row, array in enumerate(arrays):
        batch[row] = array
    return batch, failures


def _check_arguments(size: Sequence[int] | None, max_pixels: int) -> tuple[int, int] | None:
    """Validate the arguments and return `size` as a tuple of Python ints (NumPy ints accepted)."""
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    if size is None:
        return None

    message = f"size must be (height, width) with two positive integers, got {size!r}"
    try:
        height, width = (operator.index(side) for side in size)
    except (TypeError, ValueError) as error:
        raise ValueError(message) from error
    if height < 1 or width < 1:
        raise ValueError(message)
    return (height, width)


def _decode(file: BinaryIO, name: str, size: tuple[int, int] | None, max_pixels: int) -> np.ndarray:
    header = file.read(_HEADER_BYTES)
    if not header:
        raise ImageDecodeError(name, "empty file")

    image = _open_decoded_format(file, name, header)
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageDecodeError(
                name,
                f"image has {width}x{height} = {width * height} pixels, above the limit of "
                f"{max_pixels}; raise --max-pixels to accept it",
            )

        orientation = _orientation(image) if image.format in _JPEG_FORMATS else None
        stored_size = _stored_size(size, orientation)
        if stored_size is not None and image.format in _JPEG_FORMATS:
            # Image.draft takes (width, height) and picks the largest DCT scale 1/2, 1/4 or 1/8
            # whose result is still at least this size.
            image.draft(None, (stored_size[1], stored_size[0]))

        image.load()
        if orientation is None:
            orientation = _orientation(image)
            stored_size = _stored_size(size, orientation)

        rgb = to_rgb8(image)
        if stored_size is not None and rgb.size != (stored_size[1], stored_size[0]):
            rgb = rgb.resize((stored_size[1], stored_size[0]), RESAMPLE, reducing_gap=REDUCING_GAP)

        transpose = _ORIENTATION_TRANSPOSE.get(orientation or 1)
        if transpose is not None:
            rgb = rgb.transpose(transpose)

        return np.array(rgb, dtype=np.uint8)
    except ImageDecodeError:
        raise
    except _PILLOW_DATA_ERRORS as error:
        raise ImageDecodeError(name, _describe_decode_error(error)) from error
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(name, _describe_pillow_limit(error)) from error
    finally:
        image.close()


def _open_decoded_format(file: BinaryIO, name: str, header: bytes) -> Image.Image:
    """Identify the file among the decoded formats and read its header, but not its pixels.

    This calls the format openers that `Image.open` calls, without its process-wide
    decompression-bomb check (a warning above Image.MAX_IMAGE_PIXELS, an error above twice
    that). `load_image` applies its own `max_pixels` instead, so no global setting changes.
    """
    Image.init()
    for format_id in _DECODED_FORMATS:
        opener, accept = Image.OPEN[format_id]
        if not _accepts(accept, header):
            continue
        file.seek(0)
        try:
            return opener(file, name)
        except _PILLOW_DATA_ERRORS as error:
            raise ImageDecodeError(name, _describe_decode_error(error)) from error
        except Image.DecompressionBombError as error:
            raise ImageDecodeError(name, _describe_pillow_limit(error)) from error

    raise ImageDecodeError(name, _describe_unsupported(file, header))


def _accepts(accept, header: bytes) -> bool:
    """Run a Pillow format check on the header; a format without a check accepts anything."""
    if accept is None:
        return True
    try:
        # A check may return a warning string instead of True: that is not a match.
        return accept(header) is True
    except (SyntaxError, IndexError, TypeError, ValueError, struct.error):
        return False


def _describe_unsupported(file: BinaryIO, header: bytes) -> str:
    if len(header) >= 12 and header[4:8] == b"ftyp":
        brand = header[8:12]
        if brand in _HEIF_BRANDS:
            return "unsupported format HEIF"
        if brand in _AVIF_BRANDS:
            return "unsupported format AVIF"

    if header.startswith(b"%PDF-"):
        return "unsupported format PDF"

    file.seek(0)
    start = file.read(_SNIFF_BYTES).lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith((b"<svg", b"<?xml", b"<!DOCTYPE svg")) and b"<svg" in start:
        return "unsupported format SVG"

    # Pillow's format checks only look at these header bytes, so naming the format is cheap.
    for format_id, (_, accept) in Image.OPEN.items():
        if format_id not in _DECODED_FORMATS and accept is not None and _accepts(accept, header):
            return f"unsupported format {format_id}"
    return "not an image"


def _describe_pillow_limit(error: Image.DecompressionBombError) -> str:
    # NOTE: the MPO opener, and the GIF opener for a frame larger than the logical screen,
    # still apply Pillow's process-wide limit whatever max_pixels is. Above
    # Image.MAX_IMAGE_PIXELS they warn with DecompressionBombWarning, above twice that they raise.
    return f"{error}; this is Pillow's Image.MAX_IMAGE_PIXELS limit, which --max-pixels does not change"


def _describe_decode_error(error: BaseException) -> str:
    message = str(error)
    lowered = message.lower()
    if "truncated" in lowered or "broken data stream" in lowered or isinstance(error, EOFError):
        return "truncated image data"
    return f"invalid image data ({message or type(error).__name__})"


def _orientation(image: Image.Image) -> int | None:
    """Return the EXIF orientation 1-8, or None when absent or unreadable.

    A broken EXIF block does not reject an image whose pixels decode: it counts as upright.
    """
    try:
        value = image.getexif().get(ExifTags.Base.Orientation)
    except (*_PILLOW_DATA_ERRORS, KeyError) as error:
        logger.debug("ignored unreadable EXIF data: %s", error)
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _stored_size(size: tuple[int, int] | None, orientation: int | None) -> tuple[int, int] | None:
    """Return the (height, width) to resize to before the orientation is applied."""
    if size is None:
        return None
    if orientation in _SWAPS_AXES:
        return (size[1], size[0])
    return size

