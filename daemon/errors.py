"""Domain errors of the daemon. The CLI prints each as one "Error: ..." line."""


class DaemonError(Exception):
    """Base class of every error the daemon raises on purpose."""


class ConfigError(DaemonError):
    """A daemon option or config-file key has an invalid value."""
