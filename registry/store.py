"""The `Registry` object: one database connection pool plus the data folder for artifacts."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from registry import lookups, migrate
from registry.aliases import AliasesMixin
from registry.database import Database, check_connection, resolve_home, resolve_url
from registry.exports import ExportsMixin
from registry.predictions import PredictionsMixin
from registry.reports import ReportsMixin
from registry.versions import VersionsMixin

logger = logging.getLogger(__name__)

ARTIFACTS_FOLDER = "artifacts"


class Registry(VersionsMixin, AliasesMixin, PredictionsMixin, ReportsMixin, ExportsMixin):
    """Model versions, aliases and predictions stored in SQLite or PostgreSQL.

    Open it with `Registry.open()`; every method opens and closes its own transaction, so one
    `Registry` may be shared by the threads of a process. Public methods return the frozen
    dataclasses of `registry.types`.
    """

    def __init__(self, database: Database, home: Path) -> None:
        self._db = database
        self._home = home

    @classmethod
    def open(
        cls,
        url: str | None = None,
        home: str | os.PathLike[str] | None = None,
        upgrade: bool = True,
        create: bool = True,
    ) -> Registry:
        """Connect to the registry database and check its schema.

        Args:
            url: SQLAlchemy URL. Defaults to $SORTBOX_DB, else SQLite at <home>/sortbox.db.
            home: Data folder for the database file and artifacts. Defaults to $SORTBOX_HOME,
                else ./sortbox-data; it is created when missing unless `create` is False.
            upgrade: Apply pending migrations (creating the schema in a new database). With False,
                an empty or older database raises SchemaOutdatedError. Defaults to True.
            create: Create a missing data folder and SQLite file. Commands that only read or
                change existing rows pass False, so a mistyped path raises NotFoundError instead
                of creating an empty registry. Defaults to True.

        Raises:
            NotFoundError: `create` is False and the SQLite file does not exist.
            DatabaseUnavailableError: The file is not a SQLite database, its folder is not
                writable, or the database server cannot be reached.
            SchemaOutdatedError: The schema is older than the code and cannot be upgraded here.
            SchemaTooNewError: The database was written by a newer sortbox.
        """
        home_path = resolve_home(home, create=create)
        database = Database(resolve_url(url, home_path), create=create)
        try:
            check_connection(database.engine)
            migrate.ensure_schema(database.engine, upgrade=upgrade)
        except BaseException:
            database.dispose()
            raise
        return cls(database, home_path)

    @property
    def home(self) -> Path:
        """Data folder; artifacts live under home/artifacts/<model name>."""
        return self._home

    @property
    def url(self) -> str:
        """Database URL with any password hidden."""
        return self._db.engine.url.render_as_string(hide_password=True)

    def artifacts_dir(self, model_name: str) -> Path:
        """Return (and create) the folder where a model's artifacts are written."""
        folder = self._home / ARTIFACTS_FOLDER / lookups.check_model_name(model_name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def close(self) -> None:
        """Close every pooled connection; the object must not be used afterwards."""
        self._db.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
