"""Inference runtimes that run a loaded Keras model on uint8 image batches.

Two runtimes compute the same function:

- `tensorflow`: one `tf.function` with a fixed signature, uint8 (batch, height, width, 3) in and
  one score per class out. It is always available and is the fallback.
- `openvino`: the same concrete function converted in memory with `openvino.convert_model` and
  compiled for the CPU with float32 precision and OpenVINO's throughput hint. A batch is cut into
  chunks of `chunk_size` images that run on parallel requests (one stream per core), so each
  core works on its own images instead of splitting every layer across cores. OpenVINO is
  imported with its usage telemetry replaced by OpenVINO's own no-op stub (see
  `import_openvino`).

The runtime is chosen with `load_model(..., runtime=...)` or the environment variable
SORTBOX_INFERENCE_RUNTIME (`auto`, `openvino` or `tensorflow`). `auto` uses OpenVINO when the
package is installed and its output matches TensorFlow's on a probe batch, and TensorFlow otherwise.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

logger = logging.getLogger(__name__)

RUNTIME_ENV = "SORTBOX_INFERENCE_RUNTIME"
AUTO = "auto"
OPENVINO = "openvino"
TENSORFLOW = "tensorflow"
RUNTIMES = (AUTO, OPENVINO, TENSORFLOW)

# Images per OpenVINO request. Chunks of 2, 4 and 8 images ran at the same speed with Xception
# at 150 px on 2 cores; 4 still gives every stream work in a batch of 8.
DEFAULT_CHUNK_SIZE = 4
# Largest difference in class probability between OpenVINO and TensorFlow on the probe batch.
PROBE_TOLERANCE = 1e-4
PROBE_IMAGES = 2

LogitsFunction = Callable[[np.ndarray], np.ndarray]

# Seconds the interpreter's exit waits for OpenVINO calls in flight before it goes on regardless.
EXIT_WAIT_SECONDS = 30.0


class RuntimeUnavailable(Exception):
    """The requested runtime cannot serve this model; the message gives the reason."""


class RuntimeNotInstalled(RuntimeUnavailable):
    """The runtime's package is not installed, which is normal for an optional runtime."""


@dataclass(frozen=True)
class CompiledRuntime:
    """A runtime ready to score batches: its name and the function that returns raw outputs."""

    name: str
    predict_outputs: LogitsFunction


def requested_runtime(runtime: str | None) -> str:
    """Return the runtime to use: `runtime` if given, else $SORTBOX_INFERENCE_RUNTIME, else auto.

    Raises:
        ValueError: the name is not one of `RUNTIMES`.
    """
    chosen = runtime if runtime is not None else os.environ.get(RUNTIME_ENV, AUTO)
    chosen = chosen.strip().lower()
    if chosen not in RUNTIMES:
        raise ValueError(
            f"inference runtime {chosen!r} is not one of {', '.join(RUNTIMES)}; "
            f"fix the runtime argument or {RUNTIME_ENV}"
        )
    return chosen


def tensorflow_function(keras_model: Any, input_size: tuple[int, int]) -> Any:
    """Trace the model once as a `tf.function` taking uint8 (batch, height, width, 3) images."""
    import tensorflow as tf

    @tf.function(
        input_signature=[tf.TensorSpec(shape=(None, input_size[0], input_size[1], 3), dtype=tf.uint8)],
    )
    def outputs_of(images):
        return keras_model(tf.cast(images, tf.float32), training=False)

    return outputs_of


def compile_tensorflow(function: Any) -> CompiledRuntime:
    """Wrap the traced function so it takes and returns numpy arrays."""
    import tensorflow as tf

    def predict_outputs(images: np.ndarray) -> np.ndarray:
        return function(tf.convert_to_tensor(images)).numpy()

    return CompiledRuntime(TENSORFLOW, predict_outputs)


