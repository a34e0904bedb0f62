"""Helpers shared by the inference, daemon and memory benchmarks.

Every figure these benchmarks print is a ratio of two measurements taken in the same process and
the same run, because the CPU may be shared with other work. Timed calls are interleaved in
rounds and each keeps its best round, so a burst of load from another process lowers one round
of every candidate instead of one candidate only.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools import shared

CLASS_COUNT = 10
PEAK_MATRIX_SIZE = 4096
SMOKE_PEAK_MATRIX_SIZE = 512


@dataclass(frozen=True)
class ModelSpec:
    """A classic transfer model: a keras.applications base, GlobalAveragePooling2D, Dense(10)."""

    name: str
    backbone: str
    size: int
    # "none" for random weights (speed does not depend on weight values), else the weights file.
    weights: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.size}x{self.size}"


def xception(size: int) -> ModelSpec:
    return ModelSpec("Xception", "Xception", size, "none")


def mobilenet_v2(size: int) -> ModelSpec:
    return ModelSpec("MobileNetV2", "MobileNetV2", size, str(shared.mobilenet_v2_weights()))


def build_classic_model(spec: ModelSpec) -> Any:
    """Build Input -> Rescaling to [-1, 1] -> frozen base -> GlobalAveragePooling2D -> Dense(10)."""
    import keras

    shape = (spec.size, spec.size, 3)
    base_class = getattr(keras.applications, spec.backbone)
    weights = None if spec.weights == "none" else spec.weights
    base = base_class(include_top=False, weights=weights, input_shape=shape)
    base.trainable = False

    inputs = keras.Input(shape)
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(base(scaled, training=False))
    outputs = keras.layers.Dense(CLASS_COUNT)(pooled)
    return keras.Model(inputs, outputs, name=f"{spec.backbone.lower()}_{spec.size}")


def profiled_flops(keras_model: Any, size: int) -> int:
    """Count floating-point operations per image with TensorFlow's profiler.

    The model is traced for a batch of one, its variables are folded into constants and its
    function calls inlined, so every convolution in the profiled graph has a known shape.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2_as_graph,
    )

    function = tf.function(lambda images: keras_model(images, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((1, size, size, 3), tf.float32))
    _, graph_def = convert_variables_to_constants_v2_as_graph(concrete)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    # The v1 profiler logs a deprecation warning about its own internals on every call.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)
    finally:
        tf_logger.setLevel(level)


def counted_flops(keras_model: Any) -> int:
    """Count 2 x multiply-adds of the convolution and dense layers, walking nested models.

    This is the cross-check of `profiled_flops`: it leaves out batch normalization, activations
    and additions, which the profiler counts, so it comes out a little lower.
    """
    import keras

    total = 0
    for layer in _leaf_layers(keras_model):
        if isinstance(layer, keras.layers.Dense):
            total += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
            continue
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)):
            continue
        _, height, width, channels_out = layer.output.shape
        positions = int(height) * int(width)
        if isinstance(layer, keras.layers.SeparableConv2D):
            depthwise, pointwise = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
            total += 2 * positions * int(np.prod(depthwise))
            total += 2 * positions * int(pointwise[2]) * int(pointwise[3])
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            total += 2 * positions * int(np.prod(layer.kernel.shape))
        else:
            total += 2 * positions * int(np.prod(layer.kernel.shape[:3])) * int(channels_out)
    return total


def _leaf_layers(model: Any):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


@dataclass
class Candidate:
    """A timed call: `work` units (images or FLOPs) per call, with its best rates so far.

    `best` is work per wall-clock second. `best_cpu` is work per CPU second of this process times
    the number of cores: the rate the process would reach with every core to itself, which other
    processes on a shared machine disturb far less than the wall-clock rate. It ignores time
    spent waiting (timers, disk), so it can only be higher than what an idle machine would give
    where the call waits, and lower where threads spin while they wait for each other.

    A `self_timed` call returns its measured (wall seconds, CPU seconds), which keeps set-up such as
    starting a daemon out of the figure. Other calls are timed whole. A candidate with
    `warm_up` False skips the untimed first call.
    """

    name: str
    call: Callable[[], object]
    work: float
    self_timed: bool = False
    warm_up: bool = True
    best: float = 0.0
    best_cpu: float = 0.0

    def time_once(self) -> float:
        started, cpu_started = time.perf_counter(), time.process_time()
        returned = self.call()
        if self.self_timed:
            seconds, cpu_seconds = returned
        else:
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        rate = self.work / seconds
        self.best = max(self.best, rate)
        self.best_cpu = max(self.best_cpu, self.work * (os.cpu_count() or 1) / cpu_seconds)
        return rate


def run_rounds(candidates: Sequence[Candidate], rounds: int, *, warm_up: bool = True) -> None:
    """Call every candidate once per round, in turn, keeping each one's best rate."""
    if warm_up:
        for candidate in candidates:
            if candidate.warm_up:
                candidate.call()
    for _ in range(rounds):
        for candidate in candidates:
            candidate.time_once()


def peak_candidates(size: int) -> list[Candidate]:
    """Matrix products of two size x size float32 matrices with NumPy and with TensorFlow."""
    import tensorflow as tf

    generator = np.random.default_rng(0)
    left = generator.random((size, size), dtype=np.float32)
    right = generator.random((size, size), dtype=np.float32)
    flops = 2.0 * size**3

    tf_left, tf_right = tf.constant(left), tf.constant(right)
    product = tf.function(lambda: tf.matmul(tf_left, tf_right))
    return [
        Candidate("numpy matmul", lambda: left @ right, flops),
        Candidate("tensorflow matmul", lambda: product().numpy(), flops),
    ]


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment_line() -> str:
    """Describe the machine and software: CPU, cores, load, Python, TensorFlow, OpenVINO."""
    import tensorflow as tf

    from vision.runtimes import RuntimeNotInstalled, import_openvino

    try:
        openvino_version = import_openvino().__version__.split("-")[0]
    except RuntimeNotInstalled:
        openvino_version = "not installed"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, load average {load}; Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, OpenVINO {openvino_version}"
    )


def validation_photos(limit: int | None = None) -> list[Path]:
    """Return the shared validation photos in a fixed order, or raise FileNotFoundError."""
    folder = shared.clothing_dataset() / "validation"
    photos = sorted(folder.glob("*/*.jpg"))
    if not photos:
        raise FileNotFoundError(
            f"validation photos not found at {folder}; set {shared.SHARED_ENV} to the folder "
            "that contains datasets/"
        )
    return photos[:limit] if limit is not None else photos


def stage_unique_copies(photos: Sequence[Path], count: int, folder: Path, suffix: str = "") -> list[Path]:
    """Copy `count` photos into `folder`, cycling through them, each with distinct bytes.

    The daemon recognizes content it classified before by sha256 and skips the model for it, so
    each copy gets its index appended after the JPEG end marker, which decoders ignore.

    Args:
        suffix: Appended to each name; ".part" makes the daemon ignore the file until it is
            renamed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    for index in range(count):
        source = photos[index % len(photos)]
        target = folder / f"{index:06d}-{source.name}{suffix}"
        with open(source, "rb") as reader, open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer)
            writer.write(f"sortbox-bench-{index}".encode())
        staged.append(target)
    return staged


def format_rate(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"
