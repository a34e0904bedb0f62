"""Checks of the decoded dataset that run before TensorFlow: memory and classes left without images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import make_dataset, write_jpeg
from trainer.config import TrainConfig
from trainer.dataset import scan_dataset
from trainer.errors import ConfigError, DatasetError
from trainer.memory import check_decoded_memory, decoded_bytes
from trainer.prepare import decode_all


def tiny_config(data: Path, **changes) -> TrainConfig:
    values = dict(backbone="mobilenet_v2", weights="none", image_size=(32, 32))
    values.update(changes)
    return TrainConfig(data, **values)


def break_folder(folder: Path) -> None:
    """Replace every image of `folder` with text under the same name."""
    for path in folder.iterdir():
        path.write_text("this is text, not a JPEG")


def test_decoded_bytes_counts_every_split(tiny_dataset: Path):
    scan = scan_dataset(tiny_dataset)

    assert decoded_bytes(scan, (32, 40)) == 33 * 32 * 40 * 3


def test_memory_check_rejects_large_split(tiny_dataset: Path):
    scan = scan_dataset(tiny_dataset)

    with pytest.raises(ConfigError) as raised:
        check_decoded_memory(scan, (512, 512), available=lambda: 40 * 2**20)

    message = str(raised.value)
    assert "image size 512x512 needs 0.02 GiB" in message
    assert "33 images" in message
    assert "0.04 GiB of available memory" in message
    assert "smaller --image-size" in message


def test_memory_check_passes_or_skips(tiny_dataset: Path):
    scan = scan_dataset(tiny_dataset)

    check_decoded_memory(scan, (32, 32), available=lambda: 2**30)
    check_decoded_memory(scan, (2048, 2048), available=lambda: None)


def test_decode_all_checks_memory(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch):
    import trainer.memory

    monkeypatch.setattr(trainer.memory, "available_memory", lambda: 1000)

    with pytest.raises(ConfigError, match="available memory"):
        decode_all(scan_dataset(tiny_dataset), tiny_config(tiny_dataset))


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_undecodable_class_rejected(tmp_path: Path, split: str):
    data = make_dataset(tmp_path / "data", splits={"train": 2, "validation": 1, "test": 1})
    broken = data / split / "green"
    break_folder(broken)

    with pytest.raises(DatasetError) as raised:
        decode_all(scan_dataset(data), tiny_config(data))

    assert f"{str(broken)!r} has no decodable {split} images" in str(raised.value)


def test_flat_class_without_validation_image(tmp_path: Path):
    data = make_dataset(tmp_path / "flat", splits={"": 4})
    lonely = data / "yellow"
    write_jpeg(lonely / "y.jpg", (250, 250, 0), 9)

    with pytest.raises(DatasetError) as raised:
        decode_all(scan_dataset(data, validation_split=0.25), tiny_config(data, validation_split=0.25))

    assert "class 'yellow' has no decodable validation images after --validation-split" in str(raised.value)
    assert str(lonely) in str(raised.value)


def test_partly_broken_class_decodes(tiny_dataset: Path):
    (tiny_dataset / "validation" / "red" / "red_000.jpg").write_text("not a JPEG")

    decoded = decode_all(scan_dataset(tiny_dataset), tiny_config(tiny_dataset))

    assert len(decoded["validation"].labels) == 8
    assert [item.relative_path for item in decoded["validation"].skipped] == ["validation/red/red_000.jpg"]
