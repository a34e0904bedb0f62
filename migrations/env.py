"""Alembic environment of the registry schema.

`registry.migrate` runs migrations on a connection it passes in `config.attributes["connection"]`,
so they use the registry's own engine and connection settings. Running the `alembic` command with
`-c migrations/alembic.ini` instead connects to `sqlalchemy.url`, or to $SORTBOX_DB when set.
"""

from __future__ import annotations

import os

from alembic import context

from registry.database import create_engine
from registry.orm import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most column and constraint properties, so changes are made by
        # copying the table ("batch" mode); on PostgreSQL batch mode emits plain ALTERs.
        # NOTE: registry connections run with foreign keys ON, and SQLite ignores turning them off
        # inside a transaction, so a batch copy of a referenced table needs that handled first.
        render_as_batch=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=os.environ.get("SORTBOX_DB") or config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = os.environ.get("SORTBOX_DB") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
