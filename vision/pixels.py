"""Conversion of every Pillow image mode to 8-bit RGB, the same way for every caller.

Rules, applied after decoding and before resizing:

- RGB is kept as it is. Grayscale (L), 1-bit and YCbCr images go through Pillow's own
  conversion, which copies the gray level into the three channels.
- CMYK goes through Pillow's conversion, which ignores an embedded ICC profile. Colors of CMYK
  files with a print profile therefore differ from what a color-managed viewer shows.
- Transparency (RGBA, LA, PA, a palette or a single color key with a `transparency` entry) is
  composited on a white background. White matches how product photos and scanned documents with
  a cut-out background are usually shown, and avoids the black or garbage colors that dropping
  the alpha channel exposes in fully transparent pixels.
- 16-bit grayscale (I;16 and its byte orders) maps 0..65535 linearly to 0..255, rounding to the
  nearest level, so a full-range ramp stays a full-range ramp instead of clipping at 255.
- 32-bit integer (I) images whose values fit 0..65535 are treated as 16-bit, because Pillow and
  many writers store 16-bit data in that mode. Other I images, and float (F) images outside
  0..1, are stretched linearly from their minimum to their maximum. F images within 0..1 map
  0.0 to 0 and 1.0 to 255. NaN and infinite values count as 0.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WHITE = (255, 255, 255)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})


def to_rgb8(image: Image.Image) -> Image.Image:
    """Convert a loaded Pillow image of any supported mode to 8-bit RGB.

    Raises:
        ValueError: when Pillow has no conversion for the mode (for example "La").
    """
    # NOTE: embedded ICC profiles are ignored for every mode, so CMYK print profiles and wide
    # gamut photos (Display P3, Adobe RGB) are read as if their values were sRGB.
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image

    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(image), mode="L").convert("RGB")

    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _composite_on_white(image)

    return image.convert("RGB")


def _composite_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _scale_to_uint8(image: Image.Image) -> np.ndarray:
    values = np.asarray(image)

    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_uint8(values)

    if image.mode == "I":
        if values.size and values.min() >= 0 and values.max() <= 65535:
            return _sixteen_bit_to_uint8(values)
        return _stretch_to_uint8(values.astype(np.float64))

    floats = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if floats.size and floats.min() >= 0.0 and floats.max() <= 1.0:
        return np.rint(floats * 255.0).astype(np.uint8)
    return _stretch_to_uint8(floats)


def _sixteen_bit_to_uint8(values: np.ndarray) -> np.ndarray:
    # v * 255 / 65535 == v / 257, rounded half up with integer arithmetic.
    wide = values.astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return values.astype(np.uint8)

    low = values.min()
    high = values.max()
    if high == low:
        # A constant image has no range to stretch, so it becomes black.
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)
