"""Rules the store keeps by construction, checked rather than trusted.

- Tenant scope is a required argument (STYLE.md): every public store function that runs SQL
  on leads takes `org_id` as a keyword-only parameter with no default. That the SQL they run
  names one organization is checked on the statements themselves
  (tests/test_statement_scope.py).
- The Alembic migrations build exactly the schema `leads_api.store.schema` declares, on each
  database (autogenerate's comparison finds nothing to change).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import leads_api.store
from leads_api.store import Store
from leads_api.store.schema import SEARCH_ROWS, SQLITE_SEARCH_INDEX_TABLES, metadata

# Store modules that never touch leads: organizations and keys, engine setup, migrations and
# table declarations. Every other store module is held to the org_id rule; a new module must
# be listed here, with its reason, to be exempt.
NOT_ABOUT_LEADS = {
    "leads_api.store.tenants": "organizations and API keys; scoped by the key itself",
    "leads_api.store.engine": "connections and transactions",
    "leads_api.store.driver": "the driver connection under a connection; runs no SQL itself",
    "leads_api.store.migrate": "schema upgrades, over whole databases",
    "leads_api.store.schema": "table declarations",
    "leads_api.store.delivery_queue": "webhook messages across organizations, each bound to "
    "its subscription's organization; never reads leads",
}


def store_modules() -> Iterator[ModuleType]:
    package = leads_api.store
    yield package
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if not info.ispkg:  # `migrations` holds Alembic scripts, not store functions
            yield importlib.import_module(info.name)


def public_functions(module: ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, function in inspect.getmembers(module, inspect.isfunction):
        if not name.startswith("_") and function.__module__ == module.__name__:
            yield f"{module.__name__}.{name}", function


def runs_sql(function: Callable[..., Any]) -> bool:
    """Takes a database connection (the store's functions run SQL on one they are given)."""
    for parameter in inspect.signature(function).parameters.values():
        annotation = parameter.annotation
        if "Connection" in getattr(annotation, "__name__", str(annotation)):
            return True
    return False


def lead_functions() -> dict[str, Callable[..., Any]]:
    return {
        name: function
        for module in store_modules()
        if module.__name__ not in NOT_ABOUT_LEADS
        for name, function in public_functions(module)
        if runs_sql(function) or "org_id" in inspect.signature(function).parameters
    }


def test_the_rule_covers_the_store_s_lead_functions() -> None:
    names = set(lead_functions())
    for expected in (
        "leads_api.store.reads.list_leads",
        "leads_api.store.reads.get_lead",
        "leads_api.store.reads.iter_leads",
        "leads_api.store.unit_of_work.insert_leads",
        "leads_api.store.counts.count_leads",
        "leads_api.store.sql.where_clause",
    ):
        assert expected in names


@pytest.mark.parametrize("name", sorted(lead_functions()))
def test_org_id_is_keyword_only_and_required(name: str) -> None:
    parameters = inspect.signature(lead_functions()[name]).parameters
    assert "org_id" in parameters, f"{name} does not take org_id"
    org_id = parameters["org_id"]
    assert org_id.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: org_id is not keyword-only"
    assert org_id.default is inspect.Parameter.empty, f"{name}: org_id has a default"


def test_every_exempt_module_exists() -> None:
    modules = {module.__name__ for module in store_modules()}
    assert set(NOT_ABOUT_LEADS) <= modules


# --- migrations == metadata ----------------------------------------------------------------


def _declared_for(dialect: str) -> Callable[..., bool]:
    """Alembic's include_object hook: what the schema declares for this database.

    Indexes declared with `.ddl_if(dialect=...)` exist only on that database (Alembic does not
    read the condition). SQLite's FTS5 search index is a virtual table no Table declares, and
    `search_rows` (migration 0014) has a key of its own on each database.
    """

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and reflected and name in SQLITE_SEARCH_INDEX_TABLES:
            return dialect != "sqlite"  # FTS5's tables, which no Table declares
        if type_ == "table" and reflected and name == SEARCH_ROWS:
            return False  # keyed differently on each database: no one Table declares it
        condition = getattr(obj, "_ddl_if", None)  # where SQLAlchemy keeps ddl_if()
        if type_ == "index" and not reflected and condition is not None:
            wanted = condition.dialect
            if wanted is not None:
                return dialect in ((wanted,) if isinstance(wanted, str) else tuple(wanted))
        return True

    return include


def test_migrations_build_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": _declared_for(conn.dialect.name),
            },
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_the_comparison_would_see_a_difference(store: Store) -> None:
    """The check above can fail: a column the schema does not declare is reported."""
    with store.engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(sa.text("ALTER TABLE leads ADD COLUMN not_declared INTEGER"))
        context = MigrationContext.configure(
            conn, opts={"include_object": _declared_for(conn.dialect.name)}
        )
        differences = compare_metadata(context, metadata)
        transaction.rollback()
    assert [(d[0], d[2], d[3].name) for d in differences] == [
        ("remove_column", "leads", "not_declared")
    ]


# --- the suite's two halves ----------------------------------------------------------------


def test_each_mark_selects_exactly_its_half_of_the_suite(request: pytest.FixtureRequest) -> None:
    """`-m sqlite` / `-m postgres` select by these marks: every test carries the mark of
    each database it runs on, and a test of no database carries both."""
    items = request.session.items
    assert len(items) > 1
    for item in items:
        marks = {m for m in ("sqlite", "postgres") if item.get_closest_marker(m)}
        backend = next((m for m in ("sqlite", "postgres") if f"[{m}" in item.nodeid
                        or f"-{m}" in item.nodeid), None)
        declared = _declared_marks(item)
        names = set(getattr(item, "fixturenames", ()))
        if backend is not None:
            assert marks == {backend}, item.nodeid
        elif declared or names & {"sqlite_url", "postgres_url", "database_url", "store"}:
            assert len(marks) == 1, item.nodeid  # a test of one database, by its fixtures
        else:
            assert marks == {"sqlite", "postgres"}, item.nodeid


def _declared_marks(item: pytest.Item) -> set[str]:
    """The database marks a test's function, class or module declares itself."""
    names: set[str] = set()
    for owner in (getattr(item, "obj", None), getattr(item, "cls", None),
                  getattr(item, "module", None)):
        marks = getattr(owner, "pytestmark", [])
        for mark in marks if isinstance(marks, list) else [marks]:
            names.add(mark.name)
    return names & {"sqlite", "postgres"}
