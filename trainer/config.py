"""Training options as one frozen value, validated before TensorFlow is imported.

The click commands build a `TrainConfig`. Everything after that (scan, feature cache, fit,
registration) reads only this value, so a library caller gets the same checks as the CLI.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from registry.types import DEFAULT_MODEL_NAME
from trainer.errors import ConfigError, WeightsError

# Native input size (height, width) of each supported backbone.
NATIVE_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "xception": (299, 299),
    "mobilenet_v2": (224, 224),
    "efficientnet_b0": (224, 224),
    "resnet50": (224, 224),
}

# Smallest input each Keras application accepts with include_top=False.
MIN_IMAGE_SIDES: dict[str, int] = {
    "xception": 71,
    "mobilenet_v2": 32,
    "efficientnet_b0": 32,
    "resnet50": 32,
}

# Largest accepted image side. The backbones were pretrained at 224 or 299 pixels, and a decoded
# split takes height * width * 3 bytes per image, so a side of 2048 already costs 12 MiB an image.
MAX_IMAGE_SIDE = 2048

WEIGHTS_IMAGENET = "imagenet"
WEIGHTS_NONE = "none"
WEIGHTS_KEYWORDS = (WEIGHTS_IMAGENET, WEIGHTS_NONE)

# Seed of the random train/validation split made by --validation-split. It is fixed, not taken
# from --seed, so runs with different seeds are compared on the same validation images.
SPLIT_SEED = 20240601

_SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to training images only; zero or False turns one off.

    Factors follow the Keras preprocessing layers: rotation is a fraction of a full turn, shift
    and zoom are fractions of the image side, shear is the shear intensity, brightness and
    contrast are the maximum relative change.
    """

    rotation: float = 0.0
    shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0

    @property
    def enabled(self) -> bool:
        return any(bool(value) for value in asdict(self).values())


@dataclass(frozen=True)
class UnfreezeSpec:
    """Part of the base that becomes trainable in the fine-tune stage.

    Exactly one field is set: `fraction` is the top fraction of the base's layers, and `layer`
    names the first trainable layer, after which every layer trains too.
    """

    fraction: float | None = None
    layer: str | None = None

    def __str__(self) -> str:
        return str(self.fraction) if self.fraction is not None else str(self.layer)


@dataclass(frozen=True)
class TrainConfig:
    """Every option of one training run.

    Args:
        data_dir: Dataset folder: `train/`, `validation/` and optional `test/` with one folder
            per class, or class folders directly when `validation_split` is set.
        validation_split: Fraction of each class held out for validation when the dataset has
            no `validation/` folder. Defaults to None.
        backbone: Name of the Keras application used as the frozen base. Defaults to xception.
        weights: `imagenet`, `none` or the path of a no-top `.weights.h5` file.
        image_size: (height, width); None means the backbone's native size.
        inner_size: Units of the dense layer between pooling and the classifier; 0 leaves it out.
        dropout: Dropout rate before the classifier; 0 leaves the layer out.
        early_stopping: Epochs without a better validation accuracy before a stage stops;
            None trains every epoch.
        use_cache: Train the head on cached base features when the base is frozen and
            augmentation is off.
    """

    data_dir: Path
    validation_split: float | None = None
    backbone: str = "xception"
    weights: str = WEIGHTS_IMAGENET
    image_size: tuple[int, int] | None = None
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    inner_size: int = 0
    dropout: float = 0.0
    label_smoothing: float = 0.0
    early_stopping: int | None = None
    seed: int | None = None
    augmentation: Augmentation = field(default_factory=Augmentation)
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    unfreeze: UnfreezeSpec = field(default_factory=lambda: UnfreezeSpec(fraction=0.2))
    use_cache: bool = True
    model_name: str = DEFAULT_MODEL_NAME
    register_interrupted: bool = False
    show_progress: bool = True

    def __post_init__(self) -> None:
        # `--weights NONE` and `ImageNet` mean the keywords; a file of that name needs a path
        # such as ./none.
        keyword = self.weights.strip().lower()
        if keyword in WEIGHTS_KEYWORDS and keyword != self.weights:
            object.__setattr__(self, "weights", keyword)

    @property
    def resolved_image_size(self) -> tuple[int, int]:
        return self.image_size or NATIVE_IMAGE_SIZES[self.backbone]

    @property
    def weights_file(self) -> Path | None:
        if self.weights in WEIGHTS_KEYWORDS:
            return None
        return Path(self.weights).expanduser()

    @property
    def trains_on_cached_features(self) -> bool:
        """True when the head stage can run on precomputed base features."""
        return self.use_cache and not self.augmentation.enabled

    def with_hyperparameters(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)

    def hyperparameters(self) -> dict[str, Any]:
        """Return every option as JSON-ready values, for the registry."""
        values = asdict(self)
        values["data_dir"] = str(Path(self.data_dir).resolve())
        if self.weights_file is not None:
            values["weights"] = str(self.weights_file.resolve())
        values["image_size"] = list(self.resolved_image_size)
        values["unfreeze"] = str(self.unfreeze)
        for name in ("show_progress", "register_interrupted"):
            values.pop(name)
        return values


