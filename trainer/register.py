"""Write a run's files and register it as a model version with its metrics.

Layout of a run folder, <home>/artifacts/<model name>/<run id>/:
model.keras (the full model from raw pixels), history.json (per-epoch values of every stage),
curves.png, confusion.png, and checkpoints/ with each stage's best epoch.
"""

from __future__ import annotations

import json
import platform
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from registry.types import MetricValue, NewVersion, VersionStatus
from trainer.config import TrainConfig
from trainer.evaluation import Evaluation, curve_metrics, evaluation_metrics
from trainer.fit import StageResult
from trainer.plots import plot_confusion, plot_curves
from vision.images import PREPROCESSING_ID


@dataclass(frozen=True)
class RunRecord:
    """Everything a finished (or interrupted) run hands to the registry."""

    config: TrainConfig
    class_names: tuple[str, ...]
    artifact: Path
    stages: tuple[StageResult, ...]
    evaluations: dict[str, Evaluation]
    dataset_fingerprint: str
    started_at: datetime
    finished_at: datetime
    status: VersionStatus = VersionStatus.READY
    extra_hyperparameters: dict[str, Any] | None = None
    tags: dict[str, str] | None = None


def new_run_id(now: datetime | None = None) -> str:
    """Return a sortable, unique folder name such as 20240601T120000Z-3f9a1c."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def combined_history(stages: tuple[StageResult, ...]) -> dict[str, list[float]]:
    """Concatenate the stages' histories; epochs keep counting across stages."""
    history: dict[str, list[float]] = {}
    for stage in stages:
        for key, values in stage.history.items():
            history.setdefault(key, []).extend(values)
    return history


def best_epoch(stages: tuple[StageResult, ...]) -> int | None:
    """Return the overall epoch (counted across stages) whose checkpoint became the model."""
    offset = 0
    best = None
    for stage in stages:
        if stage.best_epoch is not None:
            best = offset + stage.best_epoch
        offset += stage.epochs_run
    return best


def write_run_files(record: RunRecord, run_dir: Path) -> list[tuple[str, str]]:
    """Write history.json, curves.png and confusion.png; return (kind, path) pairs."""
    history = combined_history(record.stages)
    fine_tune_first = None
    if len(record.stages) > 1:
        fine_tune_first = record.stages[0].epochs_run + 1

    history_path = run_dir / "history.json"
    history_path.write_text(
        json.dumps(
            {
                "stages": [
                    {
                        "name": stage.name,
                        "epochs_run": stage.epochs_run,
                        "best_epoch": stage.best_epoch,
                        "best_val_accuracy": stage.best_val_accuracy,
                        "interrupted": stage.interrupted,
                        "seconds": round(stage.seconds, 3),
                        "history": stage.history,
                    }
                    for stage in record.stages
                ],
                "best_epoch": best_epoch(record.stages),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    files = [("history", str(history_path))]
    files.append(
        ("curves", str(plot_curves(history, run_dir / "curves.png", fine_tune_first_epoch=fine_tune_first)))
    )
    validation = record.evaluations.get("validation")
    if validation is not None:
        confusion = plot_confusion(
            validation.confusion,
            record.class_names,
            run_dir / "confusion.png",
            title=f"validation, accuracy {validation.accuracy:.3f}",
        )
        files.append(("confusion", str(confusion)))
    return files


def software_versions() -> dict[str, str]:
    """Return the versions that can change a trained model's numbers."""
    versions = {"python": platform.python_version()}
    for package in ("sortbox", "tensorflow", "keras", "numpy", "pillow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_new_version(record: RunRecord, extra_files: list[tuple[str, str]]) -> NewVersion:
    """Assemble the NewVersion of a run: hyperparameters, metrics, files and lineage."""
    config = record.config
    stages = record.stages
    hyperparameters = config.hyperparameters()
    hyperparameters["stages"] = [stage.name for stage in stages]
    if len(stages) > 1:
        hyperparameters["fine_tune_first_epoch"] = stages[0].epochs_run + 1
    hyperparameters.update(record.extra_hyperparameters or {})

    metrics: list[MetricValue] = curve_metrics(combined_history(stages))
    overall_best = best_epoch(stages)
    if overall_best is not None:
        metrics.append(MetricValue("validation", "best_epoch", float(overall_best)))
    for evaluation in record.evaluations.values():
        metrics.extend(evaluation_metrics(evaluation))

    return NewVersion(
        model_name=config.model_name,
        artifact_path=str(record.artifact),
        class_names=record.class_names,
        backbone=config.backbone,
        image_size=config.resolved_image_size,
        preprocessing=PREPROCESSING_ID,
        hyperparameters=hyperparameters,
        dataset_fingerprint=record.dataset_fingerprint,
        training_started_at=record.started_at,
        training_finished_at=record.finished_at,
        software_versions=software_versions(),
        status=record.status,
        metrics=tuple(metrics),
        extra_files=tuple(extra_files),
        tags=dict(record.tags or {}),
    )


def register_run(registry, record: RunRecord, run_dir: Path):
    """Write the run's files and register the version; returns the ModelVersion."""
    files = write_run_files(record, run_dir)
    return registry.register_version(build_new_version(record, files))
