"""Importing vision must stay cheap: TensorFlow and Keras load only when a model is used."""

from __future__ import annotations

import subprocess
import sys

from tools.shared import REPO_ROOT


def test_import_skips_tensorflow():
    code = (
        "import sys\n"
        "import vision, vision.images, vision.inference, vision.pixels, vision.errors\n"
        "heavy = sorted(name for name in ('tensorflow', 'keras') if name in sys.modules)\n"
        "print(','.join(heavy))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == ""


def test_vision_imports_no_other_package():
    code = (
        "import sys\n"
        "import vision.images, vision.inference\n"
        "ours = sorted(name for name in ('registry', 'trainer', 'daemon', 'cli') if name in sys.modules)\n"
        "print(','.join(ours))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == ""
