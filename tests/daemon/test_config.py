"""Settings: validation, the TOML file (dashed or underscored keys) and flag precedence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.config import DuplicatePolicy, build_settings
from daemon.errors import ConfigError


def test_flags_build_settings(tmp_path: Path):
    (tmp_path / "in").mkdir()

    settings = build_settings(None, {"inbox": tmp_path / "in", "output": tmp_path / "out",
                                     "max_batch_size": 8, "once": None})

    assert settings.inbox == (tmp_path / "in").resolve()
    assert settings.output.is_dir()
    assert settings.max_batch_size == 8
    assert settings.once is False


def test_config_file_with_dashed_and_underscored_keys(tmp_path: Path):
    (tmp_path / "in").mkdir()
    config = tmp_path / "watch.toml"
    config.write_text(
        'inbox = "in"\noutput = "out"\nmax-batch-size = 4\nsettle_ms = 250\n'
        'duplicates = "reclassify"\nmodel = "shoes"\n'
    )

    settings = build_settings(config, {"max_batch_size": 16, "settle_ms": None})

    assert settings.inbox == (tmp_path / "in").resolve()
    assert settings.output == (tmp_path / "out").resolve()
    assert settings.max_batch_size == 16
    assert settings.settle_ms == 250
    assert settings.duplicates is DuplicatePolicy.RECLASSIFY
    assert settings.model_name == "shoes"


def test_config_file_unknown_keys_are_named(tmp_path: Path):
    config = tmp_path / "watch.toml"
    config.write_text('inbox = "in"\nbatch-size = 4\ncolour = "red"\n')

    with pytest.raises(ConfigError, match="unknown keys 'batch-size', 'colour'"):
        build_settings(config, {})


def test_config_file_key_given_twice(tmp_path: Path):
    config = tmp_path / "watch.toml"
    config.write_text("settle-ms = 1\nsettle_ms = 2\n")

    with pytest.raises(ConfigError, match="twice"):
        build_settings(config, {})


def test_config_file_invalid_toml(tmp_path: Path):
    config = tmp_path / "watch.toml"
    config.write_text("inbox = \n")

    with pytest.raises(ConfigError, match="not valid TOML"):
        build_settings(config, {})


def test_missing_inbox_is_reported(tmp_path: Path):
    with pytest.raises(ConfigError, match="missing --inbox"):
        build_settings(None, {"output": tmp_path})
    with pytest.raises(ConfigError, match="is not a folder"):
        build_settings(None, {"inbox": tmp_path / "nope", "output": tmp_path / "out"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_batch_size", 0, "--max-batch-size must be above zero"),
        ("settle_ms", -1, "--settle-ms must be zero or more"),
        ("review_below", 1.5, "--review-below is a probability"),
        ("decode_workers", 2.5, "--decode-workers must be a whole number"),
        ("duplicates", "skip", "--duplicates must be one of reuse, reclassify"),
        ("once", "yes", "--once must be true or false"),
    ],
)
def test_invalid_values_are_rejected(tmp_path: Path, name, value, message):
    (tmp_path / "in").mkdir()

    with pytest.raises(ConfigError, match=message):
        build_settings(None, {"inbox": tmp_path / "in", "output": tmp_path / "out", name: value})


def test_output_inside_recursive_inbox_is_rejected(tmp_path: Path):
    inbox = tmp_path / "in"
    inbox.mkdir()

    with pytest.raises(ConfigError, match="inside the inbox"):
        build_settings(None, {"inbox": inbox, "output": inbox / "sorted", "recursive": True})
    with pytest.raises(ConfigError, match="is the inbox itself"):
        build_settings(None, {"inbox": inbox, "output": inbox})
    with pytest.raises(ConfigError, match="inside --output"):
        build_settings(None, {"inbox": inbox, "output": tmp_path})


def test_output_inside_flat_inbox_is_allowed(tmp_path: Path):
    inbox = tmp_path / "in"
    inbox.mkdir()

    settings = build_settings(None, {"inbox": inbox, "output": inbox / "sorted"})

    assert settings.output == (inbox / "sorted").resolve()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('max-batch-size = "lots"', "--max-batch-size must be a number, got 'lots' (from key "
         "'max-batch-size' of config file"),
        ("max_wait_ms = -5", "--max-wait-ms must be zero or more, got -5 (from key 'max-wait-ms'"),
        ("polling = 1", "--polling must be true or false, got 1 (from key 'polling'"),
        ("model = 7", "--model must be a registered model name, got 7 (from key 'model'"),
        ('inbox = "missing"', "is not a folder; create it or fix --inbox (from key 'inbox'"),
    ],
)
def test_config_file_bad_value_names_file_and_key(tmp_path: Path, line, message):
    (tmp_path / "in").mkdir()
    config = tmp_path / "watch.toml"
    defaults = {"inbox": 'inbox = "in"', "output": 'output = "out"'}
    defaults[line.split(" ")[0]] = line
    config.write_text("\n".join(defaults.values()) + "\n")

    with pytest.raises(ConfigError) as caught:
        build_settings(config, {})

    assert message in str(caught.value)
    assert os.fspath(config) in str(caught.value)


def test_flag_overrides_bad_config_value(tmp_path: Path):
    (tmp_path / "in").mkdir()
    config = tmp_path / "watch.toml"
    config.write_text('inbox = "in"\noutput = "out"\nmax-batch-size = "lots"\n')

    settings = build_settings(config, {"max_batch_size": 8})

    assert settings.max_batch_size == 8


def test_bad_flag_value_does_not_blame_config(tmp_path: Path):
    (tmp_path / "in").mkdir()
    config = tmp_path / "watch.toml"
    config.write_text('inbox = "in"\noutput = "out"\n')

    with pytest.raises(ConfigError) as caught:
        build_settings(config, {"max_batch_size": 0})

    assert "config file" not in str(caught.value)
