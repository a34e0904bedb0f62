"""Memory benchmark: resident memory of `sortbox watch` over a long run, and peak of `sortbox train`.

Run from the repository root:

    .venv/bin/python -m bench.bench_memory                       # daemon 1,000 and 10,000 files, train
    .venv/bin/python -m bench.bench_memory --daemon-files 1000 --skip-train
    .venv/bin/python -m bench.bench_memory --smoke               # 40 files, tiny training run

Both commands run as child processes through the real CLI (`.venv/bin/sortbox` or `python -m
cli`), each on a fresh data folder in a temporary folder, and their resident set size is read
from /proc/PID/status (VmRSS, and VmHWM for the peak) every `--sample-seconds`.

The daemon serves a promoted MobileNetV2 (ImageNet weights from the shared folder) by default.
Files are copies of the validation photos with distinct bytes, written under `.part` names and
renamed into the inbox in steps of `--step` files, with at most `--backlog` files waiting, so the
daemon receives a steady stream. Warm-up ends when the first `--warm-up` fraction of the files is
moved; growth is the last RSS sample over the highest sample at the end of warm-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ModelSpec, build_classic_model, environment_line, mobilenet_v2, stage_unique_copies, validation_photos, xception
from tools import shared

STAGING_SUFFIX = ".part"
CHILD_TIMEOUT_SECONDS = 3600
KIB = 1024


@dataclass
class MemoryTrace:
    """RSS samples of one child process: (seconds since start, RSS bytes, files done)."""

    samples: list[tuple[float, int, int]] = field(default_factory=list)
    peak_bytes: int = 0

    def add(self, seconds: float, status: dict[str, int], done: int) -> None:
        self.samples.append((seconds, status.get("VmRSS", 0), done))
        self.peak_bytes = max(self.peak_bytes, status.get("VmHWM", 0), status.get("VmRSS", 0))


def read_status(pid: int) -> dict[str, int]:
    """Return the VmRSS and VmHWM of a process in bytes, or {} once it has exited."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    values[name] = int(rest.split()[0]) * KIB
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return values


def sortbox_command() -> list[str]:
    executable = Path(sys.executable).with_name("sortbox")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "cli"]


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def prepare_registry(home: Path, spec: ModelSpec) -> None:
    """Save the model and register it, promoted to production, in the data folder `home`."""
    from bench.bench_daemon import register_served_model
    from registry import Registry

    model_path = home.parent / f"{spec.backbone.lower()}_{spec.size}.keras"
    build_classic_model(spec).save(model_path)
    registry = Registry.open(url=None, home=home)
    try:
        register_served_model(registry, model_path, spec)
    finally:
        registry.close()


def run_daemon_memory(spec: ModelSpec, files: int, arguments, workdir: Path) -> MemoryTrace:
    """Run `sortbox watch` on a steady stream of `files` files and sample its memory.

    Raises:
        RuntimeError: the daemon exited early or did not move every file in time.
    """
    home, inbox, output = workdir / "home", workdir / "inbox", workdir / "output"
    inbox.mkdir(parents=True)
    prepare_registry(home, spec)
    staged = stage_unique_copies(validation_photos(), files, inbox, suffix=STAGING_SUFFIX)

    command = [
        *sortbox_command(), "--home", str(home), "watch", "--inbox", str(inbox),
        "--output", str(output), "--settle-ms", "100",
    ]
    log_path = workdir / "watch.log"
    trace = MemoryTrace()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        released = 0
        try:
            while True:
                if child.poll() is not None:
                    raise RuntimeError(f"sortbox watch exited with {child.returncode}; see {log_path}")
                done = count_files(output) if output.exists() else 0
                trace.add(time.monotonic() - started, read_status(child.pid), done)
                if done >= files:
                    break
                if time.monotonic() - started > CHILD_TIMEOUT_SECONDS:
                    raise RuntimeError(f"{done} of {files} files moved after {CHILD_TIMEOUT_SECONDS} s")
                while released < files and released - done < arguments.backlog:
                    for path in staged[released : released + arguments.step]:
                        os.rename(path, path.with_name(path.name.removesuffix(STAGING_SUFFIX)))
                    released = min(files, released + arguments.step)
                time.sleep(arguments.sample_seconds)
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(CHILD_TIMEOUT_SECONDS)
    return trace


