"""Benchmark: frozen-base training the classic way against the feature cache.

Run from the repository root:

    .venv/bin/python -m bench.bench_training            # clothing dataset, MobileNetV2, 224 px
    .venv/bin/python -m bench.bench_training --smoke    # tiny generated dataset, 32 px, seconds

The classic way pushes every image through the frozen base in every epoch. The cache pushes
them through once and trains the head on the stored pooled features. One run measures both
sides on the same decoded pixels and prints a markdown table with the ratios:

- one epoch: classic (base recomputed) against a head epoch on cached features;
- a 4-learning-rate x 10-epoch sweep on cached features (extraction included) against only
  2 epochs without the cache.

Decoding is timed apart because both sides pay it once per run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SWEEP_LEARNING_RATES = (1e-4, 1e-3, 1e-2, 1e-1)
SWEEP_EPOCHS = 10
CLASSIC_EPOCHS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="Tiny generated dataset at 32x32 pixels with random base weights.")
    parser.add_argument("--image-size", type=int, default=224,
                        help="Square input size in pixels for the full run. Defaults to 224.")
    parser.add_argument("--batch-size", type=int, default=32, help="Batch size. Defaults to 32.")
    return parser.parse_args(argv)


def smoke_inputs(folder: Path):
    """Write a tiny dataset and a seeded random MobileNetV2 weights file into `folder`."""
    import keras

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.trainer.conftest import make_dataset

    data = make_dataset(folder / "data", splits={"train": 16, "validation": 4})
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    weights = folder / "mobilenet_v2_random.weights.h5"
    base.save_weights(weights)
    return data, weights, (32, 32)


def shared_inputs(image_size: int):
    from tools import shared

    missing = shared.missing_assets()
    if missing:
        raise SystemExit(
            f"shared assets not found: {', '.join(map(str, missing))}; set {shared.SHARED_ENV} "
            "or run with --smoke"
        )
    return shared.clothing_dataset(), shared.mobilenet_v2_weights(), (image_size, image_size)


def epoch_timer():
    """Return a Keras callback that stores each epoch's wall-clock seconds in `.seconds`."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


def run(data: Path, weights: Path, size: tuple[int, int], batch_size: int) -> list[tuple[str, float]]:
    import keras

    from trainer.config import TrainConfig
    from trainer.dataset import TRAIN, VALIDATION, scan_dataset
    from trainer.features import extract_features
    from trainer.fit import one_hot
    from trainer.model import build_base, build_extractor, build_full_model, build_head, compile_model
    from trainer.pixels import decode_records

    config = TrainConfig(data, backbone="mobilenet_v2", weights=str(weights), image_size=size,
                         batch_size=batch_size)
    scan = scan_dataset(data)
    class_count = len(scan.class_names)
    rows: list[tuple[str, float]] = []

    started = time.perf_counter()
    train = decode_records(scan.splits[TRAIN], size)
    validation = decode_records(scan.splits[VALIDATION], size)
    rows.append((f"decode {len(train.labels) + len(validation.labels)} images at "
                 f"{size[0]}x{size[1]} (both sides, once)", time.perf_counter() - started))
    train_targets = one_hot(train.labels, class_count)
    validation_targets = one_hot(validation.labels, class_count)

    # Classic: the frozen base runs on every image in every epoch.
    keras.utils.set_random_seed(0)
    base = build_base(config)
    full = build_full_model(base, config, class_count, augment=False)
    compile_model(full, 1e-3, 0.0)
    timer = epoch_timer()
    full.fit(train.pixels, train_targets, validation_data=(validation.pixels, validation_targets),
             epochs=CLASSIC_EPOCHS, batch_size=batch_size, callbacks=[timer], verbose=0)
    rows.append(("classic: epoch 1 (includes tracing)", timer.seconds[0]))
    rows.append(("classic: epoch 2, frozen base recomputed", timer.seconds[1]))
    rows.append((f"classic: {CLASSIC_EPOCHS} epochs", sum(timer.seconds)))

    # Cache: the base runs once per image; heads train on the pooled features.
    started = time.perf_counter()
    extractor = build_extractor(base, config)
    train_features = extract_features(extractor, train.pixels, batch_size)
    validation_features = extract_features(extractor, validation.pixels, batch_size)
    extraction = time.perf_counter() - started
    rows.append(("cache: extract features once", extraction))

    sweep_seconds = 0.0
    head_epoch = None
    for learning_rate in SWEEP_LEARNING_RATES:
        head = build_head(train_features.shape[1], config, class_count)
        compile_model(head, learning_rate, 0.0)
        timer = epoch_timer()
        started = time.perf_counter()
        head.fit(train_features, train_targets,
                 validation_data=(validation_features, validation_targets),
                 epochs=SWEEP_EPOCHS, batch_size=batch_size, callbacks=[timer], verbose=0)
        sweep_seconds += time.perf_counter() - started
        if head_epoch is None:
            head_epoch = float(np.median(timer.seconds[1:]))
    rows.append(("cache: one head epoch on cached features (median)", head_epoch))
    rows.append((f"cache: sweep {len(SWEEP_LEARNING_RATES)} learning rates x {SWEEP_EPOCHS} "
                 "epochs, training only", sweep_seconds))
    rows.append((f"cache: same sweep including the extraction", sweep_seconds + extraction))
    return rows


def format_table(rows: list[tuple[str, float]]) -> str:
    values = dict(rows)
    classic_epoch = values["classic: epoch 2, frozen base recomputed"]
    head_epoch = values["cache: one head epoch on cached features (median)"]
    classic_two = values[f"classic: {CLASSIC_EPOCHS} epochs"]
    sweep_total = rows[-1][1]
    lines = ["| measurement | seconds |", "| --- | ---: |"]
    lines.extend(f"| {name} | {seconds:.2f} |" for name, seconds in rows)
    lines.append("")
    lines.append("| ratio | value |")
    lines.append("| --- | ---: |")
    lines.append(f"| classic epoch / cached head epoch | {classic_epoch / head_epoch:.0f}x |")
    lines.append(
        f"| classic {CLASSIC_EPOCHS} epochs / cached {len(SWEEP_LEARNING_RATES) * SWEEP_EPOCHS} "
        f"epochs (extraction included) | {classic_two / sweep_total:.2f}x |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        if args.smoke:
            data, weights, size = smoke_inputs(Path(folder))
        else:
            data, weights, size = shared_inputs(args.image_size)
        rows = run(data, weights, size, args.batch_size)
    print(f"CPU cores: {os.cpu_count()}, dataset: {'generated (smoke)' if args.smoke else data}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
