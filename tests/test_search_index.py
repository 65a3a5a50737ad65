"""Search through the trigram indexes gives exactly the answers of a plain scan."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from leads_api.lead import with_derived_columns
from leads_api.query import parse_list_query, split_query_string
from leads_api.store import Store, open_store
from leads_api.store.schema import leads
from leads_api.store.sql import order_by, where_clause, with_search_hint
from leads_api.store.tenants import Organization, take_change_position

PEOPLE = [
    ("John Smith", "john.smith@gmail.com", "+1 (234) 567-890"),
    ("Jane SMITHSON", "jane@outlook.com", "+31 6 12345678"),
    ("Karl Straße", "karl@strasse.de", None),
    ("Émile Zola", "EMILE@example.com", "020-555 0101"),
    ("100% Real_Name", "under_score@x.io", "555"),
    (None, "nobody@gmail.com", "+44 20 7946 0958"),
    ("Ab", None, None),
]


def expected(term: str) -> set[str]:
    folded = term.strip().casefold()
    digits = "".join(c for c in term if c in "0123456789")
    found = set()
    for name, email, phone in PEOPLE:
        texts = [t.casefold() for t in (name, email, phone) if t]
        phone_digits = "".join(c for c in (phone or "") if c in "0123456789")
        if any(folded in t for t in texts) or (len(digits) >= 3 and digits in phone_digits):
            found.add(name or email or "")
    return found


@pytest.fixture
def people(add_leads: Any) -> list[dict[str, Any]]:
    return add_leads(*({"name": n, "email": e, "phone": p} for n, e, p in PEOPLE))


@pytest.mark.parametrize(
    "term",
    ["smith", "SMITH", "gmail", "strasse", "STRASSE", "émile", "EMILE", "234 567", "555",
     "12345678", "100%", "real_", "_", "%", "ab", "a", "zz", "@", "john.smith@gmail.com",
     "outlook.com", "0958", "7946 0958"],
)
def test_search_matches_plain_scan(client: TestClient, people: Any, term: str) -> None:
    data = client.get("/api/leads", params={"search": term, "limit": 100}).json()["data"]
    assert {lead["name"] or lead["email"] for lead in data} == expected(term)


def test_search_index_follows_updates(
    client: TestClient, store: Store, org: Organization, people: Any
) -> None:
    """Changing a lead's name changes what a search finds. (The raw statements stand in for
    writers, so like every writer they move the organization's data version.)"""
    lead_id = people[0]["id"]
    changed = with_derived_columns({"name": "Zebediah Quux", "email": None, "phone": None})
    changed.pop("email")
    changed.pop("phone")
    with store.write() as conn:
        conn.execute(
            leads.update().where(leads.c.org_id == org.id, leads.c.id == lead_id).values(changed)
        )
        take_change_position(conn, org_id=org.id)
    assert client.get("/api/leads", params={"search": "zebediah"}).json()["meta"][
        "pagination"
    ]["total"] == 1
    ids = [d["id"] for d in client.get("/api/leads", params={"search": "john"}).json()["data"]]
    assert lead_id not in ids
    with store.write() as conn:
        conn.execute(sa.delete(leads).where(leads.c.org_id == org.id, leads.c.id == lead_id))
        take_change_position(conn, org_id=org.id)
    assert client.get("/api/leads", params={"search": "zebediah"}).json()["data"] == []


def test_search_never_crosses_organizations(
    client: TestClient, people: Any, add_leads: Any, make_org: Any
) -> None:
    other = make_org()
    add_leads({"name": "John Smith the Other"}, into=other)
    names = {d["name"] for d in client.get("/api/leads?search=smith").json()["data"]}
    assert "John Smith the Other" not in names


def test_sqlite_searches_scan_the_search_index(sqlite_url: str) -> None:
    """The INDEXED BY hint reaches SQLite (SQLAlchemy's own SQLite compiler drops table
    hints; store/engine.py renders them) and SQLite plans the search on that index."""
    store = open_store(sqlite_url)  # creates and migrates the file if no test has yet
    query = parse_list_query(split_query_string("search=smith"))
    statement = with_search_hint(
        sa.select(leads.c.id)
        .where(where_clause(query, org_id=1, dialect="sqlite"))
        .order_by(*order_by(query)),
        query,
    )
    try:
        with store.read() as conn:
            compiled = statement.compile(dialect=conn.dialect)
            assert "FROM leads INDEXED BY ix_leads_search" in str(compiled)
            params = tuple(compiled.params[name] for name in compiled.positiontup or ())
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params).all()
    finally:
        store.dispose()
    assert any("USING INDEX ix_leads_search" in str(step[-1]) for step in plan), plan