def import_openvino() -> Any:
    """Import and return the `openvino` module without starting its usage telemetry.

    `import openvino` imports `openvino.tools.ovc`, whose package init (OpenVINO 2026.4) starts
    `openvino_telemetry`. That package treats a missing consent file as consent, so it writes a
    client id under ~/intel and sends an import event to Google Analytics from a non-daemon
    thread. OpenVINO swaps in a no-op stub when `openvino_telemetry` cannot be imported, so this
    function marks it as absent in `sys.modules` before the first import of OpenVINO. That
    changes neither the environment nor any file, but any later `import openvino_telemetry` in
    this process raises ImportError.

    Raises:
        RuntimeNotInstalled: the openvino package is not installed.
    """
    # NOTE: when other code in the process imported OpenVINO before this call, its telemetry has
    # already started and this cannot stop it.
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
    try:
        import openvino
    except ImportError as error:
        raise RuntimeNotInstalled(f"the openvino package is not installed ({error})") from error
    return openvino


# TODO: no int8 path yet. Post-training quantization of the OpenVINO model, calibrated on training
# images, could run past the fp32 limit, but it would need a validation-accuracy check against
# the fp32 model (within 0.5 points, recorded as a metric of the version) before promotion.
def compile_openvino(function: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE, streams: int | None = None) -> CompiledRuntime:
    """Convert the traced function to OpenVINO and compile it for the CPU in float32.

    Args:
        function: The `tf.function` from `tensorflow_function`.
        chunk_size: Images per request. Defaults to DEFAULT_CHUNK_SIZE.
        streams: Requests run in parallel. Defaults to OpenVINO's choice for the throughput
            hint, which is one stream per core or per pair of cores.

    Raises:
        RuntimeUnavailable: OpenVINO is not installed, or conversion or compilation failed.
    """
    ov = import_openvino()

    config: dict[str, Any] = {
        # Without this hint OpenVINO computes in bfloat16 on CPUs with AVX512_BF16 or AMX.
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "THROUGHPUT",
        # TensorFlow flushes denormal floats to zero too, so both runtimes agree and neither
        # slows down on them.
        "CPU_DENORMALS_OPTIMIZATION": True,
        # A pinned stream cannot move to an idle core while the daemon's decode threads or
        # another process hold its own core.
        "ENABLE_CPU_PINNING": False,
    }
    if streams is not None:
        config["NUM_STREAMS"] = streams
    try:
        # convert_model reports each conversion to openvino_telemetry, which import_openvino
        # has replaced with OpenVINO's no-op stub.
        converted = ov.convert_model(function.get_concrete_function())
        compiled = ov.Core().compile_model(converted, "CPU", config)
    except Exception as error:  # noqa: BLE001 - conversion raises many unrelated types
        raise RuntimeUnavailable(f"OpenVINO conversion failed: {type(error).__name__}: {error}") from error

    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    return CompiledRuntime(OPENVINO, _chunked_predict(compiled, requests, chunk_size))


