"""Domain errors of image loading and model inference."""


class VisionError(Exception):
    """Base class of every error raised on purpose by `vision`."""


class ImageDecodeError(VisionError):
    """A file cannot be turned into RGB pixels; `reason` gives the cause in a few words."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read image {path!r}: {reason}")
        self.path = path
        self.reason = reason


class ModelLoadError(VisionError):
    """A model artifact does not load or does not match its registered classes."""
