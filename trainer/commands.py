"""`sortbox train` and `sortbox train sweep`: parse options, call the trainer, print the result.

No TensorFlow import here: the options become a TrainConfig that is validated before the
library call loads anything heavy.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from registry.types import DEFAULT_MODEL_NAME
from trainer.config import (
    NATIVE_IMAGE_SIZES,
    Augmentation,
    TrainConfig,
    parse_image_size,
    parse_unfreeze,
)
from trainer.errors import ConfigError


class NumberList(click.ParamType):
    """A comma-separated list of numbers, each at least `minimum`, or above it when
    `minimum_open` is set; other ranges are checked per trial by the trainer."""

    name = "list"

    def __init__(self, kind: type, minimum: float, minimum_open: bool = False):
        self.kind = kind
        self.minimum = minimum
        self.minimum_open = minimum_open

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        items = [item.strip() for item in str(value).split(",")]
        if not any(items):
            self.fail(f"{value!r} is empty: pass one or more comma-separated numbers", param, ctx)
        if not all(items):
            self.fail(
                f"{value!r} has an empty item: separate the numbers with single commas", param, ctx
            )
        numbers = []
        for item in items:
            try:
                number = self.kind(item)
            except ValueError:
                self.fail(f"{item!r} is not a valid {self.kind.__name__}", param, ctx)
            if number < self.minimum or (self.minimum_open and number == self.minimum):
                bound = "greater than" if self.minimum_open else "of at least"
                self.fail(f"{item} is out of range: use values {bound} {self.minimum:g}", param, ctx)
            numbers.append(number)

        # Repeated values would train the same trial twice.
        return tuple(dict.fromkeys(numbers))


@dataclass(frozen=True)
class Hyperparameter:
    """A tunable option: one value for `sortbox train`, a comma-separated list for a sweep."""

    option: str
    kind: type
    single_type: click.ParamType
    minimum: float
    default: str
    help: str
    minimum_open: bool = False


HYPERPARAMETERS = (
    Hyperparameter("--learning-rate", float, click.FloatRange(0, min_open=True), 0.0, "0.001",
                   "Adam learning rate of the head stage.", minimum_open=True),
    Hyperparameter("--inner-size", int, click.IntRange(min=0), 0, "0",
                   "Units of a dense ReLU layer before the classifier; 0 leaves it out."),
    Hyperparameter("--dropout", float, click.FloatRange(0, 1, max_open=True), 0.0, "0",
                   "Dropout rate before the classifier, in [0, 1); 0 leaves it out."),
)


def hyperparameter_options(as_lists: bool) -> list:
    """Return decorators for the tunable options: single values, or lists for a sweep."""
    decorators = []
    for spec in HYPERPARAMETERS:
        if as_lists:
            decorators.append(click.option(
                spec.option, type=NumberList(spec.kind, spec.minimum, spec.minimum_open),
                default=spec.default, show_default=True,
                help=f"{spec.help} A comma-separated list; every combination is one trial.",
            ))
        else:
            decorators.append(click.option(
                spec.option, type=spec.single_type, default=spec.kind(spec.default),
                show_default=True, help=spec.help,
            ))
    return decorators


COMMON_OPTIONS = [
    click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Dataset folder: train/, validation/ and optional test/ with one folder per "
                      "class, or class folders with --validation-split."),
    click.option("--validation-split", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 help="Fraction of each class held out for validation (fixed seed) when the "
                      "dataset has no validation/ folder."),
    click.option("--backbone", type=click.Choice(sorted(NATIVE_IMAGE_SIZES)), default="xception",
                 show_default=True, help="Pretrained base model from keras.applications."),
    click.option("--weights", default="imagenet", show_default=True,
                 help="Base weights: imagenet (downloaded by Keras), none (random), or the path "
                      "of a no-top .weights.h5 file."),
    click.option("--image-size", help="Input size N or HxW in pixels. Defaults to the backbone's "
                                      "native size (xception 299, others 224)."),
    click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
                 help="Epochs of the head stage."),
    click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                 help="Images per training batch."),
    click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0,
                 show_default=True, help="Label smoothing of the cross-entropy loss."),
    click.option("--early-stopping", type=click.IntRange(min=1),
                 help="Stop a stage after this many epochs without a better validation accuracy."),
    click.option("--seed", type=int, help="Random seed that makes a run repeatable."),
    click.option("--cache/--no-cache", "use_cache", default=True, show_default=True,
                 help="Train the head on cached base features when augmentation is off."),
    click.option("--name", "model_name", default=DEFAULT_MODEL_NAME, show_default=True,
                 help="Registered model name."),
    click.option("--quiet", is_flag=True, help="Print no per-epoch progress."),
]

TRAIN_ONLY_OPTIONS = [
    click.option("--rotation", type=click.FloatRange(0, 1), default=0.0,
                 help="Augment: random rotation, as a fraction of a full turn (0.05 = 18 degrees)."),
    click.option("--shift", type=click.FloatRange(0, 1), default=0.0,
                 help="Augment: random shift, as a fraction of width and height."),
    click.option("--shear", type=click.FloatRange(0, 1), default=0.0,
                 help="Augment: random shear intensity."),
    click.option("--zoom", type=click.FloatRange(0, 1), default=0.0,
                 help="Augment: random zoom, as a fraction of the image size."),
    click.option("--horizontal-flip", is_flag=True, help="Augment: random left-right flips."),
    click.option("--vertical-flip", is_flag=True, help="Augment: random upside-down flips."),
    click.option("--brightness", type=click.FloatRange(0, 1), default=0.0,
                 help="Augment: random brightness change, as a fraction of the value range."),
    click.option("--contrast", type=click.FloatRange(0, 1), default=0.0,
                 help="Augment: random contrast change factor."),
    click.option("--fine-tune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Epochs of a second stage that trains the top of the base; 0 skips it."),
    click.option("--fine-tune-learning-rate", type=click.FloatRange(0, min_open=True),
                 default=1e-5, show_default=True, help="Adam learning rate of the fine-tune stage."),
    click.option("--unfreeze", default="0.2", show_default=True,
                 help="Part of the base trained in the fine-tune stage: a fraction of its layers "
                      "from the top, or the name of the first layer to train."),
    click.option("--promote", is_flag=True,
                 help="Give the new version the production alias after registration. Not "
                      "applied to a version registered with --register-interrupted."),
    click.option("--register-interrupted", is_flag=True,
                 help="On Ctrl-C, register the best epoch so far with status interrupted."),
]


def apply_options(options):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def build_config(options: dict, **hyperparameters) -> TrainConfig:
    """Turn parsed options into a TrainConfig; validation happens in the trainer."""
    if options["data_dir"] is None:
        raise click.UsageError("Missing option '--data'.")
    image_size = options["image_size"]
    augmentation = Augmentation(**{
        name: options.get(name, Augmentation.__dataclass_fields__[name].default)
        for name in Augmentation.__dataclass_fields__
    })
    return TrainConfig(
        data_dir=options["data_dir"],
        validation_split=options["validation_split"],
        backbone=options["backbone"],
        weights=options["weights"],
        image_size=parse_image_size(image_size) if image_size else None,
        epochs=options["epochs"],
        batch_size=options["batch_size"],
        label_smoothing=options["label_smoothing"],
        early_stopping=options["early_stopping"],
        seed=options["seed"],
        augmentation=augmentation,
        fine_tune_epochs=options.get("fine_tune_epochs", 0),
        fine_tune_learning_rate=options.get("fine_tune_learning_rate", 1e-5),
        unfreeze=parse_unfreeze(options.get("unfreeze", "0.2")),
        use_cache=options["use_cache"],
        model_name=options["model_name"],
        register_interrupted=options.get("register_interrupted", False),
        show_progress=not options["quiet"],
        **hyperparameters,
    )


@click.group("train", invoke_without_command=True)
@apply_options(COMMON_OPTIONS + hyperparameter_options(as_lists=False) + TRAIN_ONLY_OPTIONS)
@click.pass_context
def train_group(ctx: click.Context, learning_rate, inner_size, dropout, **options):
    """Train a transfer-learning model on a folder-per-class dataset and register it.

    Example: sortbox train --data photos/ --backbone mobilenet_v2 --epochs 10
    """
    if ctx.invoked_subcommand is not None:
        _reject_group_options(ctx)
        return
    from trainer.report import format_train_outcome
    from trainer.run import train_and_register

    config = build_config(options, learning_rate=learning_rate, inner_size=inner_size,
                          dropout=dropout)
    registry = ctx.obj.open_registry()
    outcome = train_and_register(
        config,
        registry,
        check_model=ctx.obj.check_model,
        promote=options["promote"],
        progress=sys.stderr if config.show_progress else None,
    )
    click.echo("\n".join(format_train_outcome(outcome)))


def _reject_group_options(ctx: click.Context) -> None:
    """Reject options given before a subcommand name, which the subcommand would never see."""
    given = [
        param.opts[0]
        for param in ctx.command.params
        if ctx.get_parameter_source(param.name) not in (None, click.core.ParameterSource.DEFAULT)
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)} given before `{ctx.invoked_subcommand}`: put the options after "
            f"the subcommand, as in `sortbox train {ctx.invoked_subcommand} --data DIR`"
        )


@train_group.command("sweep")
@apply_options(COMMON_OPTIONS + hyperparameter_options(as_lists=True))
@click.pass_context
def sweep_command(ctx: click.Context, learning_rate, inner_size, dropout, **options):
    """Train one head per combination of the listed values on cached features.

    Every trial is registered; the one with the best validation accuracy gets the tag
    sweep_best=true.

    Example: sortbox train sweep --data photos/ --learning-rate 0.0001,0.001,0.01 --dropout 0,0.5
    """
    from trainer.report import format_sweep_outcome
    from trainer.sweep import run_sweep

    config = build_config(options)
    if not config.use_cache:
        raise ConfigError("sortbox train sweep always trains on cached features: drop --no-cache")
    registry = ctx.obj.open_registry()
    outcome = run_sweep(
        config,
        {"learning_rate": learning_rate, "inner_size": inner_size, "dropout": dropout},
        registry,
        progress=sys.stderr if config.show_progress else None,
    )
    click.echo("\n".join(format_sweep_outcome(outcome)))
