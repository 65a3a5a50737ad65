"""Search through the trigram indexes gives exactly the answers of a plain scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from leads_api.lead import with_derived_columns
from leads_api.query import parse_list_query, split_query_string
from leads_api.store import Store, open_store
from leads_api.store.schema import leads
from leads_api.store.sql import order_by, search_rows_answer, where_clause, with_search_hint
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


@pytest.mark.parametrize(
    ("term", "plan_step"),
    [("smith", "SCAN leads_search VIRTUAL TABLE"), ("6 123", "SCAN leads_search VIRTUAL TABLE"),
     ("sm", "USING INDEX ix_leads_search"), ("ß", "USING INDEX ix_leads_search")],
)
def test_sqlite_searches_use_the_trigram_index(sqlite_url: str, term: str, plan_step: str) -> None:
    """A term of three characters or more is looked up in the FTS5 trigram index and only
    its candidates' rows are read (by rowid); a shorter one has no trigram and scans the
    (org_id, search_text) index. The table hint reaches SQLite (SQLAlchemy's own SQLite
    compiler drops table hints; store/engine.py renders them)."""
    store = open_store(sqlite_url)  # creates and migrates the file if no test has yet
    query = parse_list_query(split_query_string(f"search={quote(term)}"))
    statement = with_search_hint(
        sa.select(leads.c.id, sa.func.count().over())
        .where(where_clause(query, org_id=1, dialect="sqlite"))
        .order_by(*order_by(query)),
        query,
    )
    try:
        with store.read() as conn:
            compiled = statement.compile(dialect=conn.dialect)
            params = tuple(compiled.params[name] for name in compiled.positiontup or ())
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params).all()
    finally:
        store.dispose()
    steps = [str(step[-1]) for step in plan]
    assert any(plan_step in step for step in steps), steps
    if "USING INDEX" in plan_step:  # the index entries' text is tested before any row is read
        assert "leads.search_text LIKE" in str(compiled), str(compiled)
    if "VIRTUAL TABLE" in plan_step:  # its candidates' narrow rows, then the matches' leads
        assert any("search_rows USING INTEGER PRIMARY KEY (rowid=?)" in step
                   for step in steps), steps
        assert any("leads USING INTEGER PRIMARY KEY (rowid=?)" in step for step in steps), steps


# --- the trigram index against the plain scan, through every write path ------------------

# Terms of 1, 2, 3 and more characters; Unicode that folds to something else ('ß' -> 'ss',
# 'Ø' -> 'ø'); digits found in phone digits; LIKE's metacharacters, literal; FTS5's syntax,
# literal too.
TERMS = [
    "s", "ø", "Ø", "ß", "%", "_", "\\", '"', "ss", "sm", "øs", "12", "@g", "\\x",
    "smi", "smith", "SMITHSON", "STRASSE", "straße", "øster", "ØSTERGAARD", "søren",
    "émile", "gmail", "gmail.com", "@x.io", "100%", "0% r", "real_", "_sc", "a\\b",
    'say "hi', "a OR b", "NEAR(x)", "col:umn", "234", "234 567", "(234) 567", "12345678",
    "7946 0958", "+31 6", "020-555", "0101", "zz", "zzz", "x" * 40,
    # Words looked up apart (trigram_pattern), and the text alone deciding (text_decides).
    "john.smith@gmail", "smith@gmail.com", "j.smith", "s.m.i", "hn.sm", "x0101", "ar(x)@col",
]


def plain_search(rows: list[dict[str, Any]], term: str) -> list[str]:
    """The contract's search over lead objects, in Python: ids, newest first."""
    folded = term.strip().casefold()
    digits = "".join(c for c in term if c in "0123456789")
    found = []
    for lead in rows:
        texts = [lead[f].casefold() for f in ("name", "email", "phone") if lead[f] is not None]
        phone_digits = "".join(c for c in (lead["phone"] or "") if c in "0123456789")
        if any(folded in t for t in texts) or (len(digits) >= 3 and digits in phone_digits):
            found.append(lead["id"])
    return found


