"""Schema revisions: check a database against the code, and upgrade or downgrade it with Alembic.

The revisions live in the `migrations` package next to `registry`. A database is one of:
- empty: no tables at all; `upgrade` creates the whole schema;
- current: its revision is the newest one in this code;
- outdated: an older known revision, or sortbox tables without any revision;
- too new: a revision this code does not know, written by a newer sortbox.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

import migrations
from registry.database import Database, check_connection, resolve_home, resolve_url
from registry.errors import NotFoundError, SchemaError, SchemaOutdatedError, SchemaTooNewError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
UPGRADE_HINT = "run `sortbox db upgrade`"


@dataclass(frozen=True)
class Revision:
    """One schema revision known to this code."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool
    is_current: bool


@dataclass(frozen=True)
class SchemaState:
    """Schema state of a database: its revisions, the code's head and whether it has tables."""

    url: str
    current: tuple[str, ...]
    head: str
    has_tables: bool

    @property
    def is_current(self) -> bool:
        return self.current == (self.head,)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Build the Alembic configuration in code, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """Return the single newest revision; two heads mean the migrations need a merge."""
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise SchemaError(
            f"the migrations have {len(heads)} heads ({', '.join(heads)}); "
            "merge them with `alembic merge` before using this sortbox"
        )
    return heads[0]


def read_state(engine: sa.Engine) -> SchemaState:
    """Read the database's revision without changing anything."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        current = tuple(sorted(context.get_current_heads()))
        table_names = set(sa.inspect(connection).get_table_names())
    has_tables = bool(table_names - {"alembic_version"})
    return SchemaState(
        url=engine.url.render_as_string(hide_password=True),
        current=current,
        head=head_revision(),
        has_tables=has_tables,
    )


def check_state(state: SchemaState) -> None:
    """Raise unless the schema matches the code.

    Raises:
        SchemaTooNewError: The database has a revision this code does not know.
        SchemaOutdatedError: The database is empty, older than the code, or unversioned.
    """
    if state.is_current:
        return
    _reject_unknown_revisions(state)
    if not state.current and not state.has_tables:
        raise SchemaOutdatedError(
            f"database {state.url} has no sortbox schema yet; {UPGRADE_HINT} to create it"
        )
    if not state.current:
        raise SchemaOutdatedError(
            f"database {state.url} has tables but no schema revision, so sortbox cannot tell "
            f"which schema it has; {UPGRADE_HINT} on an empty database, or point --db elsewhere"
        )
    raise SchemaOutdatedError(
        f"database {state.url} has schema revision {', '.join(state.current)} but this sortbox "
        f"needs {state.head}; {UPGRADE_HINT}"
    )


def _reject_unknown_revisions(state: SchemaState) -> None:
    scripts = script_directory()
    unknown = []
    for revision in state.current:
        try:
            scripts.get_revision(revision)
        except CommandError:
            unknown.append(revision)
    if unknown:
        raise SchemaTooNewError(
            f"database {state.url} has schema revision {', '.join(unknown)}, which this sortbox "
            f"does not know (its newest is {state.head}); the database was written by a newer "
            "sortbox, so upgrade sortbox instead of the database"
        )


def ensure_schema(engine: sa.Engine, *, upgrade: bool) -> SchemaState:
    """Check the schema and, when allowed, bring an empty or older database up to head."""
    state = read_state(engine)
    if state.is_current:
        return state
    _reject_unknown_revisions(state)

    unversioned = state.has_tables and not state.current
    if not upgrade or unversioned:
        check_state(state)
    # NOTE: two processes that open the same empty database at the same moment both try to
    # migrate it, and the slower one fails with "table already exists"; opening it again works.
    logger.info("upgrading database %s from %s to %s", state.url, state.current or "empty", state.head)
    return upgrade_schema(engine, "head")


def upgrade_schema(engine: sa.Engine, revision: str = "head") -> SchemaState:
    """Apply migrations up to `revision` (default: the newest) and return the new state."""
    state = read_state(engine)
    _reject_unknown_revisions(state)
    _run(engine, command.upgrade, revision)
    return read_state(engine)


def downgrade_schema(engine: sa.Engine, revision: str) -> SchemaState:
    """Revert migrations down to `revision` ("base" removes every table) and return the state."""
    state = read_state(engine)
    _reject_unknown_revisions(state)
    _run(engine, command.downgrade, revision)
    return read_state(engine)


def _run(engine: sa.Engine, action, revision: str) -> None:
    try:
        with engine.begin() as connection:
            action(alembic_config(connection), revision)
    except CommandError as error:
        known = ", ".join(script.revision for script in script_directory().walk_revisions())
        raise SchemaError(
            f"cannot migrate to revision {revision!r}: {error}; known revisions are {known}, "
            "plus `head` and `base`"
        ) from error


def list_revisions(engine: sa.Engine | None = None) -> list[Revision]:
    """List the revisions in this code, oldest first, marking the database's current one."""
    current: tuple[str, ...] = ()
    if engine is not None:
        current = read_state(engine).current
    scripts = script_directory()
    heads = set(scripts.get_heads())
    revisions = [
        Revision(
            revision=script.revision,
            down_revision=_single(script.down_revision),
            message=(script.doc or "").strip(),
            is_head=script.revision in heads,
            is_current=script.revision in current,
        )
        for script in scripts.walk_revisions()
    ]
    revisions.reverse()
    return revisions


def _single(down_revision) -> str | None:
    if down_revision is None or isinstance(down_revision, str):
        return down_revision
    return ", ".join(down_revision)


@contextmanager
def _engine_for(
    url: str | None, home: str | os.PathLike[str] | None, *, create: bool = False
) -> Iterator[sa.Engine]:
    database = Database(resolve_url(url, resolve_home(home, create=create)), create=create)
    try:
        check_connection(database.engine)
        yield database.engine
    finally:
        database.dispose()


def database_state(url: str | None = None, home: str | os.PathLike[str] | None = None) -> SchemaState:
    """Read the schema state of the database that `Registry.open(url, home)` would use."""
    with _engine_for(url, home) as engine:
        return read_state(engine)


def upgrade_database(
    url: str | None = None, home: str | os.PathLike[str] | None = None, revision: str = "head"
) -> SchemaState:
    """Upgrade the database that `Registry.open(url, home)` would use, creating a missing one."""
    with _engine_for(url, home, create=True) as engine:
        return upgrade_schema(engine, revision)


def downgrade_database(
    url: str | None, home: str | os.PathLike[str] | None, revision: str
) -> SchemaState:
    """Downgrade the database that `Registry.open(url, home)` would use; "base" drops everything."""
    with _engine_for(url, home) as engine:
        return downgrade_schema(engine, revision)


def database_revisions(
    url: str | None = None, home: str | os.PathLike[str] | None = None
) -> list[Revision]:
    """List known revisions, marking the one the database is at; no mark without a database."""
    try:
        with _engine_for(url, home) as engine:
            return list_revisions(engine)
    except NotFoundError:
        return list_revisions()
