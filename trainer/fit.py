"""Run one training stage: fit with a best-epoch checkpoint, early stopping and progress output.

A stage is either the head (on cached features or on pixels with the frozen base) or the
fine-tune of the unfrozen top of the base. Ctrl-C ends the stage early; the checkpoint of the best
epoch so far stays on disk and the caller decides whether to register it.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

logger = logging.getLogger(__name__)

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class StageResult:
    """Result of one training stage.

    `best_epoch` counts from 1 within the stage and is None when no epoch beat `initial_best`,
    in which case no checkpoint was written.
    """

    name: str
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    checkpoint: Path | None = None
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("val_accuracy", []))


def fit_stage(
    model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    *,
    name: str,
    epochs: int,
    batch_size: int,
    checkpoint_path: Path,
    early_stopping: int | None = None,
    initial_best: float | None = None,
    progress: TextIO | None = sys.stderr,
) -> StageResult:
    """Fit `model` on (inputs, one-hot labels) and keep the epoch with the best val_accuracy.

    Args:
        name: Stage name shown in progress lines and stored with the history.
        checkpoint_path: `.keras` file that receives the best epoch's model.
        early_stopping: Epochs without improvement before stopping. Defaults to None (off).
        initial_best: Validation accuracy an epoch must beat to be saved, such as the head
            stage's best when fine-tuning. Defaults to None (the first epoch is always saved).
        progress: Stream for progress lines, or None for silence. Defaults to stderr.
    """
    import keras

    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    result = StageResult(name=name, history={key: [] for key in HISTORY_KEYS})
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(checkpoint_path),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            initial_value_threshold=initial_best,
        ),
        _history_recorder(result.history),
    ]
    if early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=early_stopping
            )
        )
    if progress is not None:
        callbacks.append(_progress_callback(name, epochs, progress))

    started = time.monotonic()
    try:
        model.fit(
            train[0],
            train[1],
            validation_data=validation,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
    except KeyboardInterrupt:
        result.interrupted = True
        logger.warning("stage %s interrupted after %s epoch(s)", name, result.epochs_run)
    result.seconds = time.monotonic() - started

    _set_best(result, initial_best, checkpoint_path)
    return result


def _set_best(result: StageResult, initial_best: float | None, checkpoint_path: Path) -> None:
    scores = result.history["val_accuracy"]
    if not scores:
        return

    # ModelCheckpoint saves only on a strict improvement, so the first maximum is the saved one.
    best_index = int(np.argmax(scores))
    best = float(scores[best_index])
    if initial_best is not None and best <= initial_best:
        return
    result.best_epoch = best_index + 1
    result.best_val_accuracy = best
    result.checkpoint = checkpoint_path if checkpoint_path.is_file() else None


def predict_features(head, features: np.ndarray) -> np.ndarray:
    """Return the head's logits for cached features.

    The head is called directly because `Model.predict` traces a new function for every model,
    which a sweep of many heads would repeat once per trial.
    """
    if len(features) == 0:
        return np.zeros((0, head.output_shape[-1]), dtype=np.float32)
    return np.asarray(head(features, training=False))


def one_hot(labels: np.ndarray, class_count: int) -> np.ndarray:
    return np.eye(class_count, dtype=np.float32)[labels]


def _history_recorder(history: dict[str, list[float]]):
    """Return a callback that collects epoch logs as they come, so an interrupted fit keeps them."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for key in HISTORY_KEYS:
                if logs and key in logs:
                    history[key].append(float(logs[key]))

    return Recorder()


def _progress_callback(stage: str, epochs: int, stream: TextIO):
    """Return a callback that writes one line per epoch, plus a batch counter on a terminal."""
    import keras

    interactive = hasattr(stream, "isatty") and stream.isatty()

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.monotonic()
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if not interactive:
                return
            steps = self.params.get("steps") or "?"
            loss = (logs or {}).get("loss", float("nan"))
            stream.write(
                f"\r{stage} epoch {self.epoch + 1}/{epochs}  batch {batch + 1}/{steps}"
                f"  loss {loss:.4f}"
            )
            stream.flush()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            seconds = time.monotonic() - self.epoch_started
            prefix = "\r" if interactive else ""
            stream.write(
                f"{prefix}{stage} epoch {epoch + 1}/{epochs}"
                f"  loss {logs.get('loss', float('nan')):.4f}"
                f"  accuracy {logs.get('accuracy', float('nan')):.4f}"
                f"  val_loss {logs.get('val_loss', float('nan')):.4f}"
                f"  val_accuracy {logs.get('val_accuracy', float('nan')):.4f}"
                f"  ({seconds:.1f} s)\n"
            )
            stream.flush()

    return Progress()
