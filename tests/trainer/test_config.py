"""Option parsing and validation that runs before TensorFlow is imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import TrainConfig, parse_image_size, parse_unfreeze, validate_config
from trainer.errors import ConfigError, WeightsError


@pytest.mark.parametrize("text, expected", [("224", (224, 224)), ("160x200", (160, 200)), (" 96X128 ", (96, 128))])
def test_parse_image_size(text: str, expected: tuple[int, int]):
    assert parse_image_size(text) == expected


@pytest.mark.parametrize("text", ["", "x", "12x", "-3", "1.5"])
def test_parse_image_size_invalid(text: str):
    with pytest.raises(ConfigError, match="invalid image size"):
        parse_image_size(text)


def test_parse_unfreeze_fraction_and_layer():
    assert parse_unfreeze("0.25").fraction == 0.25
    assert parse_unfreeze("block_16_expand").layer == "block_16_expand"


@pytest.mark.parametrize("text", ["0", "1.5", "-0.1"])
def test_parse_unfreeze_out_of_range(text: str):
    with pytest.raises(ConfigError, match="must be in"):
        parse_unfreeze(text)


def test_native_image_size_per_backbone(tmp_path: Path):
    assert TrainConfig(tmp_path).resolved_image_size == (299, 299)
    assert TrainConfig(tmp_path, backbone="mobilenet_v2").resolved_image_size == (224, 224)
    assert TrainConfig(tmp_path, image_size=(32, 48)).resolved_image_size == (32, 48)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"backbone": "vgg16"}, "unknown backbone 'vgg16'"),
        ({"image_size": (32, 32)}, "too small for xception"),
        ({"dropout": 1.0}, "invalid --dropout"),
        ({"learning_rate": 0.0}, "invalid --learning-rate"),
        ({"fine_tune_epochs": 2, "weights": "none"}, "needs a pretrained base"),
        ({"validation_split": 1.0}, "invalid --validation-split"),
    ],
)
def test_validate_config_rejects(tmp_path: Path, changes: dict, message: str):
    with pytest.raises(ConfigError) as raised:
        validate_config(TrainConfig(tmp_path, **changes))

    assert message in str(raised.value)


def test_missing_weights_file(tmp_path: Path):
    missing = tmp_path / "base.weights.h5"

    with pytest.raises(WeightsError) as raised:
        validate_config(TrainConfig(tmp_path, weights=str(missing)))

    assert str(missing) in str(raised.value)
    assert "--weights" in str(raised.value)


def test_weights_file_wrong_suffix(tmp_path: Path):
    wrong = tmp_path / "base.h5"
    wrong.write_bytes(b"\0")

    with pytest.raises(WeightsError, match="not a Keras .weights.h5 file"):
        validate_config(TrainConfig(tmp_path, weights=str(wrong)))


def test_hyperparameters_are_json_ready(tmp_path: Path):
    values = TrainConfig(tmp_path, backbone="resnet50").hyperparameters()

    assert values["image_size"] == [224, 224]
    assert values["unfreeze"] == "0.2"
    assert values["data_dir"] == str(tmp_path.resolve())
    assert values["augmentation"]["rotation"] == 0.0


def test_image_size_too_large(tmp_path: Path):
    config = TrainConfig(tmp_path, backbone="mobilenet_v2", image_size=(100000, 100000))

    with pytest.raises(ConfigError) as raised:
        validate_config(config)

    assert "100000x100000 is too large" in str(raised.value)
    assert "at most 2048" in str(raised.value)
    assert "--image-size 224" in str(raised.value)


def test_largest_image_size_accepted(tmp_path: Path):
    validate_config(TrainConfig(tmp_path, backbone="mobilenet_v2", image_size=(2048, 32)))


def test_weights_folder_rejected(tmp_path: Path):
    folder = tmp_path / "ds"
    folder.mkdir()

    with pytest.raises(WeightsError) as raised:
        validate_config(TrainConfig(tmp_path, weights=str(folder)))

    assert f"{str(folder)!r} is a folder" in str(raised.value)
    assert ".weights.h5" in str(raised.value)


@pytest.mark.parametrize("text, keyword", [("NONE", "none"), ("None", "none"), (" ImageNet ", "imagenet")])
def test_weights_keywords_any_case(tmp_path: Path, text: str, keyword: str):
    config = TrainConfig(tmp_path, weights=text)

    validate_config(config)

    assert config.weights == keyword
    assert config.weights_file is None
