"""Plain-text summaries of a training run and of a sweep, printed by the commands."""

from __future__ import annotations

from trainer.dataset import SkippedFile
from trainer.run import TrainOutcome
from trainer.sweep import SweepOutcome


def _file_lines(title: str, items: tuple[SkippedFile, ...]) -> list[str]:
    if not items:
        return []
    lines = [f"{title} ({len(items)}):"]
    lines.extend(f"  {item.relative_path}: {item.reason}" for item in items)
    return lines


def _dataset_lines(class_names, split_counts, ignored, skipped, cache_status) -> list[str]:
    counts = ", ".join(f"{split} {count}" for split, count in split_counts.items())
    lines = [
        f"classes ({len(class_names)}): {', '.join(class_names)}",
        f"images: {counts}",
        f"feature cache: {cache_status}",
    ]
    lines.extend(_file_lines("left out, not decodable", skipped))
    lines.extend(_file_lines("ignored", ignored))
    return lines


def format_train_outcome(outcome: TrainOutcome) -> list[str]:
    """Return the lines `sortbox train` prints for a finished run."""
    lines = _dataset_lines(
        outcome.class_names, outcome.split_counts, outcome.ignored, outcome.skipped,
        outcome.cache_status,
    )
    for stage in outcome.stages:
        if stage.best_epoch is None:
            lines.append(f"{stage.name}: {stage.epochs_run} epoch(s), no epoch beat the previous stage")
        else:
            lines.append(
                f"{stage.name}: best epoch {stage.best_epoch} of {stage.epochs_run}, "
                f"val_accuracy {stage.best_val_accuracy:.4f} ({stage.seconds:.0f} s)"
            )
    for split, evaluation in outcome.evaluations.items():
        lines.append(
            f"{split}: accuracy {evaluation.accuracy:.4f}, loss {evaluation.loss:.4f}, "
            f"macro F1 {evaluation.macro_f1:.4f} ({evaluation.count} images)"
        )
    lines.append(f"artifact: {outcome.artifact}")
    if outcome.version is not None:
        status = outcome.version.status.value
        lines.append(
            f"registered {outcome.version.model_name} version {outcome.version.version} ({status})"
        )
    if outcome.promotion is not None:
        lines.append(
            f"promoted {outcome.promotion.model_name} version {outcome.promotion.new_version} "
            f"to {outcome.promotion.alias}"
        )
    if outcome.promotion_skipped:
        version = outcome.version
        lines.append(
            f"not promoted: --promote does not apply to an interrupted version; check it, then "
            f"run `sortbox models promote {version.model_name} {version.version} --force`"
        )
    return lines


def format_sweep_outcome(outcome: SweepOutcome) -> list[str]:
    """Return the lines `sortbox train sweep` prints: dataset summary and a results table."""
    lines = _dataset_lines(
        outcome.class_names, outcome.split_counts, outcome.ignored, outcome.skipped,
        outcome.cache_status,
    )
    lines.append("")
    lines.append("| trial | learning rate | inner size | dropout | best val_accuracy | epoch | version |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for index, trial in enumerate(outcome.trials):
        if trial.stage is None or trial.stage.best_epoch is None:
            continue
        marker = " (best)" if index == outcome.best_index else ""
        version = trial.version.version if trial.version else "-"
        lines.append(
            f"| {trial.number}{marker} | {trial.values['learning_rate']:g} | "
            f"{trial.values['inner_size']} | {trial.values['dropout']:g} | "
            f"{trial.stage.best_val_accuracy:.4f} | {trial.stage.best_epoch} | {version} |"
        )
    lines.append("")
    if outcome.plot is not None:
        lines.append(f"validation accuracy per epoch: {outcome.plot}")
    if outcome.best_index is not None:
        best = outcome.trials[outcome.best_index]
        lines.append(f"best trial: {best.number} ({best.label}), tagged sweep_best=true")
    return lines
