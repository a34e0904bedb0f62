"""Hyperparameter sweep: one head per combination of values, all on the same cached features.

The base's features are computed (or loaded from the cache) once, so each trial costs only the
training of a small dense head. Every trial is registered with its history; the trial with the
best validation accuracy gets the tag sweep_best=true.
"""

from __future__ import annotations

import itertools
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from registry.types import ModelVersion, VersionStatus
from trainer.config import TrainConfig, validate_config
from trainer.dataset import TEST, VALIDATION, SkippedFile, scan_dataset
from trainer.errors import ConfigError
from trainer.evaluation import Evaluation, evaluate_logits
from trainer.fit import StageResult, predict_features
from trainer.plots import plot_sweep
from trainer.prepare import prepare_features
from trainer.register import RunRecord, new_run_id, register_run, utc_now
from trainer.run import feature_cache_root
from trainer.stages import LazyBase, join_head, train_head_on_features

logger = logging.getLogger(__name__)

# Tunable TrainConfig fields, in the order trials are enumerated and labelled.
SWEPT_FIELDS = ("learning_rate", "inner_size", "dropout")
LABELS = {"learning_rate": "lr", "inner_size": "inner", "dropout": "dropout"}


@dataclass
class Trial:
    """One combination of hyperparameters and what training it gave."""

    number: int
    values: dict[str, Any]
    stage: StageResult | None = None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    record: RunRecord | None = None
    version: ModelVersion | None = None

    @property
    def label(self) -> str:
        return " ".join(f"{LABELS[name]}={self.values[name]:g}" for name in SWEPT_FIELDS)


@dataclass
class SweepOutcome:
    """Every trial, the index of the best one and where the comparison plot is."""

    sweep_id: str
    sweep_dir: Path
    trials: list[Trial]
    best_index: int | None
    plot: Path | None
    cache_status: str
    class_names: tuple[str, ...]
    split_counts: dict[str, int]
    ignored: tuple[SkippedFile, ...]
    skipped: tuple[SkippedFile, ...]


def expand_grid(grid: dict[str, tuple]) -> list[dict[str, Any]]:
    """Return the cartesian product of the listed values, first field varying slowest."""
    unknown = set(grid) - set(SWEPT_FIELDS)
    if unknown:
        raise ConfigError(f"cannot sweep {', '.join(sorted(unknown))}: sweep only {', '.join(SWEPT_FIELDS)}")
    lists = [tuple(grid[name]) for name in SWEPT_FIELDS]
    return [dict(zip(SWEPT_FIELDS, values)) for values in itertools.product(*lists)]


def run_sweep(
    config: TrainConfig,
    grid: dict[str, tuple],
    registry,
    *,
    progress: TextIO | None = sys.stderr,
) -> SweepOutcome:
    """Train and register one head per combination in `grid`, starting from `config`.

    Raises:
        ConfigError: A value of the grid is invalid, or `config` turns augmentation on.
    """
    combinations = expand_grid(grid)
    configs = [replace(config, **values) for values in combinations]
    for trial_config in configs:
        validate_config(trial_config)
    if not config.trains_on_cached_features:
        raise ConfigError("a sweep trains on cached features: turn augmentation off and keep the cache on")
    scan = scan_dataset(config.data_dir, config.validation_split)
    class_count = len(scan.class_names)

    sweep_id = new_run_id()
    sweep_dir = Path(registry.artifacts_dir(config.model_name)) / f"sweep-{sweep_id}"
    sweep_dir.mkdir(parents=True, exist_ok=True)

    lazy_base = LazyBase(config)
    prepared = prepare_features(scan, config, feature_cache_root(registry), lazy_base.make_extractor)
    trials = [Trial(number, values) for number, values in enumerate(combinations, start=1)]

    for trial, trial_config in zip(trials, configs):
        if progress is not None:
            progress.write(f"trial {trial.number}/{len(trials)}: {trial.label}\n")
        trial_dir = sweep_dir / f"trial-{trial.number:03d}"
        started_at = utc_now()
        head, trial.stage = train_head_on_features(
            prepared.features, trial_config, class_count, trial_dir / "checkpoints" / "head.keras", progress
        )
        if trial.stage.checkpoint is None:
            logger.warning("trial %s stopped before its first epoch; not registered", trial.number)
            break

        artifact = trial_dir / "model.keras"
        join_head(lazy_base.get(), head, trial_config, class_count).save(artifact)
        trial.evaluations = _evaluate_head(head, prepared, scan.class_names)
        trial.record = RunRecord(
            config=trial_config,
            class_names=scan.class_names,
            artifact=artifact,
            stages=(trial.stage,),
            evaluations=trial.evaluations,
            dataset_fingerprint=prepared.fingerprint,
            started_at=started_at,
            finished_at=utc_now(),
            status=VersionStatus.INTERRUPTED if trial.stage.interrupted else VersionStatus.READY,
            extra_hyperparameters={"feature_cache": prepared.cache_status, "sweep": sweep_id},
        )

        # Ctrl-C ends the sweep; the trials finished so far are still registered.
        if trial.stage.interrupted:
            break

    finished = [trial for trial in trials if trial.record is not None]
    best = _best_trial(finished)
    plot = None
    if finished:
        curves = {trial.label: trial.stage.history["val_accuracy"] for trial in finished}
        plot = plot_sweep(curves, sweep_dir / "sweep.png", best=best.label if best else None)

    # Registration waits for the last trial, because the best trial's tag is known only then.
    for trial in finished:
        tags = {"sweep": sweep_id, "sweep_trial": str(trial.number)}
        if trial is best:
            tags["sweep_best"] = "true"
        record = replace(trial.record, tags=tags)
        trial.version = register_run(registry, record, trial.record.artifact.parent)

    return SweepOutcome(
        sweep_id=sweep_id,
        sweep_dir=sweep_dir,
        trials=trials,
        best_index=trials.index(best) if best else None,
        plot=plot,
        cache_status=prepared.cache_status,
        class_names=scan.class_names,
        split_counts=prepared.split_counts(),
        ignored=scan.ignored,
        skipped=prepared.skipped,
    )


def _best_trial(trials: list[Trial]) -> Trial | None:
    """Return the trial with the highest validation accuracy; the earlier one wins a tie."""
    best = None
    for trial in trials:
        score = trial.evaluations[VALIDATION].accuracy
        if best is None or score > best.evaluations[VALIDATION].accuracy:
            best = trial
    return best


def _evaluate_head(head, prepared, class_names) -> dict[str, Evaluation]:
    evaluations = {}
    for split in (VALIDATION, TEST):
        values = prepared.features.splits.get(split)
        if values is None or len(values.labels) == 0:
            continue
        logits = predict_features(head, values.features)
        evaluations[split] = evaluate_logits(split, logits, values.labels, class_names)
    return evaluations
