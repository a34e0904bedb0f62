"""Opening the registry from the registry's own commands."""

from __future__ import annotations

import click

from registry.store import Registry


def open_existing_registry(app) -> Registry:
    """Open the registry named by --db and --home for a command that must not create it.

    Every `models` and `predictions` command reads or changes rows that must already exist, so a
    missing SQLite file is a mistyped path: it raises NotFoundError instead of leaving an empty
    database and data folder behind. The registry is closed when the command ends.

    Args:
        app: The CLI's context object, with the `db_url` and `home` global options.
    """
    registry = Registry.open(url=app.db_url, home=app.home, create=False)
    click.get_current_context().call_on_close(registry.close)
    return registry
