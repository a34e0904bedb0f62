"""Train, evaluate and register one model: the library entry point of `sortbox train`.

Order of work: validate the options and scan the dataset (no TensorFlow), decode or load cached
features, train the head, optionally fine-tune, evaluate, write the run's files and register the
version. TensorFlow is first imported when a base model is built.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from registry.types import PRODUCTION, AliasChange, ModelVersion, VersionStatus
from trainer.config import TrainConfig, validate_config
from trainer.dataset import TEST, VALIDATION, DatasetScan, SkippedFile, scan_dataset
from trainer.errors import TrainingInterrupted
from trainer.evaluation import Evaluation, evaluate_logits
from trainer.fit import StageResult, predict_features
from trainer.memory import check_decoded_memory
from trainer.prepare import PreparedData, decode_all, prepare_features, prepare_pixels
from trainer.register import RunRecord, new_run_id, register_run, utc_now
from trainer.stages import (
    LazyBase,
    export_model,
    fine_tune,
    join_head,
    train_head_on_features,
    train_head_on_pixels,
)

logger = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    """Result of `train_and_register`: the version (None when not registered) and run details."""

    run_dir: Path
    class_names: tuple[str, ...]
    split_counts: dict[str, int]
    ignored: tuple[SkippedFile, ...]
    skipped: tuple[SkippedFile, ...]
    cache_status: str
    stages: tuple[StageResult, ...] = ()
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    artifact: Path | None = None
    version: ModelVersion | None = None
    promotion: AliasChange | None = None
    interrupted: bool = False
    promotion_skipped: bool = False


def scan_and_validate(config: TrainConfig) -> DatasetScan:
    """Check the options and the dataset without TensorFlow; raises the trainer's errors."""
    validate_config(config)
    return scan_dataset(config.data_dir, config.validation_split)


