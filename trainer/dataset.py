"""Scan a folder-per-class dataset without TensorFlow: layout, class names, files and fingerprint.

Two layouts are accepted. The split layout has `train/`, `validation/` and an optional `test/`,
each with one folder per class. The flat layout has the class folders directly (or only
`train/`), and `--validation-split` holds out a fraction of each class with a fixed seed.

Class names are sorted by Unicode code point, the order Keras' `image_dataset_from_directory`
uses, and label `i` of a model is `class_names[i]`.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import SPLIT_SEED
from trainer.errors import ConfigError, DatasetError
from vision.images import is_candidate_image_name

logger = logging.getLogger(__name__)

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLIT_NAMES = (TRAIN, VALIDATION, TEST)

# Files that operating systems and file managers leave in folders; compared in lower case.
SYSTEM_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})


@dataclass(frozen=True)
class ImageRecord:
    """One image file of the dataset and its label."""

    path: Path
    relative_path: str
    label: int
    sha256: str


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of training, with the reason in a few words."""

    relative_path: str
    reason: str


@dataclass(frozen=True)
class DatasetScan:
    """Result of scanning a dataset folder: classes, files per split and what was ignored."""

    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, tuple[ImageRecord, ...]]
    ignored: tuple[SkippedFile, ...] = ()
    layout: str = "split"
    split_counts: dict[str, int] = field(default_factory=dict)
    split_folders: dict[str, Path] = field(default_factory=dict)

    def class_folder(self, split: str, class_name: str) -> Path:
        """Return the folder that contains the images of `class_name` in `split`."""
        return self.split_folders.get(split, self.root / split) / class_name

    @property
    def fingerprint(self) -> str:
        """Return the sha256 over the sorted (relative path, content sha256) of every image."""
        return fingerprint_of(record for records in self.splits.values() for record in records)


def fingerprint_of(records) -> str:
    """Return the sha256 over sorted (relative path, content sha256) pairs of `records`."""
    digest = hashlib.sha256()
    for relative_path, sha256 in sorted((r.relative_path, r.sha256) for r in records):
        digest.update(f"{relative_path}\t{sha256}\n".encode("utf-8"))
    return digest.hexdigest()


