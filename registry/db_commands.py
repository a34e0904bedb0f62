"""`sortbox db ...`: show and change the database's schema revision.

These commands read --db and --home themselves instead of opening the registry, because opening
it would apply pending migrations before `db current` could report them.
"""

from __future__ import annotations

import click

from registry import migrate


@click.group("db")
def db_group() -> None:
    """Inspect and migrate the registry database schema."""


def _echo_state(state: migrate.SchemaState) -> None:
    current = ", ".join(state.current) if state.current else "none (empty database)"
    click.echo(f"database: {state.url}")
    click.echo(f"current revision: {current}")
    click.echo(f"newest revision: {state.head}")
    click.echo("up to date" if state.is_current else "not up to date; run `sortbox db upgrade`")


@db_group.command("upgrade")
@click.argument("revision", default="head", required=False)
@click.pass_obj
def upgrade_command(app, revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest, "head")."""
    state = migrate.upgrade_database(app.db_url, app.home, revision)
    _echo_state(state)


@db_group.command("current")
@click.pass_obj
def current_command(app) -> None:
    """Show the database's schema revision and whether it is up to date."""
    _echo_state(migrate.database_state(app.db_url, app.home))


@db_group.command("downgrade")
@click.argument("revision")
@click.confirmation_option(
    "--yes",
    prompt="Downgrading can drop tables and their data. Continue?",
    help="Do not ask for confirmation.",
)
@click.pass_obj
def downgrade_command(app, revision: str) -> None:
    """Revert migrations down to REVISION; "base" drops every registry table."""
    state = migrate.downgrade_database(app.db_url, app.home, revision)
    _echo_state(state)


@db_group.command("history")
@click.pass_obj
def history_command(app) -> None:
    """List the schema revisions of this sortbox, marking the database's current one."""
    for revision in migrate.database_revisions(app.db_url, app.home):
        marks = []
        if revision.is_current:
            marks.append("current")
        if revision.is_head:
            marks.append("head")
        suffix = f" ({', '.join(marks)})" if marks else ""
        title = revision.message.splitlines()[0] if revision.message else ""
        click.echo(f"{revision.revision}{suffix}: {title}")
