"""Run sortbox's main job end to end on the clothing dataset: train, promote, sort, report.

`make demo` runs this module. It drives the real `sortbox` command line in subprocesses, exactly
as a user would type it, inside a fresh folder `demo-run/`:

1. `sortbox train` on the dataset's `train/` and `validation/` folders with the local MobileNetV2
   weights (a user who is online can pass `--weights imagenet` instead);
2. `sortbox models promote` of the new version;
3. `sortbox watch` on an empty inbox, into which every validation image is then copied;
4. a wait until every image has left the inbox and has a prediction row, then SIGTERM;
5. a report: images sorted, rows written, files left, per-category counts, accuracy of the sorted
   result against each image's true class folder, and a sample of `sortbox predictions list`.

The exit status is non-zero when any of these steps fails or the files are not all accounted for.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tools import shared

DEMO_DIR = shared.REPO_ROOT / "demo-run"
MODEL_NAME = "clothing"

# The recommended frozen-base recipe; docs/training.md has the accuracy it reaches.
TRAIN_OPTIONS = (
    "--backbone", "mobilenet_v2",
    "--learning-rate", "0.001",
    "--inner-size", "1000",
    "--dropout", "0.5",
    "--label-smoothing", "0.1",
    "--epochs", "15",
    "--seed", "1",
)


def sortbox_command() -> list[str]:
    """Return the argv prefix of the installed console script, next to this interpreter."""
    script = Path(sys.executable).parent / "sortbox"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cli"]


# TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL because they are printed before
# its logging starts; they are not about sortbox, so the demo leaves them out.
TENSORFLOW_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")


def without_tensorflow_noise(text: str) -> str:
    return "".join(
        line for line in text.splitlines(keepends=True) if not TENSORFLOW_NOISE.match(line)
    )


def run_sortbox(args: list[str], env: dict[str, str]) -> str:
    """Run one `sortbox` command, echo it, and return its stdout; stop the demo if it fails."""
    command = sortbox_command() + args
    print(f"\n$ sortbox {' '.join(args)}", flush=True)
    completed = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    print(completed.stdout, end="", flush=True)
    print(without_tensorflow_noise(completed.stderr), end="", file=sys.stderr, flush=True)
    if completed.returncode != 0:
        raise SystemExit(f"demo failed: `sortbox {' '.join(args)}` exited {completed.returncode}")
    return completed.stdout


def true_labels(validation: Path) -> dict[str, str]:
    """Map each validation file name to the class folder it came from."""
    labels = {}
    for class_dir in sorted(path for path in validation.iterdir() if path.is_dir()):
        for image in class_dir.iterdir():
            if image.is_file() and not image.name.startswith("."):
                labels[image.name] = class_dir.name
    return labels


def visible_files(folder: Path) -> list[Path]:
    """List the files under `folder`, leaving out hidden ones such as the daemon's lock file."""
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def sorted_files(output: Path) -> dict[str, str]:
    """Map each file name found under OUTPUT/<category>/ to that category (review folders too)."""
    placed = {}
    for path in visible_files(output):
        parts = path.relative_to(output).parts
        # OUTPUT/<category>/<name>, OUTPUT/_review/<category>/<name> or OUTPUT/_failed/<name>.
        category = parts[-2] if len(parts) >= 2 else ""
        placed[path.name] = category
    return placed


def count_rows(env: dict[str, str]) -> int:
    """Count prediction rows through the registry's own API (no TensorFlow needed)."""
    from registry import Registry
    from registry.types import PredictionFilter

    registry = Registry.open(home=env["SORTBOX_HOME"])
    try:
        return sum(1 for _ in registry.query_predictions(PredictionFilter()))
    finally:
        registry.close()


