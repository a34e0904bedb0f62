"""Plain values that the registry's public functions take and return.

ORM rows never leave `registry/`: every public function converts them to these frozen dataclasses,
so callers can keep them after the session closes and cannot change the database by accident.
Times are timezone-aware UTC `datetime` values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class VersionStatus(str, enum.Enum):
    """Lifecycle state of a model version."""

    READY = "ready"
    FAILED = "failed"
    ARCHIVED = "archived"
    INTERRUPTED = "interrupted"


class PredictionStatus(str, enum.Enum):
    """Outcome of one file that the daemon handled."""

    CLASSIFIED = "classified"
    REVIEW = "review"
    FAILED = "failed"
    DUPLICATE = "duplicate"


# Alias that the daemon serves from.
PRODUCTION = "production"

# Model name used when a command is not given one.
DEFAULT_MODEL_NAME = "default"


@dataclass(frozen=True)
class MetricValue:
    """One measured number of a model version.

    `epoch` is set for learning curves and `class_name` for per-class metrics; both are None for a
    summary value such as the final validation accuracy.
    """

    split: str
    name: str
    value: float
    epoch: int | None = None
    class_name: str | None = None


@dataclass(frozen=True)
class ArtifactFile:
    """A file stored beside a model version (the model itself, a plot, a history file)."""

    kind: str
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class NewVersion:
    """Everything the trainer knows about a trained model, before the registry numbers it.

    `artifact_path` is the `.keras` file; the registry computes its sha256 and size itself.
    `extra_files` are (kind, path) pairs such as ("curves", ".../curves.png").
    """

    model_name: str
    artifact_path: str
    class_names: tuple[str, ...]
    backbone: str
    image_size: tuple[int, int]
    preprocessing: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    dataset_fingerprint: str | None = None
    training_started_at: datetime | None = None
    training_finished_at: datetime | None = None
    software_versions: dict[str, str] = field(default_factory=dict)
    parent_version: int | None = None
    status: VersionStatus = VersionStatus.READY
    metrics: tuple[MetricValue, ...] = ()
    extra_files: tuple[tuple[str, str], ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version as stored."""

    id: int
    model_name: str
    version: int
    artifact_uri: str
    artifact_sha256: str
    artifact_size: int
    class_names: tuple[str, ...]
    backbone: str
    image_size: tuple[int, int]
    preprocessing: str
    hyperparameters: dict[str, Any]
    dataset_fingerprint: str | None
    training_started_at: datetime | None
    training_finished_at: datetime | None
    training_seconds: float | None
    software_versions: dict[str, str]
    parent_version: int | None
    status: VersionStatus
    created_at: datetime
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model name with its versions' count and aliases."""

    name: str
    description: str | None
    created_at: datetime
    version_count: int
    aliases: dict[str, int]
    tags: dict[str, str] = field(default_factory=dict)


class AliasAction(str, enum.Enum):
    """Kind of alias move: a promotion, a rollback to the previous version, or a removal."""

    SET = "set"
    ROLLBACK = "rollback"
    UNSET = "unset"


@dataclass(frozen=True)
class AliasChange:
    """One append-only row of alias history. A None version means the alias was unset or new."""

    model_name: str
    alias: str
    previous_version: int | None
    new_version: int | None
    changed_at: datetime
    user: str | None
    reason: str | None
    action: AliasAction = AliasAction.SET


@dataclass(frozen=True)
class NewPrediction:
    """A prediction row the daemon is about to write, before the file is moved.

    `category`, `confidence` and `top_k` are None for a failed file. `top_k` is a list of
    (category, probability) pairs, most likely first.
    """

    content_sha256: str
    file_name: str
    source_path: str
    destination_path: str
    status: PredictionStatus
    model_version_id: int | None = None
    category: str | None = None
    confidence: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    error: str | None = None
    batch_id: str | None = None
    decode_ms: float | None = None
    inference_ms: float | None = None
    duplicate_of: int | None = None


@dataclass(frozen=True)
class Prediction:
    """A stored prediction. `moved_at` stays None until the file reached `destination_path`."""

    id: int
    content_sha256: str
    file_name: str
    source_path: str
    destination_path: str
    status: PredictionStatus
    model_name: str | None
    model_version: int | None
    model_version_id: int | None
    category: str | None
    confidence: float | None
    top_k: tuple[tuple[str, float], ...]
    error: str | None
    batch_id: str | None
    decode_ms: float | None
    inference_ms: float | None
    duplicate_of: int | None
    created_at: datetime
    moved_at: datetime | None


@dataclass(frozen=True)
class PredictionFilter:
    """Conditions for querying predictions; None means "any"."""

    category: str | None = None
    model_name: str | None = None
    model_version: int | None = None
    status: PredictionStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    confidence_below: float | None = None
    name_glob: str | None = None
    limit: int | None = None
    newest_first: bool = True


@dataclass(frozen=True)
class VersionSummary:
    """A version with its headline metric, as `sortbox models list` shows it.

    `validation_accuracy` is the summary ("validation", "accuracy") metric, or the best epoch's
    value when the trainer stored only a curve; None when neither exists.
    """

    version: ModelVersion
    validation_accuracy: float | None


@dataclass(frozen=True)
class VersionDetails:
    """Everything stored about one version: the row, its metrics, files and alias history."""

    version: ModelVersion
    metrics: tuple[MetricValue, ...]
    files: tuple[ArtifactFile, ...]
    alias_history: tuple[AliasChange, ...]


@dataclass(frozen=True)
class MetricComparison:
    """One summary metric of two versions side by side; a value is None where it is missing."""

    split: str
    name: str
    class_name: str | None
    value_a: float | None
    value_b: float | None


@dataclass(frozen=True)
class ArtifactCheck:
    """The outcome of checking one stored file against its recorded sha256 and size.

    `problem` is None when the file is intact, otherwise a sentence naming what differs.
    """

    model_name: str
    version: int
    kind: str
    path: str
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class DaemonHeartbeat:
    """The last state a running daemon reported."""

    daemon_id: str
    pid: int
    host: str
    started_at: datetime
    last_seen_at: datetime
    model_version_id: int | None
    backlog: int
    settings: dict[str, Any]


@dataclass(frozen=True)
class PredictionCount:
    """Number of predictions in one group; fields not grouped on are None."""

    count: int
    model_name: str | None = None
    model_version: int | None = None
    category: str | None = None
    status: PredictionStatus | None = None
    hour: datetime | None = None


@dataclass(frozen=True)
class PredictionStats:
    """Prediction counts of a filter: in total, per model version and category, and per hour."""

    total: int
    by_category: tuple[PredictionCount, ...]
    by_hour: tuple[PredictionCount, ...]
