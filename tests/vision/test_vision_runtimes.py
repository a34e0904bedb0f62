"""Runtime choice of vision.inference: OpenVINO against TensorFlow, and the fallback between them."""

from __future__ import annotations

import builtins
import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from vision import runtimes
from vision.errors import ModelLoadError
from vision.images import load_images
from vision.inference import load_model, predict_batch

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

CLASS_NAMES = tuple(f"class{index}" for index in range(10))
MOBILENET_SIZE = 96

# Checked without importing OpenVINO, because a plain `import openvino` starts its telemetry.
needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="the openvino package is not installed"
)

# Runs in a fresh process, so no earlier import of OpenVINO in the test process hides a
# telemetry start. Prints what the load left behind as JSON.
TELEMETRY_PROBE = """
import json, sys, threading

before = set(threading.enumerate())
from vision.inference import load_model

model = load_model(sys.argv[1], runtime="openvino")
callers = ("openvino.tools.ovc.telemetry_utils", "openvino.tools.ovc.convert_impl", "openvino.tools.ovc.utils")
print(json.dumps({
    "runtime": model.runtime,
    "new_threads": [
        thread.name for thread in threading.enumerate() if thread not in before and not thread.daemon
    ],
    "openvino_telemetry": repr(sys.modules.get("openvino_telemetry")),
    "telemetry_modules": {name: sys.modules[name].tm.__name__ for name in callers},
}))
"""
# Variables with which openvino_telemetry turns itself off; the probe runs without them.
CI_VARIABLES = ("CI", "TF_BUILD", "JENKINS_URL")

# Exits while two daemon threads are inside OpenVINO calls. Without the wait at exit in
# vision.runtimes this aborted in about 3 of 4 runs.
EXIT_PROBE = """
import sys, threading

import numpy as np

from vision.inference import load_model, predict_batch

model = load_model(sys.argv[1], runtime="openvino")
images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
class_names = [f"class{index}" for index in range(10)]
started = [threading.Event() for _ in range(2)]

def predict_forever(started):
    while True:
        predict_batch(model, images, class_names)
        started.set()

for event in started:
    threading.Thread(target=predict_forever, args=(event,), daemon=True).start()
for event in started:
    assert event.wait(120), "no batch finished"
"""
EXIT_PROBE_RUNS = 2


def build_small_conv_model():
    """Input(32, 32, 3) -> Rescaling -> Conv2D -> GlobalAveragePooling2D -> Dense(10), seeded."""
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASS_NAMES))(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def conv_model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runtimes") / "conv.keras"
    build_small_conv_model().save(path)
    return path


@pytest.fixture(scope="module")
def openvino_and_tensorflow(conv_model_path):
    """The conv model loaded once with each runtime."""
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("the openvino package is not installed")
    return load_model(conv_model_path, runtime="openvino"), load_model(conv_model_path, runtime="tensorflow")


@pytest.fixture
def hide_openvino(monkeypatch):
    """Make `import openvino` fail as if the package were not installed."""
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "openvino", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)


