"""Schema migrations: they build exactly the ORM schema, round-trip, and guard the schema version."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from registry import Registry, SchemaOutdatedError, SchemaTooNewError
from registry import migrate
from registry.database import create_engine
from registry.orm import Base

VERSIONS_DIR = migrate.MIGRATIONS_DIR / "versions"


def _schema_diff(engine: sa.Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_matches_orm_metadata(registry_url):
    engine = create_engine(registry_url)
    try:
        migrate.upgrade_schema(engine)

        assert _schema_diff(engine) == []
        assert migrate.read_state(engine).is_current
    finally:
        engine.dispose()


def test_downgrade_then_upgrade_again(registry_url):
    engine = create_engine(registry_url)
    try:
        migrate.upgrade_schema(engine)
        state = migrate.downgrade_schema(engine, "base")
        assert state.current == ()
        assert _table_names(engine) - {"alembic_version"} == set()

        state = migrate.upgrade_schema(engine)
        assert state.is_current
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_exactly_one_head():
    assert len(migrate.script_directory().get_heads()) == 1


def test_revisions_have_docstring_upgrade_downgrade():
    files = sorted(path for path in VERSIONS_DIR.glob("*.py") if path.name != "__init__.py")
    assert files, f"no revision files in {VERSIONS_DIR}"
    for path in files:
        module = ast.parse(path.read_text())
        functions = {node.name for node in module.body if isinstance(node, ast.FunctionDef)}
        assert ast.get_docstring(module), f"{path.name} has no docstring"
        assert "upgrade" in functions, f"{path.name} has no upgrade()"
        assert "downgrade" in functions, f"{path.name} has no downgrade()"


def test_open_upgrades_new_database(registry_url, tmp_path):
    with Registry.open(url=registry_url, home=tmp_path / "home") as registry:
        assert registry.list_models() == []
    engine = create_engine(registry_url)
    try:
        assert migrate.read_state(engine).is_current
    finally:
        engine.dispose()


def test_open_without_upgrade_rejects_empty(registry_url, tmp_path):
    with pytest.raises(SchemaOutdatedError) as raised:
        Registry.open(url=registry_url, home=tmp_path / "home", upgrade=False)
    assert "sortbox db upgrade" in str(raised.value)


def test_open_rejects_unversioned_tables(registry_url, tmp_path):
    engine = create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE registered_models (id INTEGER PRIMARY KEY)")
    finally:
        engine.dispose()

    with pytest.raises(SchemaOutdatedError) as raised:
        Registry.open(url=registry_url, home=tmp_path / "home")
    assert "no schema revision" in str(raised.value)
    assert "sortbox db upgrade" in str(raised.value)


def test_outdated_revision_names_upgrade_command():
    head = migrate.head_revision()
    state = migrate.SchemaState(url="sqlite:///x.db", current=(), head=head, has_tables=False)
    with pytest.raises(SchemaOutdatedError) as raised:
        migrate.check_state(state)
    assert "run `sortbox db upgrade`" in str(raised.value)


def test_open_rejects_newer_schema(registry_url, tmp_path):
    Registry.open(url=registry_url, home=tmp_path / "home").close()
    engine = create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0999_future'")
    finally:
        engine.dispose()

    for upgrade in (True, False):
        with pytest.raises(SchemaTooNewError) as raised:
            Registry.open(url=registry_url, home=tmp_path / "home", upgrade=upgrade)
        message = str(raised.value)
        assert "0999_future" in message
        assert migrate.head_revision() in message


def test_upgrade_rejects_newer_schema(registry_url, tmp_path):
    Registry.open(url=registry_url, home=tmp_path / "home").close()
    engine = create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0999_future'")
        with pytest.raises(SchemaTooNewError):
            migrate.upgrade_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_connection_settings(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'settings.db'}")
    try:
        with engine.connect() as connection:
            journal_mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
            busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    finally:
        engine.dispose()
    assert journal_mode == "wal"
    assert foreign_keys == 1
    assert busy_timeout >= 1000


def test_migrations_folder_ships_script_template():
    assert (migrate.MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert Path(VERSIONS_DIR / "__init__.py").is_file()
