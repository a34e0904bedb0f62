"""Domain errors of the daemon. The CLI prints each as one "Error: ..." line."""


class DaemonError(Exception):
    """Base class of every error the daemon raises on purpose."""


class ConfigError(DaemonError):
    """A daemon option or config-file key has an invalid value."""


class UnsafeCategoryError(DaemonError):
    """A model's class name could write outside the output folder, so the model is not served."""


class IncompatibleModelError(DaemonError):
    """A model version was trained on pixels that the daemon's image loader does not produce."""


class ModelUnavailableError(DaemonError):
    """No usable model holds the serving alias, and the run cannot wait for one."""


class InboxLockedError(DaemonError):
    """Another daemon already watches this inbox or writes to this output folder."""


class InvalidSettingError(ConfigError):
    """One daemon setting has an invalid value; `setting` is its name, such as "max_batch_size"."""

    def __init__(self, message: str, *, setting: str):
        super().__init__(message)
        self.setting = setting
