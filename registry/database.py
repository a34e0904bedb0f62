"""Engine set-up, connection settings and the one session scope of the registry."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from registry.errors import DatabaseUnavailableError, InvalidValueError, NotFoundError

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


def resolve_home(home: str | os.PathLike[str] | None, *, create: bool = True) -> Path:
    """Return the data folder: `home`, else $SORTBOX_HOME, else ./sortbox-data.

    Args:
        home: The folder given on the command line, if any.
        create: Create the folder when it is missing. Defaults to True.
    """
    if home is None:
        home = os.environ.get(HOME_ENV) or DEFAULT_HOME
    path = Path(home).expanduser().resolve()
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUnavailableError(
                f"cannot create the data folder '{path}': {error.strerror}; "
                "check --home (or SORTBOX_HOME), or make its parent folder writable"
            ) from error
    return path


def resolve_url(url: str | None, home: Path) -> str:
    """Return the database URL: `url`, else $SORTBOX_DB, else SQLite at <home>/sortbox.db."""
    if url:
        return url
    configured = os.environ.get(DB_ENV)
    if configured:
        return configured
    return f"sqlite:///{home / DATABASE_FILE_NAME}"


def hide_password(url: str) -> str:
    """Return `url` with any password replaced by ***, even when it does not parse."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


# The "user:password@" part of a URL-like string that SQLAlchemy could not parse.
_PASSWORD_IN_URL = re.compile(r"(//[^/:@]*:)[^/@]*@")


def create_engine(url: str, *, create: bool = True) -> sa.Engine:
    """Create an engine with the connection settings the registry relies on.

    On SQLite every connection gets WAL journaling (readers never block the daemon's writes),
    foreign keys ON and a busy timeout. Transactions are started by hand because Python's sqlite3
    module otherwise begins them lazily, in a mode where two writers can fail with "database is
    locked" without waiting: write sessions send BEGIN IMMEDIATE, read sessions a plain BEGIN.

    Args:
        url: SQLAlchemy database URL.
        create: Create a missing SQLite file and its folders. With False a missing file raises
            NotFoundError, so a mistyped path never turns into a new, empty registry.
            Defaults to True.
    """
    try:
        parsed = sa.make_url(url)
    # A port that is not a number raises ValueError instead of ArgumentError.
    except (sa.exc.ArgumentError, ValueError) as error:
        raise InvalidValueError(
            f"invalid database URL {hide_password(url)!r}; give a SQLAlchemy URL such as "
            "sqlite:///path/to/sortbox.db or postgresql+psycopg://user@host/dbname"
        ) from error

    if parsed.get_backend_name() != "sqlite":
        return _load_dialect(parsed, lambda: sa.create_engine(parsed, pool_pre_ping=True))

    if parsed.database and parsed.database != ":memory:":
        _prepare_sqlite_file(Path(parsed.database).expanduser(), create=create)
    engine = _load_dialect(
        parsed,
        lambda: sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}),
    )
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _load_dialect(parsed: sa.URL, make_engine: Callable[[], sa.Engine]) -> sa.Engine:
    shown = parsed.render_as_string(hide_password=True)
    try:
        return make_engine()
    except sa.exc.NoSuchModuleError as error:
        raise InvalidValueError(
            f"unknown database type {parsed.drivername!r} in URL {shown!r}; use "
            "sqlite:///path/to/sortbox.db or postgresql+psycopg://user@host/dbname"
        ) from error
    except ImportError as error:
        raise InvalidValueError(
            f"the database driver for {shown!r} is not installed ({error}); install it, "
            "for example `pip install 'psycopg[binary]'` for postgresql+psycopg"
        ) from error


def _prepare_sqlite_file(path: Path, *, create: bool) -> None:
    if path.exists():
        return
    if not create:
        raise NotFoundError(
            f"no registry database at '{path}'; check --home and --db (or SORTBOX_HOME and "
            "SORTBOX_DB), or train a model first to create it"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseUnavailableError(
            f"cannot create the folder of database '{path}': {error.strerror}; "
            "check --home and --db, or make the folder writable"
        ) from error


def check_connection(engine: sa.Engine) -> None:
    """Open one connection, turning driver errors into one-line DatabaseUnavailableError.

    Raises:
        DatabaseUnavailableError: The file is not SQLite, its folder is read-only, or the server
            cannot be reached. The message never shows a password.
    """
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as error:
        raise _unavailable(engine.url, error) from error


def _unavailable(url: sa.URL, error: sa.exc.DBAPIError) -> DatabaseUnavailableError:
    # The driver's own message without SQLAlchemy's statement and link, on one line.
    reason = " ".join(str(error.orig or error).split())
    if url.get_backend_name() != "sqlite":
        return DatabaseUnavailableError(
            f"cannot connect to {url.render_as_string(hide_password=True)}: {reason}; check "
            "that the server is running and the URL given with --db (or SORTBOX_DB)"
        )

    path = Path(url.database or "").expanduser().resolve()
    if "file is not a database" in reason:
        return DatabaseUnavailableError(
            f"'{path}' is not a SQLite database; check --db and --home (or SORTBOX_DB and "
            "SORTBOX_HOME), or move that file out of the way"
        )
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        # WAL mode keeps -wal and -shm files next to the database, even for readers.
        return DatabaseUnavailableError(
            f"cannot open SQLite database '{path}' ({reason}): the folder '{path.parent}' and the "
            "file must be writable, because SQLite keeps its -wal and -shm files there; make "
            "them writable, or point --home or --db at a writable copy"
        )
    return DatabaseUnavailableError(
        f"cannot open SQLite database '{path}': {reason}; check --db and --home "
        "(or SORTBOX_DB and SORTBOX_HOME)"
    )


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

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.engine = create_engine(url, create=create)
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
