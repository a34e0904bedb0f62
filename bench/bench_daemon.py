"""Daemon end to end: files renamed into the inbox until every row is committed and every file moved.

Run from the repository root:

    .venv/bin/python -m bench.bench_daemon                  # 320 files, Xception 150 px
    .venv/bin/python -m bench.bench_daemon --files 1000 --model mobilenet_v2 --size 224
    .venv/bin/python -m bench.bench_daemon --smoke          # MobileNetV2 at 96 px, 16 files

The real watch service runs on a thread of this process, on a fresh SQLite registry in a
temporary folder, with the model registered and promoted to production. Copies of the shared
validation photos, each with distinct bytes so that none is a duplicate, are written into the
inbox under `.part` names, which the daemon ignores. Then all are renamed to their real names at
once, the way an uploader that writes to a temporary name delivers them. The clock starts before the first
rename and stops when the service has reported rows for every file; the run then checks that
every file was moved and the inbox is empty.
`bench.bench_inference` runs the same function next to the per-image loop and the FLOP limit.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import ModelSpec, build_classic_model, environment_line, mobilenet_v2, stage_unique_copies, validation_photos, xception

# Time allowed for the service to start, to stop, and between two finished batches.
SERVICE_TIMEOUT_SECONDS = 300
# The files arrive by rename, which is atomic, so settling only adds latency.
BENCH_SETTLE_MS = 100
STAGING_SUFFIX = ".part"


@dataclass(frozen=True)
class DaemonRun:
    """One end-to-end run: files, wall seconds and the summed per-stage times of the batches."""

    files: int
    seconds: float
    cpu_seconds: float
    batches: int
    decode_ms: float
    inference_ms: float
    database_ms: float
    move_ms: float
    runtime: str

    @property
    def images_per_second(self) -> float:
        return self.files / self.seconds


def register_served_model(registry, model_path: Path, spec: ModelSpec):
    """Register the model file under the default name and promote it to production."""
    from registry import NewVersion
    from registry.types import DEFAULT_MODEL_NAME, PRODUCTION
    from vision.images import PREPROCESSING_ID

    version = registry.register_version(
        NewVersion(
            model_name=DEFAULT_MODEL_NAME,
            artifact_path=str(model_path),
            class_names=tuple(f"class{index}" for index in range(10)),
            backbone=spec.backbone.lower(),
            image_size=(spec.size, spec.size),
            preprocessing=PREPROCESSING_ID,
            description=f"benchmark model {spec.label}",
        )
    )
    registry.set_alias(DEFAULT_MODEL_NAME, PRODUCTION, version.version)
    return version


def run_daemon(
    model_path: Path,
    spec: ModelSpec,
    photos: Sequence[Path],
    count: int,
    workdir: Path,
    **overrides,
) -> DaemonRun:
    """Run the watch service on `count` files and return its timing.

    Args:
        model_path: A saved `.keras` model of `spec`.
        photos: Source photos, cycled through when `count` is larger.
        workdir: Empty folder for the registry, staging area, inbox and output.
        overrides: WatchSettings values to change (settle_ms defaults to BENCH_SETTLE_MS).

    Raises:
        RuntimeError: the service did not start, stopped early, or did not move every file.
    """
    from daemon.config import WatchSettings, validate
    from daemon.service import WatchService
    from registry import Registry

    workdir.mkdir(parents=True, exist_ok=True)
    registry = Registry.open(url=f"sqlite:///{workdir / 'sortbox.db'}", home=workdir / "home")
    try:
        register_served_model(registry, model_path, spec)
        inbox, output = workdir / "inbox", workdir / "output"
        inbox.mkdir()
        staged = stage_unique_copies(photos, count, inbox, suffix=STAGING_SUFFIX)

        values = {"settle_ms": BENCH_SETTLE_MS, **overrides}
        settings = validate(WatchSettings(inbox=inbox, output=output, **values))
        progress: queue.Queue = queue.Queue()
        service = WatchService(settings, registry, progress=progress)
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                service.run()
            except BaseException as error:  # handed to the caller below
                failure.append(error)

        thread = threading.Thread(target=serve, name="bench-watch")
        thread.start()
        try:
            if not service.started.wait(SERVICE_TIMEOUT_SECONDS):
                raise RuntimeError("the watch service did not start")
            return _feed_and_time(service, progress, staged, inbox, failure)
        finally:
            service.stop()
            thread.join(SERVICE_TIMEOUT_SECONDS)
    finally:
        registry.close()


def _feed_and_time(service, progress: queue.Queue, staged: list[Path], inbox: Path, failure: list) -> DaemonRun:
    started, cpu_started = time.perf_counter(), time.process_time()
    for path in staged:
        os.rename(path, path.with_name(path.name.removesuffix(STAGING_SUFFIX)))

    outcomes = []
    rows = 0
    while rows < len(staged):
        try:
            outcome = progress.get(timeout=SERVICE_TIMEOUT_SECONDS)
        except queue.Empty:
            raise RuntimeError(f"no batch finished within {SERVICE_TIMEOUT_SECONDS} s; {failure}") from None
        outcomes.append(outcome)
        rows += len(outcome.rows)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    moved = sum(len(outcome.moved) for outcome in outcomes)
    from daemon.intake import is_temporary_name

    # The service keeps a hidden lock file in the inbox; input files are never hidden.
    left = [path for path in inbox.iterdir() if not is_temporary_name(path.name)]
    if moved != len(staged) or left:
        raise RuntimeError(f"{moved} of {len(staged)} files moved, {len(left)} left in the inbox")
    return DaemonRun(
        files=rows,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        batches=len(outcomes),
        decode_ms=sum(outcome.decode_ms for outcome in outcomes),
        inference_ms=sum(outcome.inference_ms for outcome in outcomes),
        database_ms=sum(outcome.database_ms for outcome in outcomes),
        move_ms=sum(outcome.move_ms for outcome in outcomes),
        runtime=service_runtime(service),
    )


def service_runtime(service) -> str:
    """Return the inference runtime of the model the service holds, for the report."""
    # The service exposes no public accessor for its model; a benchmark may read the private one.
    serving = service._holder.current
    return getattr(serving.model, "runtime", "unknown") if serving is not None else "none"


def save_model(spec: ModelSpec, folder: Path) -> Path:
    path = folder / f"{spec.backbone.lower()}_{spec.size}.keras"
    build_classic_model(spec).save(path)
    return path


def describe(run: DaemonRun) -> str:
    per_file = 1.0 / run.files
    return (
        f"{run.files} files in {run.seconds:.2f} s = {run.images_per_second:.1f} images/s, "
        f"{run.cpu_seconds:.1f} CPU s "
        f"({run.batches} batches, runtime {run.runtime}); per file: inference "
        f"{run.inference_ms * per_file:.1f} ms, decode {run.decode_ms * per_file:.1f} ms "
        f"(on decode threads), database {run.database_ms * per_file:.2f} ms, move "
        f"{run.move_ms * per_file:.2f} ms"
    )


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="MobileNetV2 at 96 px on 16 files")
    parser.add_argument("--files", type=int, default=320, help="files dropped into the inbox (default 320)")
    parser.add_argument("--model", choices=("xception", "mobilenet_v2"), default="xception")
    parser.add_argument("--size", type=int, default=150, help="input size in pixels (default 150)")
    parser.add_argument("--batch-size", type=int, default=32, help="--max-batch-size of the daemon (default 32)")
    parser.add_argument("--runtime", choices=("auto", "openvino", "tensorflow"), default=None,
                        help="inference runtime (default: $SORTBOX_INFERENCE_RUNTIME or auto)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.runtime is not None:
        os.environ["SORTBOX_INFERENCE_RUNTIME"] = arguments.runtime
    if arguments.smoke:
        arguments.files, arguments.model, arguments.size = 16, "mobilenet_v2", 96
    try:
        photos = validation_photos()
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    spec = xception(arguments.size) if arguments.model == "xception" else mobilenet_v2(arguments.size)
    with tempfile.TemporaryDirectory(prefix="sortbox-bench-") as folder:
        workdir = Path(folder)
        model_path = save_model(spec, workdir)
        run = run_daemon(model_path, spec, photos, arguments.files, workdir / "run",
                         max_batch_size=arguments.batch_size)
    print(environment_line())
    print(f"{spec.label}, weights {'random' if spec.weights == 'none' else 'ImageNet'}: {describe(run)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
