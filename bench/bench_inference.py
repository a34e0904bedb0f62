"""Inference benchmark: per-image loop, sortbox's batched inference and the daemon, against the FLOP limit.

Run from the repository root:

    .venv/bin/python -m bench.bench_inference            # Xception 150 and 299 px, MobileNetV2 224 px
    .venv/bin/python -m bench.bench_inference --models xception150 --files 640
    .venv/bin/python -m bench.bench_inference --smoke    # MobileNetV2 at 96 px, for CI

For each model it measures, in one process and in interleaved rounds:

- the fp32 matrix-product peak: a 4096x4096 float32 product with NumPy and with TensorFlow;
- the model's FLOPs per image, from TensorFlow's profiler, cross-checked by counting the
  convolution and dense layers (see `bench.common`);
- (a) the classic per-image loop: `keras.utils.load_img` + `img_to_array` + `model.predict` on a
  batch of one, per file;
- (b) `vision.inference.predict_batch` on a batch of already decoded images, with each runtime;
- (c) the daemon end to end (`bench.bench_daemon.run_daemon`): files renamed into the inbox until
  every row is committed and every file moved, with each runtime.

The fp32 limit in images/s is the best matrix-product peak divided by the FLOPs per image.
Xception has random weights (`weights=None`): ImageNet weights cannot be downloaded here, and
speed does not depend on weight values. MobileNetV2 has the ImageNet weights of the shared folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.bench_daemon import DaemonRun, describe, run_daemon
from bench.common import (
    PEAK_MATRIX_SIZE,
    SMOKE_PEAK_MATRIX_SIZE,
    Candidate,
    ModelSpec,
    build_classic_model,
    counted_flops,
    environment_line,
    mobilenet_v2,
    peak_candidates,
    profiled_flops,
    run_rounds,
    validation_photos,
    xception,
)

MODELS = {
    "xception150": (xception(150), 32, 16, 320),
    "xception299": (xception(299), 32, 8, 128),
    "mobilenet_v2_224": (mobilenet_v2(224), 32, 32, 640),
}
SMOKE_MODEL = (mobilenet_v2(96), 8, 4, 16)
RUNTIMES = ("openvino", "tensorflow")


@dataclass
class ModelResult:
    spec: ModelSpec
    profiled_flops: int
    counted_flops: int
    peaks: list[Candidate]
    paths: list[Candidate]
    daemon_runs: dict[str, DaemonRun]

    def limit(self, cpu: bool) -> float:
        """fp32 limit in images/s: the best matrix-product peak over the profiled FLOPs."""
        return max(rate(peak, cpu) for peak in self.peaks) / self.profiled_flops


def rate(candidate: Candidate, cpu: bool) -> float:
    return candidate.best_cpu if cpu else candidate.best


def available_runtimes() -> list[str]:
    # find_spec looks for the package without importing it: a plain import starts its telemetry.
    if importlib.util.find_spec("openvino") is None:
        return ["tensorflow"]
    return list(RUNTIMES)


def loop_candidate(keras_model, spec: ModelSpec, photos: Sequence[Path]) -> Candidate:
    """Build the classic loop: load_img, img_to_array, then model.predict on a batch of one, per file."""
    import numpy as np
    from keras.utils import img_to_array, load_img

    def classify_each() -> None:
        for path in photos:
            pixels = img_to_array(load_img(path, target_size=(spec.size, spec.size)))
            keras_model.predict(np.expand_dims(pixels, 0), verbose=0)

    return Candidate("(a) per-image loop", classify_each, len(photos))


def measure_model(spec: ModelSpec, batch: int, loop_files: int, daemon_files: int, arguments, workdir: Path) -> ModelResult:
    from vision.images import load_images
    from vision.inference import load_model, predict_batch

    photos = validation_photos()
    keras_model = build_classic_model(spec)
    model_path = workdir / f"{spec.backbone.lower()}_{spec.size}.keras"
    keras_model.save(model_path)
    flops = (profiled_flops(keras_model, spec.size), counted_flops(keras_model))

    images, _ = load_images(photos[:batch], (spec.size, spec.size))
    class_names = [f"class{index}" for index in range(10)]
    runtimes = available_runtimes()
    loaded = {runtime: load_model(model_path, runtime=runtime) for runtime in runtimes}

    peaks = peak_candidates(arguments.peak_size)
    loop = loop_candidate(keras_model, spec, photos[:loop_files])
    batched = [
        Candidate(f"(b) {runtime}", lambda model=model: predict_batch(model, images, class_names), len(images))
        for runtime, model in loaded.items()
    ]
    daemon_runs: dict[str, list[DaemonRun]] = {runtime: [] for runtime in runtimes}
    daemons = [
        Candidate(
            f"(c) {runtime}",
            lambda runtime=runtime: timed_daemon_run(model_path, spec, photos, daemon_files, workdir, runtime, daemon_runs[runtime]),
            daemon_files,
            self_timed=True,
            warm_up=False,
        )
        for runtime in runtimes
    ]
    run_rounds([*peaks, loop, *batched, *daemons], arguments.rounds)
    return ModelResult(
        spec=spec,
        profiled_flops=flops[0],
        counted_flops=flops[1],
        peaks=peaks,
        paths=[loop, *batched, *daemons],
        daemon_runs={runtime: max(runs, key=lambda run: run.images_per_second) for runtime, runs in daemon_runs.items()},
    )


def timed_daemon_run(
    model_path: Path, spec: ModelSpec, photos, files: int, workdir: Path, runtime: str, runs: list[DaemonRun]
) -> tuple[float, float]:
    """Run the daemon once with `runtime` on a fresh registry; return its wall and CPU seconds."""
    os.environ["SORTBOX_INFERENCE_RUNTIME"] = runtime
    try:
        run = run_daemon(model_path, spec, photos, files, workdir / f"daemon-{runtime}-{len(runs)}")
    finally:
        os.environ.pop("SORTBOX_INFERENCE_RUNTIME", None)
    runs.append(run)
    return run.seconds, run.cpu_seconds


def print_result(result: ModelResult) -> None:
    spec = result.spec
    weights = "random weights" if spec.weights == "none" else "ImageNet weights"
    print(f"### {spec.label} ({weights})")
    print()
    peaks = ", ".join(
        f"{peak.name} {peak.best / 1e9:.0f} GFLOP/s wall, {peak.best_cpu / 1e9:.0f} per CPU" for peak in result.peaks
    )
    print(
        f"{result.profiled_flops / 1e9:.3f} GFLOP/image (profiler), {result.counted_flops / 1e9:.3f} "
        f"counted (convolutions and dense only). Peak: {peaks}. fp32 limit: "
        f"{result.limit(cpu=False):.1f} images/s wall, {result.limit(cpu=True):.1f} per CPU."
    )
    print()

    print("| path | images/s, wall (% of limit) | x loop | images/s per CPU (% of limit) | x loop |")
    print("| --- | --- | --- | --- | --- |")

    loop = result.paths[0]
    labels = {
        "(a) per-image loop": "(a) load_img + model.predict, batch of one",
        **{f"(b) {runtime}": f"(b) predict_batch, {runtime}" for runtime in RUNTIMES},
        **{f"(c) {runtime}": f"(c) daemon end to end, {runtime}" for runtime in RUNTIMES},
    }
    for path in result.paths:
        cells = []
        for cpu in (False, True):
            value = rate(path, cpu)
            cells.append(f"{value:.1f} ({value / result.limit(cpu):.0%}) | {value / rate(loop, cpu):.2f}")
        print(f"| {labels[path.name]} | {' | '.join(cells)} |")
    print()
    for runtime, run in result.daemon_runs.items():
        print(f"- fastest daemon run, {runtime}: {describe(run)}")
    print()


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="MobileNetV2 at 96 px, tiny counts, one round")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    parser.add_argument("--files", type=int, default=None, help="files per daemon run (default per model)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        validation_photos(1)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    arguments.peak_size = PEAK_MATRIX_SIZE
    plans = [MODELS[name] for name in arguments.models]
    if arguments.smoke:
        arguments.peak_size, arguments.rounds = SMOKE_PEAK_MATRIX_SIZE, 1
        plans = [SMOKE_MODEL]

    print(environment_line())
    print()
    with tempfile.TemporaryDirectory(prefix="sortbox-bench-") as folder:
        for spec, batch, loop_files, daemon_files in plans:
            files = arguments.files or daemon_files
            workdir = Path(folder) / spec.label.replace(" ", "-")
            workdir.mkdir()
            print_result(measure_model(spec, batch, loop_files, files, arguments, workdir))
            sys.stdout.flush()
    print(f"after the run: {environment_line()}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