def random_images(count: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(count).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_runtime_from_environment(monkeypatch):
    monkeypatch.setenv(runtimes.RUNTIME_ENV, " TensorFlow ")
    assert runtimes.requested_runtime(None) == "tensorflow"

    monkeypatch.delenv(runtimes.RUNTIME_ENV)
    assert runtimes.requested_runtime(None) == "auto"
    assert runtimes.requested_runtime("openvino") == "openvino"


def test_unknown_runtime_rejected(conv_model_path, monkeypatch):
    with pytest.raises(ValueError, match="'onnx' is not one of auto, openvino, tensorflow"):
        load_model(conv_model_path, runtime="onnx")

    monkeypatch.setenv(runtimes.RUNTIME_ENV, "tpu")
    with pytest.raises(ValueError, match=runtimes.RUNTIME_ENV):
        load_model(conv_model_path)


def test_runtimes_named_on_model(openvino_and_tensorflow):
    openvino, tensorflow = openvino_and_tensorflow

    assert openvino.runtime == "openvino"
    assert tensorflow.runtime == "tensorflow"
    assert len(predict_batch(tensorflow, random_images(3), CLASS_NAMES)) == 3
    assert len(predict_batch(openvino, random_images(3), CLASS_NAMES)) == 3


def test_auto_falls_back_without_openvino(conv_model_path, hide_openvino, caplog):
    caplog.set_level(logging.INFO, logger="vision.runtimes")

    model = load_model(conv_model_path, runtime="auto")

    assert model.runtime == "tensorflow"
    assert "serving with TensorFlow instead of OpenVINO" in caplog.text
    assert "not installed" in caplog.text


def test_openvino_required_but_missing(conv_model_path, hide_openvino):
    with pytest.raises(ModelLoadError, match="requested runtime: the openvino package is not installed"):
        load_model(conv_model_path, runtime="openvino")


@needs_openvino
def test_auto_falls_back_on_mismatch(conv_model_path, monkeypatch, caplog):
    # A negative tolerance makes any probe comparison a mismatch.
    monkeypatch.setattr(runtimes, "PROBE_TOLERANCE", -1.0)
    caplog.set_level(logging.WARNING, logger="vision.runtimes")

    model = load_model(conv_model_path, runtime="auto")

    assert model.runtime == "tensorflow"
    assert "OpenVINO output differs from TensorFlow" in caplog.text


@pytest.mark.parametrize("count", [1, 4, 7, 13])
def test_openvino_matches_tensorflow_any_batch(openvino_and_tensorflow, count):
    openvino, tensorflow = openvino_and_tensorflow
    images = random_images(count)

    from_openvino = openvino.predict_logits(images)
    from_tensorflow = tensorflow.predict_logits(images)

    assert from_openvino.shape == (count, len(CLASS_NAMES))
    np.testing.assert_allclose(from_openvino, from_tensorflow, rtol=0, atol=1e-4)


@needs_openvino
def test_auto_prefers_openvino(conv_model_path):
    assert load_model(conv_model_path, runtime="auto").runtime == "openvino"


@needs_openvino
@pytest.mark.slow
def test_openvino_load_sends_no_telemetry(conv_model_path, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    environment = {key: value for key, value in os.environ.items() if key not in CI_VARIABLES}
    environment["HOME"] = str(home)

    completed = subprocess.run(
        [sys.executable, "-c", TELEMETRY_PROBE, str(conv_model_path)],
        env=environment, capture_output=True, text=True, timeout=300, check=False,
    )

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["runtime"] == "openvino"
    assert report["new_threads"] == []
    assert report["openvino_telemetry"] == "None"
    # Each OpenVINO module that reports to telemetry must bind its `tm` name to the no-op stub.
    for caller, module in report["telemetry_modules"].items():
        assert module == "openvino.tools.ovc.telemetry_stub", caller
    # openvino_telemetry keeps its client id and counters in ~/intel.
    assert not (home / "intel").exists()


def test_openvino_concurrent_callers_take_turns(openvino_and_tensorflow):
    openvino, tensorflow = openvino_and_tensorflow
    images = random_images(13)
    expected = tensorflow.predict_logits(images)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda _: openvino.predict_logits(images), range(8)))

    for output in outputs:
        np.testing.assert_allclose(output, expected, rtol=0, atol=1e-4)


def test_exit_gate_warns_on_running_call(caplog):
    gate = runtimes._ExitGate()
    entered = threading.Event()
    release = threading.Event()

    def hold_call():
        with gate.call():
            entered.set()
            release.wait(30)

    worker = threading.Thread(target=hold_call)
    worker.start()
    assert entered.wait(30)
    caplog.set_level(logging.WARNING, logger="vision.runtimes")

    gate.close(0.01)
    release.set()
    worker.join(30)

    assert "1 OpenVINO calls still running" in caplog.text
    assert not worker.is_alive()


def test_exit_gate_closes_when_idle(caplog):
    gate = runtimes._ExitGate()
    with gate.call():
        pass
    caplog.set_level(logging.WARNING, logger="vision.runtimes")

    gate.close(30)

    assert caplog.text == ""


@needs_openvino
@pytest.mark.slow
def test_exit_during_openvino_call_clean(conv_model_path):
    for run in range(EXIT_PROBE_RUNS):
        completed = subprocess.run(
            [sys.executable, "-c", EXIT_PROBE, str(conv_model_path)],
            capture_output=True, text=True, timeout=300, check=False,
        )

        assert "Fatal Python error" not in completed.stderr, f"run {run}: {completed.stderr[-3000:]}"
        assert completed.returncode == 0, f"run {run}: {completed.stderr[-3000:]}"


@needs_openvino
@pytest.mark.shared
@pytest.mark.slow
def test_openvino_agrees_on_validation_set(clothing_dataset, mobilenet_weights, tmp_path):
    """Every validation photo: same top-1 and probabilities within 1e-4, MobileNetV2 weights."""
    import keras

    keras.utils.set_random_seed(11)
    shape = (MOBILENET_SIZE, MOBILENET_SIZE, 3)
    base = keras.applications.MobileNetV2(include_top=False, weights=str(mobilenet_weights), input_shape=shape)
    inputs = keras.Input(shape)
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(base(scaled, training=False))
    path = tmp_path / "mobilenet.keras"
    keras.Model(inputs, keras.layers.Dense(len(CLASS_NAMES))(pooled)).save(path)

    photos = sorted((clothing_dataset / "validation").glob("*/*.jpg"))
    images, failures = load_images(photos, (MOBILENET_SIZE, MOBILENET_SIZE))
    assert failures == []
    openvino = predict_batch(load_model(path, runtime="openvino"), images, CLASS_NAMES, top_k=10)
    tensorflow = predict_batch(load_model(path, runtime="tensorflow"), images, CLASS_NAMES, top_k=10)

    assert len(openvino) == len(photos) > 300
    mismatched = [
        photo.name for photo, first, second in zip(photos, openvino, tensorflow) if first.category != second.category
    ]
    assert mismatched == []
    largest = max(
        abs(dict(first.top_k)[name] - dict(second.top_k)[name])
        for first, second in zip(openvino, tensorflow)
        for name in CLASS_NAMES
    )
    assert largest <= 1e-4