def train_and_register(
    config: TrainConfig,
    registry,
    *,
    check_model: Callable[[str, int], None] | None = None,
    promote: bool = False,
    progress: TextIO | None = sys.stderr,
) -> TrainOutcome:
    """Train a model with the options of `config`, evaluate it and register it in `registry`.

    Args:
        registry: An open `registry.Registry`; artifacts go under its artifacts folder and the
            feature cache under <home>/cache/features.
        check_model: Loads an artifact and checks its output size, called when promoting.
        promote: Give the new version the production alias right after registration.
        progress: Stream for per-epoch progress, or None for silence. Defaults to stderr.

    Raises:
        ConfigError, DatasetError, WeightsError: Invalid options, dataset or weights, all
            raised before TensorFlow is imported except a weights file that does not fit.
        TrainingInterrupted: Ctrl-C stopped the run and it was not registered.
    """
    scan = scan_and_validate(config)
    if config.fine_tune_epochs:
        # The fine-tune stage decodes pixels even after a feature cache hit, so check now
        # rather than after the head stage.
        check_decoded_memory(scan, config.resolved_image_size)
    started_at = utc_now()
    run_dir = Path(registry.artifacts_dir(config.model_name)) / new_run_id(started_at)
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    class_count = len(scan.class_names)

    lazy_base = LazyBase(config)
    if config.trains_on_cached_features:
        prepared = prepare_features(scan, config, feature_cache_root(registry), lazy_base.make_extractor)
    else:
        prepared = prepare_pixels(scan, config)

    outcome = TrainOutcome(
        run_dir=run_dir,
        class_names=scan.class_names,
        split_counts=prepared.split_counts(),
        ignored=scan.ignored,
        skipped=prepared.skipped,
        cache_status=prepared.cache_status,
    )

    base = lazy_base.get()
    unfreeze_from = _unfreeze_start(base, config)

    # Stage 1: the head, on cached features or through the frozen base on pixels.
    head = None
    if prepared.features is not None:
        head, head_result = train_head_on_features(
            prepared.features, config, class_count, checkpoints / "head.keras", progress
        )
        full = join_head(base, head, config, class_count)
    else:
        full, head_result = train_head_on_pixels(
            base, prepared.pixels, config, class_count, checkpoints / "head.keras", progress
        )
    stages = [head_result]
    _require_checkpoint(head_result, run_dir)

    # Stage 2: the fine-tune of the base's top layers, which needs pixels.
    fine_tuned = False
    if config.fine_tune_epochs and not head_result.interrupted:
        if not prepared.pixels:
            prepared.pixels = decode_all(scan, config)
        tune_result = fine_tune(
            full,
            prepared.pixels,
            config,
            class_count,
            unfreeze_from,
            head_result.best_val_accuracy,
            checkpoints / "fine_tune.keras",
            progress,
        )
        stages.append(tune_result)
        fine_tuned = tune_result.checkpoint is not None

    artifact = run_dir / "model.keras"
    full = export_model(full, config, class_count)
    full.save(artifact)
    outcome.artifact = artifact
    outcome.stages = tuple(stages)
    outcome.interrupted = any(stage.interrupted for stage in stages)

    # The head on cached features gives the joined model's logits, so it evaluates cheaply.
    use_features = prepared.features is not None and not fine_tuned
    outcome.evaluations = _evaluate(full, head if use_features else None, prepared, config)

    if outcome.interrupted and not config.register_interrupted:
        raise TrainingInterrupted(
            f"training interrupted; the best model so far is {str(artifact)!r}: rerun with "
            "--register-interrupted to register an interrupted run"
        )

    record = RunRecord(
        config=config,
        class_names=scan.class_names,
        artifact=artifact,
        stages=outcome.stages,
        evaluations=outcome.evaluations,
        dataset_fingerprint=prepared.fingerprint,
        started_at=started_at,
        finished_at=utc_now(),
        status=VersionStatus.INTERRUPTED if outcome.interrupted else VersionStatus.READY,
        extra_hyperparameters={
            "feature_cache": prepared.cache_status,
            "skipped_files": len(prepared.skipped),
            "ignored_files": len(scan.ignored),
        },
    )
    outcome.version = register_run(registry, record, run_dir)
    if promote and outcome.interrupted:
        # An interrupted run may stop before its best epoch, so --promote never applies to it.
        outcome.promotion_skipped = True
    elif promote:
        outcome.promotion = registry.set_alias(
            config.model_name,
            PRODUCTION,
            outcome.version.version,
            reason="promoted by sortbox train --promote",
            check_model=check_model,
        )
    return outcome


def feature_cache_root(registry) -> Path:
    """Return the folder of the feature cache: <registry home>/cache/features."""
    return Path(registry.home) / "cache" / "features"


def _unfreeze_start(base, config: TrainConfig) -> int:
    """Resolve --unfreeze before any training, so a wrong layer name fails fast."""
    from trainer.model import unfreeze_start

    return unfreeze_start(base, config.unfreeze) if config.fine_tune_epochs else len(base.layers)


def _require_checkpoint(result: StageResult, run_dir: Path) -> None:
    if result.checkpoint is None:
        raise TrainingInterrupted(
            f"training stopped before the first epoch finished; nothing was saved in "
            f"{str(run_dir)!r}: run `sortbox train` again"
        )


def _evaluate(full, head, prepared: PreparedData, config: TrainConfig) -> dict[str, Evaluation]:
    class_names = prepared.scan.class_names
    evaluations = {}
    for split in (VALIDATION, TEST):
        if split not in prepared.scan.splits:
            continue
        if head is not None:
            values = prepared.features.splits[split]
            if len(values.labels) == 0:
                continue
            logits = predict_features(head, values.features)
            labels = values.labels
        else:
            images = prepared.pixels[split]
            if len(images.labels) == 0:
                continue
            logits = full.predict(images.pixels, batch_size=config.batch_size, verbose=0)
            labels = images.labels
        evaluations[split] = evaluate_logits(split, logits, labels, class_names)
    return evaluations

