"""Decode benchmark: sortbox's image loader against Keras's `load_img` + `img_to_array`.

Run from the repository root:

    .venv/bin/python -m bench.bench_decode            # every validation photo, 150/224/299 px
    .venv/bin/python -m bench.bench_decode --smoke    # a few photos, for CI

It decodes the validation photos of the shared clothing dataset (found through tools/shared.py)
one at a time on one thread with each loader, takes the best of `--repeat` passes, and prints a
markdown table of milliseconds per image. It also times `load_images` with its thread pool, and
JPEGs upscaled to 4032x3024 (a 12-megapixel phone photo), where JPEG DCT scaling matters most.
With `--inference` it also times one batch of 32 images at 150 px through a MobileNetV2
classifier, comparing the compiled function of `vision.inference` with `predict_on_batch`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tools import shared
from vision.images import PREPROCESSING_ID, load_image, load_images

SIZES = (150, 224, 299)
SMOKE_IMAGES = 8
LARGE_SIZE = (4032, 3024)
INFERENCE_BATCH = 32
INFERENCE_PIXELS = 150


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=f"use {SMOKE_IMAGES} photos and one pass")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many photos")
    parser.add_argument(
        "--repeat", type=int, default=3, help="passes per loader; the best counts (default 3)"
    )
    parser.add_argument(
        "--large", type=int, default=8,
        help="photos upscaled to 4032x3024 to time (default 8, 0 skips them)",
    )
    parser.add_argument(
        "--inference", action="store_true", help="also time one MobileNetV2 batch of 32"
    )
    return parser.parse_args(argv)


def sortbox_loader(size: int) -> Callable[[Sequence[Path]], object]:
    def load_each(paths: Sequence[Path]) -> None:
        for path in paths:
            load_image(path, (size, size))

    return load_each


def sortbox_batch_loader(size: int) -> Callable[[Sequence[Path]], object]:
    def load_all(paths: Sequence[Path]) -> None:
        load_images(paths, (size, size))

    return load_all


def keras_loader(size: int, interpolation: str) -> Callable[[Sequence[Path]], object]:
    from keras.utils import img_to_array, load_img

    def load_each(paths: Sequence[Path]) -> None:
        for path in paths:
            img_to_array(load_img(path, target_size=(size, size), interpolation=interpolation))

    return load_each


def best_ms_per_image(
    loaders: dict[str, Callable[[Sequence[Path]], object]], paths: Sequence[Path], repeat: int
) -> dict[str, float]:
    """Time each loader over all paths, `repeat` times; return each one's best pass in ms per image.

    The loaders take turns within every pass, so load from other processes on the machine
    spreads over all of them instead of landing on one.
    """
    for load in loaders.values():
        # One untimed call pays for plugin registration and imports.
        load(paths[:1])

    best = {name: float("inf") for name in loaders}
    for _ in range(repeat):
        for name, load in loaders.items():
            start = time.perf_counter()
            load(paths)
            elapsed = (time.perf_counter() - start) * 1000 / len(paths)
            best[name] = min(best[name], elapsed)
    return best


def warm_file_cache(paths: Sequence[Path]) -> None:
    # Read every file once so that the first loader timed does not pay for disk reads alone.
    for path in paths:
        path.read_bytes()


def decode_rows(paths: Sequence[Path], sizes: Sequence[int], repeat: int) -> list[str]:
    rows = []
    for size in sizes:
        best = best_ms_per_image(
            {
                "sortbox": sortbox_loader(size),
                "batch": sortbox_batch_loader(size),
                "nearest": keras_loader(size, "nearest"),
                "bilinear": keras_loader(size, "bilinear"),
            },
            paths,
            repeat,
        )
        rows.append(
            f"| {size}x{size} | {best['sortbox']:.2f} | {best['batch']:.2f} "
            f"| {best['nearest']:.2f} ({best['nearest'] / best['sortbox']:.2f}x) "
            f"| {best['bilinear']:.2f} ({best['bilinear'] / best['sortbox']:.2f}x) |"
        )
    return rows


def print_decode_header() -> None:
    print(
        "| target | sortbox load_image | sortbox load_images (thread pool) "
        "| keras load_img, nearest (ratio) | keras load_img, bilinear (ratio) |"
    )
    print("| --- | --- | --- | --- | --- |")


def make_large_photos(paths: Sequence[Path], folder: Path) -> list[Path]:
    large = []
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            target = folder / f"large{index}.jpg"
            image.convert("RGB").resize(LARGE_SIZE, Image.Resampling.BICUBIC).save(target, quality=90)
        large.append(target)
    return large


def inference_rows(paths: Sequence[Path], repeat: int) -> list[str]:
    import keras

    from vision.inference import load_model, predict_batch

    size = (INFERENCE_PIXELS, INFERENCE_PIXELS)
    inputs = keras.Input((*size, 3))
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    base = keras.applications.MobileNetV2(
        include_top=False, weights=str(shared.mobilenet_v2_weights()), input_shape=(*size, 3)
    )
    base.trainable = False
    pooled = keras.layers.GlobalAveragePooling2D()(base(scaled, training=False))
    model = keras.Model(inputs, keras.layers.Dense(10)(pooled))

    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "mobilenet.keras"
        model.save(model_path)
        loaded = load_model(model_path)

    chosen = (list(paths) * INFERENCE_BATCH)[:INFERENCE_BATCH]
    images, _ = load_images(chosen, size)
    class_names = [f"class{index}" for index in range(10)]
    floats = images.astype(np.float32)

    timings = {
        "vision.inference (tf.function, uint8 in)": lambda: predict_batch(loaded, images, class_names),
        "model.predict_on_batch": lambda: loaded.keras_model.predict_on_batch(floats),
        "model(x, training=False), eager": lambda: loaded.keras_model(floats, training=False),
    }
    for call in timings.values():
        call()

    runs: dict[str, list[float]] = {name: [] for name in timings}
    for _ in range(max(repeat * 3, 10)):
        for name, call in timings.items():
            start = time.perf_counter()
            call()
            runs[name].append((time.perf_counter() - start) * 1000)
    return [
        f"| {name} | {min(times):.1f} | {statistics.median(times):.1f} |"
        for name, times in runs.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    validation = shared.clothing_dataset() / "validation"
    if not validation.is_dir():
        print(
            f"error: validation photos not found at {validation}; set {shared.SHARED_ENV} to the "
            "folder that contains datasets/",
            file=sys.stderr,
        )
        return 1

    paths = sorted(validation.glob("*/*.jpg"))
    limit = SMOKE_IMAGES if arguments.smoke else arguments.limit
    if limit is not None:
        paths = paths[:limit]
    repeat = 1 if arguments.smoke else arguments.repeat
    large_count = min(arguments.large, 2) if arguments.smoke else arguments.large
    warm_file_cache(paths)

    print(f"sortbox {PREPROCESSING_ID} against keras.utils.load_img + img_to_array")
    print(
        f"{len(paths)} validation photos, ms per image, best of {repeat} passes; "
        "ratio = keras / sortbox; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print()
    print_decode_header()
    for row in decode_rows(paths, SIZES, repeat):
        print(row, flush=True)

    if large_count > 0:
        with tempfile.TemporaryDirectory() as folder:
            large = make_large_photos(paths[:large_count], Path(folder))
            warm_file_cache(large)
            print()
            print(f"{len(large)} photos upscaled to {LARGE_SIZE[0]}x{LARGE_SIZE[1]} JPEG (quality 90)")
            print()
            print_decode_header()
            for row in decode_rows(large, (224,), repeat):
                print(row, flush=True)

    if arguments.inference:
        print()
        print(
            f"One batch of {INFERENCE_BATCH} images at {INFERENCE_PIXELS}x{INFERENCE_PIXELS}, "
            "MobileNetV2 + Dense(10)"
        )
        print()
        print("| call | best ms/batch | median ms/batch |")
        print("| --- | --- | --- |")
        for row in inference_rows(paths, repeat):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
