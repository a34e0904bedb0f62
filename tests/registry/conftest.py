"""Fixtures for the registry tests: a database per test on SQLite, and on PostgreSQL when set.

`registry_url` runs each test that uses it twice: on a SQLite file under tmp_path, and on a fresh
PostgreSQL schema when SORTBOX_TEST_POSTGRES_URL names a server (.ci/postgres.sh starts one and
prints that variable). Without it the PostgreSQL run is skipped, unless SORTBOX_REQUIRE_POSTGRES=1
turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry import Registry

POSTGRES_ENV = "SORTBOX_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "SORTBOX_REQUIRE_POSTGRES"


def _postgres_required() -> bool:
    return os.environ.get(REQUIRE_POSTGRES_ENV, "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL no other test uses: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return

    server_url = os.environ.get(POSTGRES_ENV)
    if not server_url:
        reason = f"{POSTGRES_ENV} is not set; run `eval \"$(.ci/postgres.sh)\"` to start a server"
        if _postgres_required():
            pytest.fail(f"{reason} ({REQUIRE_POSTGRES_ENV} is set, so this is a failure)")
        pytest.skip(reason)

    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def registry(registry_url: str, tmp_path: Path) -> Iterator[Registry]:
    """An opened registry on a fresh, migrated database, with its home under tmp_path."""
    opened = Registry.open(url=registry_url, home=tmp_path / "home")
    yield opened
    opened.close()
