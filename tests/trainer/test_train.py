"""End-to-end training through the library on tiny real datasets and real tiny Keras models.

MobileNetV2 at 32x32 pixels is the base, with random weights or a saved random weights file
standing in for ImageNet ones. These tests check what a run writes and registers, not how well it
learns; the test on the shared clothing dataset checks accuracy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from registry import PRODUCTION, Registry, VersionStatus
from tests.trainer.conftest import write_jpeg
from trainer.config import Augmentation, TrainConfig
from trainer.errors import TrainingInterrupted
from trainer.report import format_train_outcome
from trainer.run import train_and_register


@pytest.fixture
def registry(tmp_path: Path):
    opened = Registry.open(home=tmp_path / "home")
    yield opened
    opened.close()


def tiny_config(data: Path, **changes) -> TrainConfig:
    values = dict(
        backbone="mobilenet_v2", weights="none", image_size=(32, 32), epochs=1, batch_size=8, seed=3,
        show_progress=False,
    )
    values.update(changes)
    return TrainConfig(data, **values)


def random_weights_file(tmp_path: Path) -> Path:
    """Save a seeded random MobileNetV2 base as a weights file, a stand-in for a pretrained one."""
    import keras

    keras.utils.set_random_seed(11)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "random_mobilenet_v2.weights.h5"
    base.save_weights(path)
    return path


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def add_bad_files(data: Path) -> None:
    red = data / "train" / "red"
    truncated = write_jpeg(red / "truncated.jpg", (200, 0, 0), 50, size=64)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (red / "notes.jpg").write_text("this is text, not a JPEG")
    (red / "._red_001.jpg").write_bytes(b"\0\5\26\7\0\2\0\0Mac OS X")
    (red / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    write_jpeg(red / ".hidden" / "secret.jpg", (200, 0, 0), 51)


def test_train_registers_version(tiny_dataset: Path, registry, caplog: pytest.LogCaptureFixture):
    add_bad_files(tiny_dataset)
    caplog.set_level(logging.DEBUG, logger="trainer")

    outcome = train_and_register(tiny_config(tiny_dataset, epochs=2), registry, progress=None)

    # The report lists each undecodable file once; the log keeps only a debug trace of it.
    lines = format_train_outcome(outcome)
    assert sum("notes.jpg" in line for line in lines) == 1
    assert sum("truncated.jpg" in line for line in lines) == 1
    file_records = [r for r in caplog.records if "notes.jpg" in r.getMessage()]
    assert [r.levelno for r in file_records] == [logging.DEBUG]

    skipped = {item.relative_path: item.reason for item in outcome.skipped}
    assert sorted(skipped) == ["train/red/notes.jpg", "train/red/truncated.jpg"]
    assert all(skipped.values())
    ignored = {item.relative_path: item.reason for item in outcome.ignored}
    assert ignored == {
        "train/red/.DS_Store": "hidden or system file",
        "train/red/._red_001.jpg": "hidden or system file",
        "train/red/.hidden": "hidden folder",
    }
    assert outcome.split_counts == {"train": 24, "validation": 9}

    version = registry.get_version("default", outcome.version.version)
    assert version.class_names == ("blue", "green", "red")
    assert version.backbone == "mobilenet_v2"
    assert version.image_size == (32, 32)
    assert version.status == VersionStatus.READY
    assert version.artifact_sha256 == sha256_of(str(outcome.artifact))
    assert version.hyperparameters["skipped_files"] == 2
    assert version.hyperparameters["feature_cache"] == "off"
    assert len(version.dataset_fingerprint) == 64
    assert "tensorflow" in version.software_versions

    metrics = registry.get_metrics("default", version.version)
    curve = [m for m in metrics if m.split == "validation" and m.name == "accuracy" and m.epoch]
    assert [m.epoch for m in curve] == [1, 2]
    confusion = [m for m in metrics if m.name.startswith("confusion/")]
    assert sum(m.value for m in confusion) == 9
    assert {m.class_name for m in metrics if m.name == "f1"} == {"blue", "green", "red"}

    kinds = {file.kind for file in registry.get_files("default", version.version)}
    assert {"curves", "confusion", "history"} <= kinds


@pytest.mark.slow
def test_feature_cache_reused(tiny_dataset: Path, registry, tmp_path: Path):
    weights = random_weights_file(tmp_path)
    config = tiny_config(tiny_dataset, backbone="mobilenet_v2", weights=str(weights))

    first = train_and_register(config, registry, progress=None)
    second = train_and_register(config, registry, progress=None)

    assert first.cache_status == "miss"
    assert second.cache_status == "hit"
    cache_folders = list((registry.home / "cache" / "features").iterdir())
    assert len(cache_folders) == 1
    meta = json.loads((cache_folders[0] / "meta.json").read_text())
    assert meta["splits"] == ["train", "validation"]
    assert second.version.dataset_fingerprint == first.version.dataset_fingerprint


@pytest.mark.slow
def test_fine_tune_records_both_stages(tiny_dataset: Path, registry, tmp_path: Path):
    weights = random_weights_file(tmp_path)
    config = tiny_config(
        tiny_dataset, backbone="mobilenet_v2", weights=str(weights), fine_tune_epochs=1,
    )

    outcome = train_and_register(config, registry, progress=None)

    assert [stage.name for stage in outcome.stages] == ["head", "fine_tune"]
    hyperparameters = outcome.version.hyperparameters
    assert hyperparameters["stages"] == ["head", "fine_tune"]
    assert hyperparameters["fine_tune_first_epoch"] == 2
    metrics = registry.get_metrics("default", outcome.version.version)
    epochs = sorted(m.epoch for m in metrics if m.name == "loss" and m.split == "train")
    assert epochs == [1, 2]


@pytest.mark.slow
def test_augmentation_trains_on_pixels(tiny_dataset: Path, registry):
    import keras

    config = tiny_config(tiny_dataset, augmentation=Augmentation(horizontal_flip=True, zoom=0.1))

    outcome = train_and_register(config, registry, progress=None)

    assert outcome.cache_status == "off"
    model = keras.models.load_model(outcome.artifact, safe_mode=True)
    names = [layer.name for layer in model.layers]
    assert "flip" not in names
    assert "zoom" not in names
    assert getattr(model, "optimizer", None) is None
    assert model.output_shape == (None, 3)


@pytest.mark.slow
def test_promote_sets_production(tiny_dataset: Path, registry):
    from vision.inference import check_model

    outcome = train_and_register(
        tiny_config(tiny_dataset), registry, check_model=check_model, promote=True, progress=None
    )

    assert outcome.promotion.new_version == outcome.version.version
    assert registry.get_alias("default", PRODUCTION).version == outcome.version.version


def interrupt_after_first_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the progress callback raise KeyboardInterrupt at the end of epoch 1, like Ctrl-C."""
    import keras

    import trainer.fit

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer.fit, "_progress_callback", lambda *args: CtrlC())