def scan_dataset(root: Path, validation_split: float | None = None) -> DatasetScan:
    """Scan `root`, check its layout and class names, and hash every candidate image.

    Args:
        root: The dataset folder.
        validation_split: Fraction of each class held out for validation when the dataset has
            no `validation/` folder. Defaults to None.

    Raises:
        DatasetError: The folder is missing, has fewer than two classes, an empty or badly
            named class folder, or different classes in different splits.
        ConfigError: `validation_split` is missing or contradicts the layout.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {str(root)!r} not found: pass an existing folder to --data")

    ignored: list[SkippedFile] = []
    has_validation = (root / VALIDATION).is_dir()
    if has_validation:
        if validation_split is not None:
            raise ConfigError(
                f"dataset {str(root)!r} already has a validation/ folder: drop --validation-split"
            )
        if not (root / TRAIN).is_dir():
            raise DatasetError(f"dataset {str(root)!r} has validation/ but no train/ folder: add train/")
        split_roots = {name: root / name for name in SPLIT_NAMES if (root / name).is_dir()}
        layout = "split"
    else:
        if validation_split is None:
            raise DatasetError(
                f"dataset {str(root)!r} has no validation/ folder: add train/ and validation/ "
                "folders, or pass --validation-split 0.2 to hold out a fifth of each class"
            )
        split_roots = {TRAIN: root / TRAIN if (root / TRAIN).is_dir() else root}
        layout = "flat"

    class_folders = {
        name: _class_folders(folder, root, ignored) for name, folder in split_roots.items()
    }
    class_names = _check_class_names(class_folders, root)

    files: dict[str, tuple[ImageRecord, ...]] = {}
    for split, folders in class_folders.items():
        records: list[ImageRecord] = []
        for label, class_name in enumerate(class_names):
            records.extend(_class_images(folders[class_name], root, label, ignored))
        files[split] = tuple(records)

    split_folders = dict(split_roots)
    if layout == "flat":
        files = _hold_out(files[TRAIN], validation_split, len(class_names))
        # Held-out images stay in the class folders, beside the training images.
        split_folders[VALIDATION] = split_roots[TRAIN]

    return DatasetScan(
        root=root,
        class_names=class_names,
        splits=files,
        ignored=tuple(sorted(ignored, key=lambda item: item.relative_path)),
        layout=layout,
        split_counts={split: len(records) for split, records in files.items()},
        split_folders=split_folders,
    )


def is_hidden_or_system(name: str) -> bool:
    """True for dot files and folders (`.DS_Store`, `._photo.jpg`) and OS files like Thumbs.db."""
    return name.startswith(".") or name.lower() in SYSTEM_FILE_NAMES


def check_class_name(name: str, folder: Path) -> None:
    """Reject a class name that cannot be used as an output folder name.

    The daemon creates OUTPUT/<class name>/ and reserves names starting with `_` for its own
    `_review` and `_failed` folders.
    """
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif "/" in name or "\\" in name or "\0" in name:
        problem = "it contains a path separator"
    elif ".." in name:
        problem = "it contains '..'"
    elif name.startswith("_"):
        problem = "names starting with '_' are reserved for the daemon's _review and _failed folders"
    if problem:
        raise DatasetError(
            f"invalid class folder {str(folder)!r}: {problem}; rename the folder"
        )


def _class_folders(split_root: Path, root: Path, ignored: list[SkippedFile]) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for entry in sorted(split_root.iterdir(), key=lambda path: path.name):
        relative = entry.relative_to(root).as_posix()
        if is_hidden_or_system(entry.name):
            ignored.append(SkippedFile(relative, "hidden or system entry"))
            continue
        if not entry.is_dir():
            # Files beside the class folders (a README, a LICENSE) are not images of any class.
            ignored.append(SkippedFile(relative, "not inside a class folder"))
            continue
        check_class_name(entry.name, entry)
        folders[entry.name] = entry
    return folders


def _check_class_names(class_folders: dict[str, dict[str, Path]], root: Path) -> tuple[str, ...]:
    reference_split = TRAIN
    reference = set(class_folders[reference_split])
    if len(reference) < 2:
        raise DatasetError(
            f"dataset {str(root)!r} has {len(reference)} class folder(s) in "
            f"{reference_split}: at least two classes are needed; add one folder per class"
        )
    for split, folders in class_folders.items():
        names = set(folders)
        if names == reference:
            continue
        missing = ", ".join(sorted(reference - names)) or "none"
        extra = ", ".join(sorted(names - reference)) or "none"
        raise DatasetError(
            f"split {split}/ of {str(root)!r} has different classes than {reference_split}/ "
            f"(missing: {missing}; extra: {extra}): use the same class folders in every split"
        )

    # Python sorts str by code point, which is the order Keras uses for class folders.
    return tuple(sorted(reference))


def _class_images(
    folder: Path, root: Path, label: int, ignored: list[SkippedFile]
) -> list[ImageRecord]:
    records: list[ImageRecord] = []
    ignored_here = 0
    for path in sorted(_walk_files(folder, root, ignored)):
        relative = path.relative_to(root).as_posix()
        if is_hidden_or_system(path.name):
            ignored.append(SkippedFile(relative, "hidden or system file"))
            ignored_here += 1
            continue
        if not is_candidate_image_name(path.name):
            ignored.append(SkippedFile(relative, "not an image file name"))
            ignored_here += 1
            continue
        try:
            content_sha256 = _sha256_file(path)
        except OSError as error:
            # An unreadable file is left out like an undecodable one instead of stopping the scan.
            ignored.append(SkippedFile(relative, f"not readable ({error.strerror or error})"))
            ignored_here += 1
            continue
        records.append(ImageRecord(path, relative, label, content_sha256))

    if not records:
        detail = f" ({ignored_here} other file(s) ignored)" if ignored_here else ""
        raise DatasetError(
            f"class folder {str(folder)!r} contains no images{detail}: add images or remove the folder"
        )
    return records


def _walk_files(folder: Path, root: Path, ignored: list[SkippedFile]):
    """Yield the files under `folder`, not entering hidden folders (which are counted)."""
    for entry in folder.iterdir():
        if entry.is_dir():
            if is_hidden_or_system(entry.name):
                ignored.append(SkippedFile(entry.relative_to(root).as_posix(), "hidden folder"))
                continue
            yield from _walk_files(entry, root, ignored)
        elif entry.is_file():
            yield entry
        elif entry.is_symlink():
            # is_dir() and is_file() follow links, so only a link whose target is missing (or
            # a link loop) gets here.
            ignored.append(SkippedFile(entry.relative_to(root).as_posix(), "broken symbolic link"))
        else:
            ignored.append(SkippedFile(entry.relative_to(root).as_posix(), "not a regular file"))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hold_out(
    records: tuple[ImageRecord, ...], fraction: float, class_count: int
) -> dict[str, tuple[ImageRecord, ...]]:
    """Split each class into train and validation with the fixed SPLIT_SEED."""
    rng = random.Random(SPLIT_SEED)
    train: list[ImageRecord] = []
    validation: list[ImageRecord] = []
    for label in range(class_count):
        members = sorted((r for r in records if r.label == label), key=lambda r: r.relative_path)
        rng.shuffle(members)

        # Every class with two or more images keeps at least one image on each side.
        count = round(len(members) * fraction)
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        validation.extend(members[:count])
        train.extend(members[count:])
    return {TRAIN: tuple(train), VALIDATION: tuple(validation)}