def wait_until_sorted(
    daemon: subprocess.Popen, inbox: Path, output: Path, expected: int, env: dict[str, str],
    timeout_seconds: float,
) -> None:
    """Wait until the inbox is empty and every image has a row, or fail after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    last_report = 0.0
    while True:
        left = len(visible_files(inbox))
        placed = len(sorted_files(output))
        if left == 0 and placed >= expected and count_rows(env) >= expected:
            return
        if daemon.poll() is not None:
            raise SystemExit(f"demo failed: the daemon exited with {daemon.returncode} early")
        now = time.monotonic()
        if now > deadline:
            raise SystemExit(
                f"demo failed: after {timeout_seconds:.0f} s, {left} files are still in the inbox "
                f"and {placed} of {expected} are sorted"
            )
        if now - last_report > 10:
            print(f"  sorted {placed} of {expected}, {left} left in the inbox", flush=True)
            last_report = now
        # Polling the folders from outside is the demo's only way to observe another process.
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300, help="Seconds to wait for sorting.")
    args = parser.parse_args(argv)

    # Step 0: locate the shared data and start from an empty demo folder.
    missing = shared.missing_assets()
    if missing:
        names = ", ".join(str(path) for path in missing)
        raise SystemExit(
            f"demo needs the clothing dataset and MobileNetV2 weights; not found: {names}. "
            f"Set {shared.SHARED_ENV} to the folder that contains datasets/ and weights/."
        )
    dataset = shared.clothing_dataset()
    weights = shared.mobilenet_v2_weights()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    home, inbox, output = DEMO_DIR / "home", DEMO_DIR / "inbox", DEMO_DIR / "output"
    for folder in (home, inbox, output):
        folder.mkdir(parents=True)
    env = dict(os.environ, SORTBOX_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("SORTBOX_DB", None)
    started = time.monotonic()

    # Steps 1 and 2: train, register and promote.
    run_sortbox(
        ["train", "--data", str(dataset), "--weights", str(weights), "--name", MODEL_NAME,
         *TRAIN_OPTIONS],
        env,
    )
    run_sortbox(["models", "list", "--name", MODEL_NAME], env)
    run_sortbox(["models", "promote", MODEL_NAME, "1", "--reason", "demo"], env)

    # Step 3: start the daemon on the empty inbox, then drop every validation image in.
    labels = true_labels(dataset / "validation")
    daemon_args = ["watch", "--inbox", str(inbox), "--output", str(output), "--model", MODEL_NAME]
    print(f"\n$ sortbox {' '.join(daemon_args)} &", flush=True)
    daemon_log = DEMO_DIR / "daemon.log"
    print(f"(the daemon's log goes to {daemon_log})", flush=True)
    with daemon_log.open("wb") as log:
        daemon = subprocess.Popen(
            sortbox_command() + ["-v"] + daemon_args, env=env, stderr=log
        )
    try:
        for class_dir in sorted(path for path in (dataset / "validation").iterdir() if path.is_dir()):
            for image in sorted(class_dir.iterdir()):
                if image.name in labels:
                    shutil.copy2(image, inbox / image.name)
        print(f"copied {len(labels)} validation images into {inbox}", flush=True)

        # Step 4: wait for the daemon, then stop it the way a service manager would.
        wait_until_sorted(daemon, inbox, output, len(labels), env, args.timeout)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)

    # Step 5: report.
    placed = sorted_files(output)
    rows = count_rows(env)
    left = len(visible_files(inbox))
    correct = sum(1 for name, category in placed.items() if labels.get(name) == category)
    print("\nPer-category counts:")
    for category, count in sorted(Counter(placed.values()).items()):
        print(f"  {category:<12} {count:>4}")
    print(f"\nImages sorted:       {len(placed)}")
    print(f"Prediction rows:     {rows}")
    print(f"Left in the inbox:   {left}")
    print(f"Accuracy vs labels:  {correct / max(len(labels), 1):.3f}")
    print(f"Demo time:           {time.monotonic() - started:.0f} s")
    run_sortbox(["predictions", "list", "--limit", "10"], env)

    complete = len(placed) == len(labels) and rows == len(labels) and left == 0
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