def test_interrupt_keeps_checkpoint(tiny_dataset: Path, registry, monkeypatch):
    interrupt_after_first_epoch(monkeypatch)
    config = tiny_config(tiny_dataset, epochs=3, show_progress=True)

    with pytest.raises(TrainingInterrupted) as raised:
        train_and_register(config, registry, progress=object())

    assert "--register-interrupted" in str(raised.value)
    assert "model.keras" in str(raised.value)
    assert registry.list_versions() == []


def test_interrupt_registers_when_asked(tiny_dataset: Path, registry, monkeypatch):
    from vision.inference import check_model

    interrupt_after_first_epoch(monkeypatch)
    config = tiny_config(tiny_dataset, epochs=3, register_interrupted=True)

    outcome = train_and_register(
        config, registry, check_model=check_model, promote=True, progress=object()
    )

    assert outcome.version.status == VersionStatus.INTERRUPTED
    assert outcome.stages[0].epochs_run == 1
    assert Path(outcome.artifact).is_file()
    assert outcome.promotion is None
    assert outcome.promotion_skipped
    assert registry.get_alias("default", PRODUCTION) is None
    lines = format_train_outcome(outcome)
    assert lines[-1] == (
        "not promoted: --promote does not apply to an interrupted version; check it, then run "
        "`sortbox models promote default 1 --force`"
    )


def test_flat_layout_with_validation_split(tmp_path: Path, registry):
    from tests.trainer.conftest import make_dataset

    data = make_dataset(tmp_path / "flat", splits={"": 10})

    outcome = train_and_register(tiny_config(data, validation_split=0.2), registry, progress=None)

    assert outcome.split_counts == {"train": 24, "validation": 6}
    assert outcome.version.hyperparameters["validation_split"] == 0.2


def test_test_split_evaluated(tmp_path: Path, registry):
    from tests.trainer.conftest import make_dataset

    data = make_dataset(tmp_path / "data", splits={"train": 6, "validation": 2, "test": 2})

    outcome = train_and_register(tiny_config(data), registry, progress=None)

    assert set(outcome.evaluations) == {"validation", "test"}
    metrics = registry.get_metrics("default", outcome.version.version)
    test_metrics = {m.name for m in metrics if m.split == "test"}
    assert {"accuracy", "loss", "precision", "confusion/red"} <= test_metrics
