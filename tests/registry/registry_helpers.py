"""Builders shared by the registry tests: stand-in artifacts, a file-reading model check and versions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from registry import MetricValue, NewPrediction, NewVersion, PredictionStatus

CLASS_NAMES = ("pants", "shirt", "shoes")


def write_artifact(folder: Path, name: str = "model.json", outputs: int = len(CLASS_NAMES)) -> Path:
    """Write a small stand-in model file whose content states its output count."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"outputs": outputs, "name": name}))
    return path


def json_check_model(path: str, class_count: int) -> None:
    """Read a file from `write_artifact` and raise unless it has `class_count` outputs."""
    outputs = json.loads(Path(path).read_text())["outputs"]
    if outputs != class_count:
        raise ValueError(f"model has {outputs} outputs but {class_count} classes")


def new_version(
    artifact: Path,
    *,
    model_name: str = "default",
    accuracy: float = 0.8,
    **changes,
) -> NewVersion:
    """Build a NewVersion with realistic metadata; keyword arguments override fields."""
    started = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    fields = dict(
        model_name=model_name,
        artifact_path=str(artifact),
        class_names=CLASS_NAMES,
        backbone="xception",
        image_size=(150, 150),
        preprocessing="xception-caffe-v1",
        hyperparameters={"learning_rate": 0.001, "inner_size": 100, "dropout": 0.2},
        dataset_fingerprint="sha256:" + "0" * 64,
        training_started_at=started,
        training_finished_at=started + timedelta(minutes=5),
        software_versions={"tensorflow": "2.21.0", "keras": "3.15.0"},
        metrics=(
            MetricValue("validation", "accuracy", accuracy),
            MetricValue("validation", "loss", 1 - accuracy),
            MetricValue("validation", "accuracy", accuracy - 0.1, epoch=1),
            MetricValue("validation", "accuracy", accuracy, epoch=2),
            MetricValue("validation", "accuracy", accuracy + 0.05, class_name="shirt"),
        ),
    )
    fields.update(changes)
    return NewVersion(**fields)


def classified_prediction(
    version_id: int, index: int, name: str, category: str = "shirt", confidence: float = 0.9
) -> NewPrediction:
    """Build a classified prediction of file `name`; `index` makes its content hash unique."""
    return NewPrediction(
        content_sha256=f"{index:064x}",
        file_name=name,
        source_path=f"/inbox/{name}",
        destination_path=f"/sorted/{category}/{name}",
        status=PredictionStatus.CLASSIFIED,
        model_version_id=version_id,
        category=category,
        confidence=confidence,
        top_k=((category, confidence),),
    )
