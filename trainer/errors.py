"""Domain errors of the trainer. The CLI prints each as one "Error: ..." line."""


class TrainerError(Exception):
    """Base class of every error the trainer raises on purpose."""


class DatasetError(TrainerError):
    """The dataset folder is missing, empty or laid out wrongly."""


class ConfigError(TrainerError):
    """A training option has an invalid value or contradicts another option."""


class WeightsError(TrainerError):
    """A weight source cannot be loaded: a missing file, or a download that is not possible."""


class TrainingInterrupted(TrainerError):
    """Ctrl-C stopped training; the message names the file of the best checkpoint so far."""
