"""Settings of `sortbox watch`: one frozen dataclass, its validation and the TOML config file.

A config file uses the same keys as the command-line flags, without the leading dashes, written
with dashes or underscores (`max-batch-size = 16` and `max_batch_size = 16` are the same key).
Flags given on the command line override the file. Relative paths in a config file are resolved
against the folder that contains the file, so a systemd unit does not depend on its working folder.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from daemon.errors import ConfigError, InvalidSettingError
from vision.images import DEFAULT_MAX_PIXELS


class DuplicatePolicy(str, enum.Enum):
    """Policy for a file whose content was classified before."""

    REUSE = "reuse"
    RECLASSIFY = "reclassify"


@dataclass(frozen=True)
class WatchSettings:
    """Everything `sortbox watch` needs, validated.

    Args:
        inbox: Folder to watch for incoming images.
        output: Folder that receives `<category>/`, `_review/<category>/` and `_failed/`.
        model_name: Registered model whose `production` alias is served. None means the only
            registered model, or DEFAULT_MODEL_NAME while none is registered.
        once: Process what is in the inbox, wait until it is empty, then exit.
        exit_when_idle: Exit after this many seconds without any file to process; None waits
            forever.
        settle_ms: A file is read only after its size and mtime stayed unchanged this long.
        close_timeout_seconds: A settled file still open for writing, or written and not yet
            closed where the open-writer check cannot tell, is read anyway after this many
            quiet seconds.
        rescan_seconds: Interval of the full inbox scan that catches lost events.
        polling: Use watchdog's polling observer (network mounts) instead of the native one.
        recursive: Watch subfolders of the inbox too.
        max_batch_size: Most files classified in one model call.
        max_wait_ms: Longest time the first file of a batch waits for more files.
        queue_size: Capacity of the event queue and of the set of files waiting to settle.
        decode_workers: Threads that hash and decode files while the model runs.
        duplicates: Policy for content that was classified before.
        review_below: Confidence under which a file goes to `_review/<category>/`; None disables.
        max_pixels: Images with more pixels than this fail before they are decoded.
        model_poll_seconds: Interval of the check for a new `production` version.
        heartbeat_seconds: Interval of the heartbeat row that `sortbox status` reads.
    """

    inbox: Path
    output: Path
    model_name: str | None = None
    once: bool = False
    exit_when_idle: float | None = None
    settle_ms: int = 500
    close_timeout_seconds: float = 30.0
    rescan_seconds: float = 60.0
    polling: bool = False
    recursive: bool = False
    max_batch_size: int = 32
    max_wait_ms: int = 500
    queue_size: int = 10_000
    decode_workers: int = 4
    duplicates: DuplicatePolicy = DuplicatePolicy.REUSE
    review_below: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    model_poll_seconds: float = 5.0
    heartbeat_seconds: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready values, for logs and the heartbeat row."""
        values = dataclasses.asdict(self)
        values["inbox"] = os.fsdecode(self.inbox)
        values["output"] = os.fsdecode(self.output)
        values["duplicates"] = self.duplicates.value
        return values


