"""Importing vision must stay cheap: TensorFlow and Keras load only when a model is used."""

from __future__ import annotations

import subprocess
import sys

from tools.shared import REPO_ROOT


def modules_loaded_by(import_line: str, candidates: tuple[str, ...]) -> list[str]:
    """Run `import_line` in a fresh interpreter; return which of `candidates` it imported."""
    code = (
        f"import sys\n{import_line}\n"
        f"print(','.join(name for name in {candidates!r} if name in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return [name for name in completed.stdout.strip().split(",") if name]


def test_import_skips_tensorflow():
    loaded = modules_loaded_by(
        "import vision, vision.images, vision.inference, vision.pixels, vision.errors",
        ("tensorflow", "keras"),
    )

    assert loaded == []


def test_vision_imports_no_other_package():
    loaded = modules_loaded_by(
        "import vision.images, vision.inference", ("registry", "trainer", "daemon", "cli")
    )

    assert loaded == []
