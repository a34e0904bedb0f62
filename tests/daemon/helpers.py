"""Builders shared by the daemon tests: the color model, image files and a service on a thread.

The model is Input(32, 32, 3) -> Rescaling(1/255) -> GlobalAveragePooling2D -> Dense(3) with an
identity kernel times 10, so its logits are the mean red, green and blue values: a red image is
classified "red" with high confidence and a grey one is split evenly between the three classes.
"""

from __future__ import annotations

import io
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from daemon.config import WatchSettings, validate
from daemon.pipeline import BatchOutcome
from daemon.service import RunSummary, WatchService
from registry import NewVersion, Registry
from registry.types import DEFAULT_MODEL_NAME, PRODUCTION, ModelVersion
from vision.images import PREPROCESSING_ID

COLOR_CLASSES = ("red", "green", "blue")
COLORS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
JOIN_TIMEOUT = 60


def save_color_model(path: Path, class_names=COLOR_CLASSES, scale: float = 10.0) -> Path:
    """Build and save the color model; `scale` changes its confidence (and its file's sha256)."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(class_names))(x)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, len(class_names)), dtype="float32")
    for index in range(min(3, len(class_names))):
        kernel[index, index] = scale
    model.layers[-1].set_weights([kernel, np.zeros(len(class_names), dtype="float32")])
    model.save(path)
    return path


def register_model(
    registry: Registry,
    artifact: Path,
    class_names=COLOR_CLASSES,
    *,
    promote: bool = True,
    preprocessing: str = PREPROCESSING_ID,
    model_name: str = DEFAULT_MODEL_NAME,
) -> ModelVersion:
    version = registry.register_version(
        NewVersion(
            model_name=model_name,
            artifact_path=str(artifact),
            class_names=tuple(class_names),
            backbone="none",
            image_size=(32, 32),
            preprocessing=preprocessing,
        )
    )
    if promote:
        registry.set_alias(model_name, PRODUCTION, version.version)
    return version


def image_bytes(color: str | tuple[int, int, int] = "red", *, seed: int | None = None,
                image_format: str = "JPEG") -> bytes:
    """Encode a 40x40 image of one color; a seed adds faint noise so each file's bytes differ."""
    rgb = COLORS[color] if isinstance(color, str) else color
    pixels = np.zeros((40, 40, 3), dtype=np.int16) + np.array(rgb, dtype=np.int16)
    if seed is not None:
        pixels = pixels + np.random.default_rng(seed).integers(-8, 9, size=pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def write_image(path: Path, color: str | tuple[int, int, int] = "red", *, seed: int | None = None,
                image_format: str = "JPEG") -> Path:
    path.write_bytes(image_bytes(color, seed=seed, image_format=image_format))
    return path


@dataclass
class RunningService:
    """A WatchService running on a background thread, with its progress queue."""

    service: WatchService
    thread: threading.Thread
    progress: queue.Queue
    result: dict

    def next_batch(self, timeout: float = 30) -> BatchOutcome:
        return self.progress.get(timeout=timeout)

    def wait_for_files(self, count: int, timeout: float = 60) -> list[BatchOutcome]:
        """Wait until batches covering `count` rows have been reported."""
        outcomes = []
        seen = 0
        while seen < count:
            outcome = self.progress.get(timeout=timeout)
            outcomes.append(outcome)
            seen += len(outcome.rows)
        return outcomes

    def stop(self) -> RunSummary:
        self.service.stop()
        self.thread.join(JOIN_TIMEOUT)
        assert not self.thread.is_alive(), "the watch service did not stop"
        if "error" in self.result:
            raise self.result["error"]
        return self.result["summary"]


def make_settings(inbox: Path, output: Path, **overrides) -> WatchSettings:
    values = dict(settle_ms=100, max_wait_ms=100, model_poll_seconds=0.2, heartbeat_seconds=0.5)
    values.update(overrides)
    return validate(WatchSettings(inbox=inbox, output=output, **values))


def start_service(registry: Registry, settings: WatchSettings) -> RunningService:
    progress: queue.Queue = queue.Queue()
    service = WatchService(settings, registry, progress=progress)
    result: dict = {}

    def target():
        try:
            result["summary"] = service.run()
        except BaseException as error:  # handed to the test thread by RunningService.stop()
            result["error"] = error

    thread = threading.Thread(target=target, name="watch-service")
    thread.start()
    running = RunningService(service, thread, progress, result)
    if not service.started.wait(JOIN_TIMEOUT):
        running.stop()
        raise AssertionError("the watch service did not start")
    return running


def run_once(registry: Registry, inbox: Path, output: Path, **overrides) -> RunSummary:
    """Run the service with `once` on the calling thread until the inbox is done."""
    return WatchService(make_settings(inbox, output, once=True, **overrides), registry).run()


def output_files(output: Path) -> list[Path]:
    """Every file in the output folder, without the daemon's lock file."""
    return sorted(path for path in output.rglob("*") if path.is_file() and path.name != ".sortbox.lock")


def wait_until(condition, timeout: float = 30.0) -> None:
    """Check `condition` every 50 ms until it is true; fail after `timeout` seconds."""
    waiter = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        waiter.wait(0.05)
    raise AssertionError("condition not met in time")