SETTING_NAMES = frozenset(field.name for field in dataclasses.fields(WatchSettings))


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidSettingError(f"{_flag(name)} must be a number, got {value!r}", setting=name)
    if value < 0 or (value == 0 and not allow_zero):
        limit = "zero or more" if allow_zero else "above zero"
        raise InvalidSettingError(f"{_flag(name)} must be {limit}, got {value!r}", setting=name)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def validate(settings: WatchSettings) -> WatchSettings:
    """Check every value and the inbox/output layout, creating the output folder.

    Raises:
        ConfigError: naming the option, the bad value and what to change.
    """
    for name in ("settle_ms", "close_timeout_seconds", "max_wait_ms"):
        _check_positive(name, getattr(settings, name), allow_zero=True)
    for name in (
        "rescan_seconds",
        "max_batch_size",
        "queue_size",
        "decode_workers",
        "max_pixels",
        "model_poll_seconds",
        "heartbeat_seconds",
    ):
        _check_positive(name, getattr(settings, name))
    for name in ("max_batch_size", "queue_size", "decode_workers", "max_pixels", "settle_ms"):
        if not isinstance(getattr(settings, name), int):
            raise InvalidSettingError(
                f"{_flag(name)} must be a whole number, got {getattr(settings, name)!r}", setting=name
            )
    if settings.exit_when_idle is not None:
        _check_positive("exit_when_idle", settings.exit_when_idle, allow_zero=True)
    if settings.review_below is not None:
        _check_positive("review_below", settings.review_below)
        if settings.review_below > 1:
            raise InvalidSettingError(
                f"--review-below is a probability between 0 and 1, got {settings.review_below!r}",
                setting="review_below",
            )
    try:
        duplicates = DuplicatePolicy(settings.duplicates)
    except ValueError as error:
        choices = ", ".join(policy.value for policy in DuplicatePolicy)
        raise InvalidSettingError(
            f"--duplicates must be one of {choices}, got {settings.duplicates!r}",
            setting="duplicates",
        ) from error
    if settings.model_name is not None and (
        not isinstance(settings.model_name, str) or not settings.model_name.strip()
    ):
        raise InvalidSettingError(
            f"--model must be a registered model name, got {settings.model_name!r}",
            setting="model_name",
        )

    inbox = settings.inbox.expanduser().absolute()
    output = settings.output.expanduser().absolute()
    if not inbox.is_dir():
        raise InvalidSettingError(
            f"inbox {os.fsdecode(inbox)!r} is not a folder; create it or fix --inbox",
            setting="inbox",
        )
    inbox = inbox.resolve()
    output = output.resolve()
    if output == inbox:
        raise ConfigError(
            f"--output {os.fsdecode(output)!r} is the inbox itself; choose a folder outside it"
        )
    if settings.recursive and _is_inside(output, inbox):
        raise ConfigError(
            f"--output {os.fsdecode(output)!r} is inside the inbox, which --recursive watches; "
            "choose an output folder outside the inbox"
        )
    if _is_inside(inbox, output):
        raise ConfigError(
            f"inbox {os.fsdecode(inbox)!r} is inside --output {os.fsdecode(output)!r}; "
            "use separate folders"
        )
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create output folder {os.fsdecode(output)!r}: {error.strerror}; "
            "fix the path or its permissions"
        ) from error

    return dataclasses.replace(settings, inbox=inbox, output=output, duplicates=duplicates)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file into setting names and values, rejecting unknown keys.

    Raises:
        ConfigError: the file is missing, is not valid TOML, has unknown or repeated keys.
    """
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as error:
        raise ConfigError(f"config file {os.fsdecode(path)!r} not found; fix --config") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {os.fsdecode(path)!r} is not valid TOML: {error}") from error

    values: dict[str, Any] = {}
    unknown = []
    for key, value in document.items():
        name = "model_name" if key == "model" else key.replace("-", "_")
        if name not in SETTING_NAMES:
            unknown.append(key)
            continue
        if name in values:
            raise ConfigError(f"config file {os.fsdecode(path)!r} sets {key!r} twice; keep one")
        values[name] = value
    if unknown:
        known = ", ".join(sorted(_flag(name)[2:] for name in SETTING_NAMES if name != "model_name"))
        raise ConfigError(
            f"config file {os.fsdecode(path)!r} has unknown keys {', '.join(map(repr, unknown))}; "
            f"known keys: model, {known}"
        )

    base = path.parent.absolute()
    for name in ("inbox", "output"):
        if name in values:
            if not isinstance(values[name], str):
                raise ConfigError(
                    f"config file {os.fsdecode(path)!r}: key {name!r} must be a path string, "
                    f"got {values[name]!r}"
                )
            values[name] = base / Path(values[name]).expanduser()
    return values


def build_settings(
    config_path: Path | None, overrides: Mapping[str, Any]
) -> WatchSettings:
    """Merge a config file with command-line values (None means "not given") and validate.

    Raises:
        ConfigError: on a bad file, a missing inbox/output, or any invalid value.
    """
    values: dict[str, Any] = read_config_file(config_path) if config_path is not None else {}
    from_file = set(values)
    for name, value in overrides.items():
        if name not in SETTING_NAMES:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value
            from_file.discard(name)

    try:
        return _build_and_validate(values)
    except InvalidSettingError as error:
        if error.setting not in from_file:
            raise
        key = "model" if error.setting == "model_name" else _flag(error.setting)[2:]
        raise InvalidSettingError(
            f"{error} (from key {key!r} of config file {os.fsdecode(config_path)!r}; fix it there "
            f"or override it with {_flag(key)})",
            setting=error.setting,
        ) from error


def _build_and_validate(values: dict[str, Any]) -> WatchSettings:
    for name in ("inbox", "output"):
        if name not in values:
            raise ConfigError(f"missing {_flag(name)}; give it as a flag or in the config file")
        values[name] = Path(values[name])
    for name in ("once", "polling", "recursive"):
        if name in values and not isinstance(values[name], bool):
            raise InvalidSettingError(
                f"{_flag(name)} must be true or false, got {values[name]!r}", setting=name
            )

    return validate(WatchSettings(**values))