def searched(client: TestClient, term: str, **params: str) -> tuple[list[str], int]:
    response = client.get("/api/leads", params={**params, "search": term, "limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    return [lead["id"] for lead in body["data"]], body["meta"]["pagination"]["total"]


def assert_search_is_exact(client: TestClient, store: Store) -> None:
    """Every term finds what a scan of all the organization's leads finds (ids, order,
    total); on SQLite the FTS5 index also agrees with the rows it was built from."""
    everything = client.get("/api/leads", params={"limit": 100}).json()["data"]
    for term in TERMS:
        assert searched(client, term) == (
            plain_search(everything, term)[:100], len(plain_search(everything, term))
        ), term
    assert_other_paths_agree(client, everything)
    assert search_rows(store) == mirrored_leads(store)
    if store.dialect == "sqlite":
        with store.write() as conn:  # raises unless the index matches `leads` exactly
            conn.exec_driver_sql(
                "INSERT INTO leads_search (leads_search, rank) VALUES ('integrity-check', 1)"
            )


def assert_other_paths_agree(client: TestClient, everything: list[dict[str, Any]]) -> None:
    """Pages that `search_rows` alone cannot answer read the matches from `leads` (another
    order, another filter); those that it can, in either direction of creation, read only it.
    Each gives the scan's answer."""
    found_by = {term: set(plain_search(everything, term)) for term in TERMS}
    for params, keep in (
        ({"sort": "value:desc"}, lambda lead: True),
        ({"sort": "createdAt:asc"}, lambda lead: True),
        ({"sort": "name:asc"}, lambda lead: True),  # search_rows alone, nulls last
        ({"sort": "email:desc"}, lambda lead: True),
        ({"status": "won"}, lambda lead: lead["status"] == "won"),
        ({"sort": "name:asc", "source": "api"}, lambda lead: lead["source"] == "api"),
    ):
        ordered = client.get("/api/leads", params={**params, "limit": 100}).json()["data"]
        unfiltered = client.get(
            "/api/leads", params={"sort": params.get("sort", "createdAt:desc"), "limit": 100}
        ).json()["data"]
        assert [lead["id"] for lead in ordered] == [lead["id"] for lead in unfiltered if keep(lead)]
        for term, found in found_by.items():
            want = [lead["id"] for lead in ordered if lead["id"] in found]
            assert searched(client, term, **params) == (want, len(want)), (term, params)


# What `search_rows` holds of each lead (migration 0014), as `leads` has it.
MIRRORED = "org_id, id, created_at, name_fold, email_fold, phone_fold, phone_digits"


def search_rows(store: Store) -> list[tuple[Any, ...]]:
    key = "lead_row" if store.dialect == "sqlite" else "search_text"
    with store.read() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(
            f"SELECT {key}, {MIRRORED} FROM search_rows ORDER BY id"
        )]


def mirrored_leads(store: Store) -> list[tuple[Any, ...]]:
    key = "rowid" if store.dialect == "sqlite" else "search_text"
    with store.read() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(
            f"SELECT {key}, {MIRRORED} FROM leads ORDER BY id"
        )]


CREATED = [
    {"name": "John Smith", "email": "john.smith@gmail.com", "phone": "+1 (234) 567-890"},
    {"name": "Jane SMITHSON", "email": "jane@outlook.com", "phone": "+31 6 12345678"},
    {"name": "Karl Straße", "email": "karl@strasse.de"},
    {"name": "Søren ØSTERGAARD", "email": "soren@x.io", "phone": "020-555 0101"},
    {"name": "100% Real_Name", "email": "under_score@x.io", "phone": "555"},
    {"name": "a\\b say \"hi\"", "email": "NEAR(x)@col:umn.org"},
    {"email": "nobody@gmail.com", "phone": "+44 20 7946 0958"},
    {"name": "Ab"},
]


def test_the_index_follows_creates_patches_and_imports(
    client: TestClient, store: Store, org: Organization, make_org: Any, cli: Any,
    add_leads: Any, tmp_path: Path,
) -> None:
    add_leads({"name": "John Smith of another organization", "phone": "234 567"},
              into=make_org())
    ids = []
    for body in CREATED:
        response = client.post("/api/leads", json=body)
        assert response.status_code in (200, 201), response.text
        ids.append(response.json()["data"]["id"])
    assert_search_is_exact(client, store)

    # PATCH changes no searched text (name, email and phone identify, never change) but
    # rewrites the row: the index must not lose it.
    for lead_id in ids[:3]:
        response = client.patch("/api/leads", json={"id": lead_id, "status": "won"})
        assert response.status_code == 200, response.text
    assert_search_is_exact(client, store)

    # An import that changes names, emails and phones of stored leads (and clears some),
    # and creates new ones.
    lines = [
        {"id": ids[0], "name": "Johanna Østergaard", "email": "JO@strasse.de",
         "phone": "+31 6 87654321"},
        {"id": ids[1], "name": None, "email": None, "phone": None, "custom": "kept"},
        {"id": ids[2], "name": "Karl Smith", "email": "karl@strasse.de", "phone": "0101",
         "createdAt": "2025-01-02T03:04:05.000Z"},  # now the oldest: search_rows moves too
        {"id": ids[3], "createdAt": "2024-06-01T00:00:00.000Z"},  # only the time changes
        {"name": "Émile Zoë", "email": "emile@gmail.com", "phone": "+33 1 23 45 67 89"},
        {"name": "ßmith", "email": "x_y%z@x.io"},
    ]
    path = tmp_path / "leads.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    result = cli("import", "--org", org.name, path)
    assert result.exit_code == 0, result.output
    assert_search_is_exact(client, store)


@pytest.mark.parametrize(
    ("query_string", "columns"),
    [("search=smith", ["id", "created_at"]),
     ("search=smith&sort=createdAt:asc", ["id", "created_at"]),
     ("search=smith&sort=name:asc", ["id", "name_fold"]),
     ("search=smith&sort=value:desc", None), ("search=smith&status=won", None),
     ("status=won", None)],
)
def test_which_searches_search_rows_answer_alone(
    query_string: str, columns: list[str] | None
) -> None:
    """A searched page reads only `search_rows` for its matches and their order when nothing
    else is asked of them (the rest read the matches' lead rows for a filter or a sort key)."""
    assert search_rows_answer(parse_list_query(split_query_string(query_string))) == columns