class _ExitGate:
    """Counter of OpenVINO calls in flight, so the interpreter's exit can wait for them to end.

    When a daemon thread takes the GIL back after finalization has started, Python 3.11 ends it
    with pthread_exit. If that thread is returning from an OpenVINO call that released the GIL,
    the forced unwind reaches a C++ frame that may not throw, and std::terminate aborts the whole
    process ("Fatal Python error: Aborted"). Atexit handlers run before finalization, so the
    handler `close` stops new calls and waits for the running ones.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active = 0
        self._closed = False
        self._registered = False

    def register(self) -> None:
        """Register `close` to run at interpreter exit, once per process."""
        with self._condition:
            if not self._registered:
                atexit.register(self.close, EXIT_WAIT_SECONDS)
                self._registered = True

    @contextmanager
    def call(self) -> Iterator[None]:
        """Count one OpenVINO call. After `close` the caller blocks until the process ends.

        Only daemon threads can call after `close`, because the interpreter joins the other
        threads before it runs atexit handlers. Blocking, not raising, keeps a daemon's batch
        from being recorded as failed during exit: its files stay in the inbox.
        """
        with self._condition:
            self._condition.wait_for(lambda: not self._closed)
            self._active += 1
        try:
            yield
        finally:
            with self._condition:
                self._active -= 1
                self._condition.notify_all()

    def close(self, timeout: float) -> None:
        """Reject new calls and wait up to `timeout` seconds for the running ones to end."""
        with self._condition:
            self._closed = True
            finished = self._condition.wait_for(lambda: self._active == 0, timeout)
            if not finished:
                logger.warning(
                    "%s OpenVINO calls still running after %.0f s at exit; the process may abort",
                    self._active, timeout,
                )


_EXIT_GATE = _ExitGate()


def _chunked_predict(compiled: Any, requests: int, chunk_size: int) -> LogitsFunction:
    # Chunk i runs on request i % requests, so each request is waited on before its next chunk.
    # No Python callback runs on OpenVINO's threads: a garbage collection there could free the
    # compiled model on its own worker thread, which aborts the process.
    slots = [compiled.create_infer_request() for _ in range(requests)]
    output = compiled.output(0)
    # The requests are shared, so concurrent callers take turns instead of failing with
    # "Infer Request is busy".
    lock = threading.Lock()
    _EXIT_GATE.register()

    def predict_outputs(images: np.ndarray) -> np.ndarray:
        with _EXIT_GATE.call(), lock:
            return run_chunks(images)

    def run_chunks(images: np.ndarray) -> np.ndarray:
        starts = list(range(0, len(images), chunk_size))
        results: list[np.ndarray] = []
        for index, start in enumerate(starts):
            slot = slots[index % requests]
            if index >= requests:
                slot.wait()
                results.append(slot.get_tensor(output).data.copy())
            slot.start_async({0: np.ascontiguousarray(images[start : start + chunk_size])})
        for index in range(max(0, len(starts) - requests), len(starts)):
            slot = slots[index % requests]
            slot.wait()
            results.append(slot.get_tensor(output).data.copy())
        return np.concatenate(results, axis=0)

    return predict_outputs


def probe_difference(first: LogitsFunction, second: LogitsFunction, input_size: tuple[int, int], softmax: bool) -> float:
    """Return the largest absolute difference between two runtimes' outputs on a fixed random batch.

    Args:
        softmax: Compare softmax probabilities (True) or the raw outputs (False, for models that
            end in a softmax already).
    """
    probe = np.random.default_rng(0).integers(0, 256, (PROBE_IMAGES, *input_size, 3), dtype=np.uint8)
    outputs = [np.asarray(run(probe), dtype=np.float64) for run in (first, second)]
    if softmax:
        outputs = [softmax_rows(values) for values in outputs]
    return float(np.max(np.abs(outputs[0] - outputs[1])))


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum so exp() cannot overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def compile_runtime(keras_model: Any, input_size: tuple[int, int], outputs_probabilities: bool, runtime: str | None = None) -> CompiledRuntime:
    """Compile the model for the requested runtime, falling back to TensorFlow under `auto`.

    Raises:
        RuntimeUnavailable: `openvino` was requested explicitly and cannot serve this model.
        ValueError: the runtime name is unknown.
    """
    chosen = requested_runtime(runtime)
    function = tensorflow_function(keras_model, input_size)
    tensorflow = compile_tensorflow(function)
    if chosen == TENSORFLOW:
        # Trace now, so the first batch does not pay for it.
        tensorflow.predict_outputs(np.zeros((1, *input_size, 3), dtype=np.uint8))
        return tensorflow

    try:
        openvino = compile_openvino(function)
        difference = probe_difference(
            tensorflow.predict_outputs, openvino.predict_outputs, input_size, not outputs_probabilities
        )
        if difference > PROBE_TOLERANCE:
            raise RuntimeUnavailable(
                f"OpenVINO output differs from TensorFlow by {difference:.2e} on the probe batch "
                f"(tolerance {PROBE_TOLERANCE:.0e})"
            )
    except RuntimeUnavailable as error:
        if chosen == OPENVINO:
            raise
        level = logging.INFO if isinstance(error, RuntimeNotInstalled) else logging.WARNING
        logger.log(level, "serving with TensorFlow instead of OpenVINO: %s", error)
        return tensorflow

    logger.debug("OpenVINO agrees with TensorFlow within %.2e on the probe batch", difference)
    return openvino
