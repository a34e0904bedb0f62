"""Engine set-up, connection settings and the one session scope of the registry."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from registry.errors import InvalidValueError

logger = logging.getLogger(__name__)

HOME_ENV = "SORTBOX_HOME"
DB_ENV = "SORTBOX_DB"
DEFAULT_HOME = Path("sortbox-data")
DATABASE_FILE_NAME = "sortbox.db"

# How long a SQLite connection waits for another writer's lock before failing, in milliseconds.
# Promotions and prediction batches hold the write lock for milliseconds, so 30 s only runs out
# when a process hangs inside a transaction.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Execution option that makes a SQLite transaction take the write lock when it starts.
_BEGIN_MODE = "sortbox_sqlite_begin"


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """Return the data folder: `home`, else $SORTBOX_HOME, else ./sortbox-data; create it."""
    if home is None:
        home = os.environ.get(HOME_ENV) or DEFAULT_HOME
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_url(url: str | None, home: Path) -> str:
    """Return the database URL: `url`, else $SORTBOX_DB, else SQLite at <home>/sortbox.db."""
    if url:
        return url
    configured = os.environ.get(DB_ENV)
    if configured:
        return configured
    return f"sqlite:///{home / DATABASE_FILE_NAME}"


def create_engine(url: str) -> sa.Engine:
    """Create an engine with the connection settings the registry relies on.

    On SQLite every connection gets WAL journaling (readers never block the daemon's writes),
    foreign keys ON and a busy timeout. Transactions are started by hand because Python's sqlite3
    module otherwise begins them lazily, in a mode where two writers can fail with "database is
    locked" without waiting: write sessions send BEGIN IMMEDIATE, read sessions a plain BEGIN.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as error:
        raise InvalidValueError(
            f"invalid database URL {url!r}: {error}; give a SQLAlchemy URL such as "
            "sqlite:///path/to/sortbox.db or postgresql+psycopg://user@host/dbname"
        ) from error

    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection, _connection_record) -> None:
    # Autocommit at the driver level; `_begin_sqlite_transaction` emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    mode = connection.get_execution_options().get(_BEGIN_MODE, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine plus the session factories for reading and for writing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_engine = self.engine.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(write_engine, expire_on_commit=False)

    @contextmanager
    def session_scope(self, *, write: bool = True) -> Iterator[Session]:
        """Yield a session that commits when the block ends and rolls back when it raises.

        Args:
            write: Take the write lock at the start (SQLite). Use False for read-only work, such as
                a long export, so it never delays the daemon's writes. Defaults to True.
        """
        factory = self._write_sessions if write else self._read_sessions
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