def run_train_memory(arguments, workdir: Path, smoke: bool) -> MemoryTrace:
    """Run `sortbox train` with MobileNetV2 and sample its memory.

    Raises:
        RuntimeError: the training command failed.
    """
    data = shared.clothing_dataset()
    if smoke:
        data = tiny_dataset(data, workdir / "tiny-dataset", per_class=4)
    command = [
        *sortbox_command(), "--home", str(workdir / "home"), "train", "--data", str(data),
        "--backbone", "mobilenet_v2", "--weights", str(shared.mobilenet_v2_weights()),
        "--image-size", str(arguments.train_size), "--epochs", str(arguments.train_epochs), "--quiet",
    ]
    log_path = workdir / "train.log"
    workdir.mkdir(parents=True, exist_ok=True)
    trace = MemoryTrace()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while child.poll() is None:
            trace.add(time.monotonic() - started, read_status(child.pid), 0)
            time.sleep(arguments.sample_seconds)
    if child.returncode != 0:
        raise RuntimeError(f"sortbox train exited with {child.returncode}; see {log_path}")
    return trace


def tiny_dataset(source: Path, target: Path, per_class: int) -> Path:
    """Copy the first `per_class` photos of each class of train/ and validation/ to `target`."""
    for split in ("train", "validation"):
        for class_folder in sorted((source / split).iterdir()):
            if not class_folder.is_dir():
                continue
            destination = target / split / class_folder.name
            destination.mkdir(parents=True)
            for photo in sorted(class_folder.glob("*.jpg"))[:per_class]:
                shutil.copyfile(photo, destination / photo.name)
    return target


def describe_daemon(files: int, trace: MemoryTrace, warm_up: float) -> str:
    """Summarize a daemon trace: peak, RSS after warm-up, final RSS and the growth between them."""
    warm_done = files * warm_up
    warm = [rss for _, rss, done in trace.samples if done <= warm_done and rss]
    after = [rss for _, rss, done in trace.samples if done > warm_done and rss]
    if not warm or not after:
        return f"{files} files: peak {trace.peak_bytes / 2**20:.0f} MiB (too few samples for growth)"
    warm_rss, final_rss = max(warm), after[-1]
    growth = final_rss / warm_rss - 1
    seconds = trace.samples[-1][0]
    return (
        f"{files} files in {seconds:.0f} s: peak RSS {trace.peak_bytes / 2**20:.0f} MiB, "
        f"{warm_rss / 2**20:.0f} MiB after warm-up ({warm_up:.0%} of the files), "
        f"{final_rss / 2**20:.0f} MiB at the end, growth {growth:+.1%}, "
        f"max after warm-up {max(after) / 2**20:.0f} MiB"
    )


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="40 files at 96 px and a tiny training run")
    parser.add_argument("--daemon-files", type=int, nargs="+", default=[1000, 10000],
                        help="file counts of the daemon runs (default 1000 10000)")
    parser.add_argument("--model", choices=("mobilenet_v2", "xception"), default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=224, help="daemon model input size (default 224)")
    parser.add_argument("--step", type=int, default=50, help="files renamed into the inbox at once (default 50)")
    parser.add_argument("--backlog", type=int, default=200, help="most files waiting in the inbox (default 200)")
    parser.add_argument("--warm-up", type=float, default=0.1, help="fraction of files before growth counts (default 0.1)")
    parser.add_argument("--sample-seconds", type=float, default=0.5, help="RSS sampling interval (default 0.5)")
    parser.add_argument("--skip-train", action="store_true", help="measure the daemon only")
    parser.add_argument("--train-size", type=int, default=160, help="training image size (default 160)")
    parser.add_argument("--train-epochs", type=int, default=2, help="training epochs (default 2)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.smoke:
        arguments.daemon_files, arguments.size, arguments.step = [40], 96, 10
        arguments.sample_seconds, arguments.train_size, arguments.train_epochs = 0.2, 64, 1
    try:
        validation_photos(1)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not sys.platform.startswith("linux"):
        print("error: this benchmark reads /proc and runs on Linux only", file=sys.stderr)
        return 1

    spec = xception(arguments.size) if arguments.model == "xception" else mobilenet_v2(arguments.size)
    print(environment_line())
    print()
    with tempfile.TemporaryDirectory(prefix="sortbox-memory-") as folder:
        for files in arguments.daemon_files:
            trace = run_daemon_memory(spec, files, arguments, Path(folder) / f"daemon-{files}")
            print(f"- sortbox watch, {spec.label}: {describe_daemon(files, trace, arguments.warm_up)}", flush=True)
        if not arguments.skip_train:
            trace = run_train_memory(arguments, Path(folder) / "train", arguments.smoke)
            print(
                f"- sortbox train, MobileNetV2 {arguments.train_size}x{arguments.train_size}, "
                f"{arguments.train_epochs} epochs{' on 4 photos per class' if arguments.smoke else ''}: "
                f"peak RSS {trace.peak_bytes / 2**20:.0f} MiB in {trace.samples[-1][0] if trace.samples else 0:.0f} s",
                flush=True,
            )
    print()
    print(f"after the run: {environment_line()}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
