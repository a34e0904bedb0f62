"""Domain errors of the registry.

The CLI turns every `RegistryError` into one "Error: ..." line, so each message names the value
that failed and ends with what to do next.
"""


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


class NotFoundError(RegistryError):
    """A model, version, alias or prediction does not exist."""


class AlreadyExistsError(RegistryError):
    """A name or alias that must be unique is already taken."""


class InvalidValueError(RegistryError):
    """An argument has a value the registry cannot store or act on."""


class ArtifactError(RegistryError):
    """An artifact file is missing, changed since it was registered, or does not load."""


class DatabaseUnavailableError(RegistryError):
    """The database cannot be opened: not a SQLite file, a read-only folder, a server down."""


class SchemaError(RegistryError):
    """The database schema does not match this version of sortbox."""


class SchemaOutdatedError(SchemaError):
    """The database is older than the code; `sortbox db upgrade` fixes it."""


class SchemaTooNewError(SchemaError):
    """The database was written by a newer sortbox; this code must not touch it."""


class ConflictError(RegistryError):
    """The requested change contradicts the current state, such as archiving a live version."""
