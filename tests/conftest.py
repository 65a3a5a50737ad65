"""Fixtures: one suite on both databases.

`store` is parametrised over SQLite and PostgreSQL (marks `sqlite` / `postgres`, so
`pytest -m sqlite` picks one). Each run gets its own SQLite file and its own PostgreSQL
schema, and each test its own organization, so tests never see each other's leads.
PostgreSQL comes from LEADS_TEST_DATABASE_URL (default the local `test` database); when
it does not answer the PostgreSQL half is skipped, except under CI=true where that fails.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from cli_support import Cli, api_leads
from leads_api.api import create_app
from leads_api.lead import new_lead_id
from leads_api.store import Store, create_engine
from leads_api.store.migrate import _config, migrate
from leads_api.store.tenants import Organization, create_key, create_organization
from leads_api.store.unit_of_work import insert_leads

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DAY_MS = 86_400_000
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m sqlite` and `-m postgres` each select exactly their half of the suite: a test
    parametrised over `database_url` is marked by its parameter already; one that asks for
    one database's URL alone gets that database's mark; a test of no database (pure code)
    gets both, so it runs in either half."""
    for item in items:
        if item.get_closest_marker("sqlite") or item.get_closest_marker("postgres"):
            continue
        names = set(getattr(item, "fixturenames", ()))
        if "sqlite_url" in names and "postgres_url" not in names:
            item.add_marker(pytest.mark.sqlite)
        elif "postgres_url" in names and "sqlite_url" not in names:
            item.add_marker(pytest.mark.postgres)
        else:
            item.add_marker(pytest.mark.sqlite)
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'leads.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    base = os.environ.get("LEADS_TEST_DATABASE_URL", DEFAULT_PG_URL)
    try:
        admin = create_engine(base)
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as error:  # any failure to connect
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {base} is required under CI=true: {error}")
        pytest.skip(f"PostgreSQL at {base} does not answer: {error}")
    schema = "t_" + secrets.token_hex(6)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database of each kind."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    engine = create_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def store(database_url: str) -> Iterator[Store]:
    store = Store(create_engine(database_url))
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def app(store: Store) -> Any:
    return create_app(store)


_org_numbers = itertools.count(1)


@pytest.fixture
def make_org(store: Store) -> Callable[..., Organization]:
    """Create a fresh organization with the given settings."""

    def make(**settings: Any) -> Organization:
        name = f"org-{next(_org_numbers)}-{secrets.token_hex(4)}"
        with store.write() as conn:
            return create_organization(conn, name, **settings)

    return make


@pytest.fixture
def make_key(store: Store) -> Callable[..., str]:
    """Create a key for an organization and return its secret."""

    def make(org: Organization, *, read_only: bool = False) -> str:
        with store.write() as conn:
            return create_key(conn, org, read_only=read_only)[1]

    return make


@pytest.fixture
def org(make_org: Callable[..., Organization]) -> Organization:
    return make_org()


@pytest.fixture
def api_key(org: Organization, make_key: Callable[..., str]) -> str:
    return make_key(org)


@pytest.fixture
def client(app: Any, api_key: str) -> Iterator[TestClient]:
    """An HTTP client of the app, authenticated as `org`."""
    with TestClient(app, headers={"X-API-KEY": api_key}, raise_server_exceptions=True) as c:
        yield c


@pytest.fixture
def anonymous(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def lead_row(**columns: Any) -> dict[str, Any]:
    """A stored lead row (by column name) with sensible defaults."""
    created = columns.pop("created_at", BASE_MS)
    row: dict[str, Any] = {
        "id": new_lead_id(),
        "status": "open",
        "source": "api",
        "created_at": created,
        "updated_at": created,
        "expires_at": created + 90 * DAY_MS,
    }
    row.update(columns)
    return row


@pytest.fixture
def add_leads(store: Store, org: Organization) -> Callable[..., list[dict[str, Any]]]:
    """Insert lead rows (by column name) into `org`, or another organization if given."""

    def add(*rows: dict[str, Any], into: Organization | None = None) -> list[dict[str, Any]]:
        full = [lead_row(**r) for r in rows]
        with store.write() as conn:
            insert_leads(conn, org_id=(into or org).id, rows=full)
        return full

    return add


ClientFor = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def client_for(app: Any, make_key: Callable[..., str]) -> ClientFor:
    """A client authenticated as a new key of any organization (read-only if asked)."""

    @contextmanager
    def open_client(org: Organization, *, read_only: bool = False) -> Iterator[TestClient]:
        with TestClient(app, headers={"X-API-KEY": make_key(org, read_only=read_only)}) as c:
            yield c

    return open_client


@pytest.fixture
def cli(database_url: str) -> Cli:
    """`leads-api` in-process against this test run's database."""
    return Cli(database_url)


@pytest.fixture
def read(app: Any, make_key: Callable[..., str]) -> Callable[..., list[dict[str, Any]]]:
    """An organization's leads as GET /api/leads returns them (newest first), as a witness
    independent of the code under test."""

    def read(org: Organization, query: str = "") -> list[dict[str, Any]]:
        return api_leads(app, make_key(org), query)

    return read


# --- databases at an older revision ---------------------------------------------------------


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.sqlite),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    """An empty database of each kind, not migrated at all."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    request.getfixturevalue("postgres_url")  # skips when PostgreSQL does not answer
    base = os.environ.get("LEADS_TEST_DATABASE_URL", DEFAULT_PG_URL)
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base else "?"
    engine = create_engine(f"{base}{separator}options={quote(f'-csearch_path={schema},public')}")
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def upgrade_to(engine: Engine, revision: str) -> None:
    """Migrate `engine` up to `revision`, as `leads-api migrate` would to the newest."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def insert_old_leads(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """An organization and its lead rows written by plain SQL into a database at an older
    revision (the columns the rows name must exist there); the organization's id."""
    with engine.begin() as conn:
        org_id = int(conn.execute(sa.text(
            "INSERT INTO organizations (name, allow_bulk_updates, attribution_days, created_at,"
            " data_version) VALUES ('old', false, 90, 0, 1) RETURNING id"
        )).scalar_one())
        columns = sorted({c for r in rows for c in r})
        conn.execute(
            sa.text(f"INSERT INTO leads (org_id, {', '.join(columns)}) "
                    f"VALUES (:org_id, {', '.join(':' + c for c in columns)})"),
            [{**dict.fromkeys(columns), **r, "org_id": org_id} for r in rows],
        )
    return org_id