def parse_image_size(text: str) -> tuple[int, int]:
    """Parse `N` or `HxW` into (height, width).

    Raises:
        ConfigError: The text is not one or two positive integers.
    """
    match = _SIZE_PATTERN.match(text)
    if not match:
        raise ConfigError(f"invalid image size {text!r}: expected N or HxW, such as 224 or 160x200")
    height = int(match.group(1))
    width = int(match.group(2) or match.group(1))
    return height, width


def parse_unfreeze(text: str) -> UnfreezeSpec:
    """Parse --unfreeze: a fraction in (0, 1] of the base's layers, or a layer name."""
    try:
        fraction = float(text)
    except ValueError:
        if not text.strip():
            raise ConfigError("invalid --unfreeze '': pass a fraction such as 0.2 or a layer name")
        return UnfreezeSpec(layer=text.strip())
    if not 0 < fraction <= 1:
        raise ConfigError(
            f"invalid --unfreeze {text!r}: a fraction must be in (0, 1], such as 0.2 for the top "
            "fifth of the base's layers"
        )
    return UnfreezeSpec(fraction=fraction)


def validate_config(config: TrainConfig) -> None:
    """Check the options that need no TensorFlow: names, ranges, sizes and the weights file.

    Raises:
        ConfigError: An option is out of range or contradicts another.
        WeightsError: The weights file does not exist or has the wrong suffix.
    """
    if config.backbone not in NATIVE_IMAGE_SIZES:
        known = ", ".join(sorted(NATIVE_IMAGE_SIZES))
        raise ConfigError(f"unknown backbone {config.backbone!r}: choose one of {known}")

    height, width = config.resolved_image_size
    minimum = MIN_IMAGE_SIDES[config.backbone]
    if min(height, width) < minimum:
        raise ConfigError(
            f"image size {height}x{width} is too small for {config.backbone}: each side must be "
            f"at least {minimum} pixels"
        )
    if max(height, width) > MAX_IMAGE_SIDE:
        raise ConfigError(
            f"image size {height}x{width} is too large: each side must be at most "
            f"{MAX_IMAGE_SIDE} pixels; {config.backbone} was pretrained at "
            f"{NATIVE_IMAGE_SIZES[config.backbone][0]}, so pass --image-size "
            f"{NATIVE_IMAGE_SIZES[config.backbone][0]} or leave it out"
        )

    _check_range("--epochs", config.epochs, 1, None)
    _check_range("--batch-size", config.batch_size, 1, None)
    _check_range("--inner-size", config.inner_size, 0, None)
    _check_range("--fine-tune-epochs", config.fine_tune_epochs, 0, None)
    if not 0 <= config.dropout < 1:
        raise ConfigError(f"invalid --dropout {config.dropout}: use a rate in [0, 1)")
    if not 0 <= config.label_smoothing < 1:
        raise ConfigError(f"invalid --label-smoothing {config.label_smoothing}: use a value in [0, 1)")
    for name, rate in (("--learning-rate", config.learning_rate),
                       ("--fine-tune-learning-rate", config.fine_tune_learning_rate)):
        if not rate > 0:
            raise ConfigError(f"invalid {name} {rate}: use a positive number such as 0.001")
    if config.early_stopping is not None:
        _check_range("--early-stopping", config.early_stopping, 1, None)
    if config.validation_split is not None and not 0 < config.validation_split < 1:
        raise ConfigError(
            f"invalid --validation-split {config.validation_split}: use a fraction such as 0.2"
        )
    if config.fine_tune_epochs and config.weights == WEIGHTS_NONE:
        raise ConfigError(
            "--fine-tune-epochs needs a pretrained base: pass --weights imagenet or a weights file"
        )

    check_weights_file(config)


def check_weights_file(config: TrainConfig) -> None:
    """Check that a local weights file exists and is a Keras 3 `.weights.h5` file."""
    path = config.weights_file
    if path is None:
        return
    if path.is_dir():
        raise WeightsError(
            f"weights file {str(path)!r} is a folder, not a .weights.h5 file: pass the path of a "
            "no-top .weights.h5 file, `imagenet` or `none` to --weights"
        )
    if not path.is_file():
        raise WeightsError(
            f"weights file {str(path)!r} not found: pass an existing no-top .weights.h5 file, "
            "`imagenet` or `none` to --weights"
        )
    if not path.name.endswith(".weights.h5"):
        raise WeightsError(
            f"weights file {str(path)!r} is not a Keras .weights.h5 file: save the base without "
            "its top with `model.save_weights('base.weights.h5')`"
        )


def _check_range(option: str, value: int, minimum: int, maximum: int | None) -> None:
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"invalid {option} {value}: use an integer of at least {minimum}")
