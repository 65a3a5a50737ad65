"""GET /api/leads over HTTP, on both databases: the envelope, pagination, every filter kind,
search, sorting, field selection, output values and errors (CONTRACT.md sections 2-4).

Each test inserts a small set of controlled leads into its own organization and names them by
a key, so an expectation reads as the set (or the order) of keys that must come back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cmp_to_key
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from leads_api.fields import FIELD_NAMES, LEAD_FIELDS, SORTABLE, SOURCES, STATUSES, Kind

AddLeads = Callable[..., list[dict[str, Any]]]

REQUEST_ID = re.compile(r"req_[0-9a-f]{12}")
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = 86_400_000


def ms(iso: str) -> int:
    """Epoch milliseconds of a UTC ISO 8601 instant, by the standard library."""
    return (datetime.fromisoformat(iso).replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


def get(client: TestClient, qs: str = "") -> httpx.Response:
    return client.get("/api/leads" + (f"?{qs}" if qs else ""))


def listed(client: TestClient, qs: str = "") -> dict[str, Any]:
    response = get(client, qs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def insert(add_leads: AddLeads, rows: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Insert keyed rows; return id -> key."""
    stored = add_leads(*rows.values())
    return {row["id"]: key for key, row in zip(rows, stored, strict=True)}


def matching(client: TestClient, keys: dict[str, str], qs: str) -> set[str]:
    """The keys of every lead the query matches (one page of 100 holds them all)."""
    body = listed(client, f"{qs}&limit=100" if qs else "limit=100")
    found = [keys[lead["id"]] for lead in body["data"]]
    assert len(found) == len(set(found)) == body["meta"]["pagination"]["total"]
    return set(found)


# --- envelope ------------------------------------------------------------------------------


def assert_meta(response: httpx.Response, meta: dict[str, Any]) -> None:
    assert REQUEST_ID.fullmatch(meta["requestId"])
    assert response.headers["X-Request-Id"] == meta["requestId"]
    assert TIMESTAMP.fullmatch(meta["timestamp"])
    stamped = datetime.fromisoformat(meta["timestamp"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - stamped) < timedelta(minutes=1)


def test_success_envelope(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"name": "One"})
    response = get(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["success", "data", "meta"]
    assert body["success"] is True
    assert list(body["meta"]) == ["pagination", "requestId", "timestamp"]
    assert list(body["meta"]["pagination"]) == [
        "limit", "page", "totalPages", "total", "hasMore", "nextCursor"
    ]
    assert_meta(response, body["meta"])


def test_error_envelope(client: TestClient) -> None:
    response = get(client, "limit=0")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["success", "error", "meta"]
    assert body["success"] is False
    assert list(body["error"]) == ["code", "message", "details"]
    assert list(body["meta"]) == ["requestId", "timestamp"]
    assert_meta(response, body["meta"])


def test_every_request_gets_its_own_id(client: TestClient) -> None:
    ids = {get(client).headers["X-Request-Id"] for _ in range(5)}
    ids |= {get(client, "limit=0").headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 10


def offset_pagination(body: dict[str, Any]) -> dict[str, Any]:
    """`meta.pagination` without its nextCursor, which must be there exactly when more
    pages follow (tests/test_cursors.py checks where it leads)."""
    pagination = dict(body["meta"]["pagination"])
    cursor = pagination.pop("nextCursor")
    assert (cursor is not None) == pagination["hasMore"]
    assert cursor is None or isinstance(cursor, str)
    return pagination


def test_an_empty_organization_lists_nothing(client: TestClient) -> None:
    body = listed(client)
    assert body["data"] == []
    assert offset_pagination(body) == {
        "limit": 50, "page": 1, "totalPages": 0, "total": 0, "hasMore": False,
    }


# --- pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "qs", "size", "pagination"),
    [
        (7, "", 7, {"limit": 50, "page": 1, "totalPages": 1, "total": 7, "hasMore": False}),
        (7, "limit=3", 3, {"limit": 3, "page": 1, "totalPages": 3, "total": 7, "hasMore": True}),
        (7, "limit=3&page=2", 3,
         {"limit": 3, "page": 2, "totalPages": 3, "total": 7, "hasMore": True}),
        (7, "limit=3&page=3", 1,
         {"limit": 3, "page": 3, "totalPages": 3, "total": 7, "hasMore": False}),
        (7, "limit=3&page=4", 0,
         {"limit": 3, "page": 4, "totalPages": 3, "total": 7, "hasMore": False}),
        (7, "limit=7", 7, {"limit": 7, "page": 1, "totalPages": 1, "total": 7, "hasMore": False}),
        (7, "limit=1&page=7", 1,
         {"limit": 1, "page": 7, "totalPages": 7, "total": 7, "hasMore": False}),
        (7, "limit=3&page=5&createdAt[gte]=2026-01-01", 0,  # past the end, filtered
         {"limit": 3, "page": 5, "totalPages": 3, "total": 7, "hasMore": False}),
        (7, "limit=100&page=999999999999999999", 0,
         {"limit": 100, "page": 999_999_999_999_999_999, "totalPages": 1, "total": 7,
          "hasMore": False}),
        (0, "page=3", 0, {"limit": 50, "page": 3, "totalPages": 0, "total": 0, "hasMore": False}),
        (101, "limit=100", 100,
         {"limit": 100, "page": 1, "totalPages": 2, "total": 101, "hasMore": True}),
        (101, "limit=100&page=2", 1,
         {"limit": 100, "page": 2, "totalPages": 2, "total": 101, "hasMore": False}),
        (60, "", 50, {"limit": 50, "page": 1, "totalPages": 2, "total": 60, "hasMore": True}),
    ],
)
def test_pagination(
    client: TestClient, add_leads: AddLeads, count: int, qs: str, size: int,
    pagination: dict[str, Any],
) -> None:
    add_leads(*({"created_at": ms("2026-01-01T00:00:00") + i} for i in range(count)))
    body = listed(client, qs)
    assert len(body["data"]) == size
    assert offset_pagination(body) == pagination


def test_pages_cover_the_list_once_in_order(client: TestClient, add_leads: AddLeads) -> None:
    add_leads(*({"created_at": ms("2026-01-01T00:00:00") + i % 3} for i in range(23)))
    whole = [lead["id"] for lead in listed(client, "limit=100")["data"]]
    paged: list[str] = []
    for page in range(1, 6):
        paged += [lead["id"] for lead in listed(client, f"limit=5&page={page}")["data"]]
    assert paged == whole
    assert len(set(whole)) == 23


def test_total_counts_the_filter_not_the_page(client: TestClient, add_leads: AddLeads) -> None:
    add_leads(*({"status": "won"} for _ in range(5)), *({"status": "lost"} for _ in range(4)))
    body = listed(client, "status=won&limit=2&page=2")
    assert len(body["data"]) == 2
    assert offset_pagination(body) == {
        "limit": 2, "page": 2, "totalPages": 3, "total": 5, "hasMore": True,
    }


# --- filters -------------------------------------------------------------------------------

FILTER_LEADS: dict[str, dict[str, Any]] = {
    "dec31_end": {"created_at": ms("2025-12-31T23:59:59.999")},
    "jan1_start": {
        "created_at": ms("2026-01-01T00:00:00"), "updated_at": ms("2026-03-05T08:00:00"),
    },
    "feb": {
        "created_at": ms("2026-02-15T12:00:00"), "status": "won", "source": "gtm",
        "value_cents": 500_000, "utm_source": "Google", "website": "https://a.io",
        "gclid": "G1", "label_id": "L1", "qualified_at": ms("2026-02-16T09:00:00"),
        "utm_medium": "cpc", "utm_campaign": "Spring",
    },
    "mar1_10": {
        "created_at": ms("2026-03-01T10:00:00"), "source": "wordpress", "value_cents": 0,
        "website": "https://b.io",
    },
    "mar1_late": {
        "created_at": ms("2026-03-01T23:59:59.999"), "status": "lost", "source": "import",
        "value_cents": 9_950, "utm_source": "google", "gclid": "g1",
    },
    "mar2": {
        "created_at": ms("2026-03-02T00:00:00"), "status": "qualified", "source": "manual",
        "value_cents": 1_225, "fbc": "fb.1", "ga4cid": "GA.1", "li_fat_id": "li",
        "dclid": "dc1", "wbraid": "wb1", "gbraid": "gb1", "epik": "ep1",
        "session_id": "8d3c2b1a-0f9e-4d7c-b6a5-4e3d2c1b0a99",
    },
}
EVERY = set(FILTER_LEADS)
WITH_VALUE = {"feb", "mar1_10", "mar1_late", "mar2"}


def cases(*rows: tuple[str, set[str]]) -> list[Any]:
    return [pytest.param(qs, expected, id=qs or "<none>") for qs, expected in rows]


@pytest.mark.parametrize(
    ("qs", "expected"),
    cases(
        ("", EVERY),
        # status and source: equality, lists, repeats
        ("status=won", {"feb"}),
        ("status=open", {"dec31_end", "jan1_start", "mar1_10"}),
        ("status=won,lost", {"feb", "mar1_late"}),
        ("status=won&status=lost", {"feb", "mar1_late"}),
        ("status=%20won%20,,", {"feb"}),
        ("source=gtm", {"feb"}),
        ("source=import,manual", {"mar1_late", "mar2"}),
        ("source=api", {"dec31_end", "jan1_start"}),
        # text: exact and case-sensitive
        ("utm_source=Google", {"feb"}),
        ("utm_source=google", {"mar1_late"}),
        ("utm_source=GOOGLE", set()),
        ("utm_source=Goog", set()),
        ("utm_source=Google,google", {"feb", "mar1_late"}),
        ("utm_source=Google&utm_source=google", {"feb", "mar1_late"}),
        ("website=https://a.io", {"feb"}),
        ("website=https%3A%2F%2Fb.io", {"mar1_10"}),
        ("gclid=G1", {"feb"}),
        ("gclid=g1", {"mar1_late"}),
        ("labelId=L1", {"feb"}),
        ("utm_medium=cpc&utm_campaign=Spring", {"feb"}),
        ("fbc=fb.1&ga4cid=GA.1&li_fat_id=li", {"mar2"}),
        ("dclid=dc1&wbraid=wb1&gbraid=gb1&epik=ep1", {"mar2"}),
        ("epik=EP1", set()),
        ("sessionId=8d3c2b1a-0f9e-4d7c-b6a5-4e3d2c1b0a99", {"mar2"}),
        ("sessionId=8D3C2B1A-0F9E-4D7C-B6A5-4E3D2C1B0A99", set()),
        ("sessionId=x,8d3c2b1a-0f9e-4d7c-b6a5-4e3d2c1b0a99", {"mar2"}),
        # exists
        ("gclid[exists]=true", {"feb", "mar1_late"}),
        ("gclid[exists]=FALSE", EVERY - {"feb", "mar1_late"}),
        ("value[exists]=true", WITH_VALUE),
        ("value[exists]=false", EVERY - WITH_VALUE),
        ("qualifiedAt[exists]=True", {"feb"}),
        ("qualifiedAt[exists]=false", EVERY - {"feb"}),
        ("createdAt[exists]=false", set()),
        ("labelId[exists]=true", {"feb"}),
        ("website[exists]=true", {"feb", "mar1_10"}),
        ("utm_source[exists]=false", EVERY - {"feb", "mar1_late"}),
        ("fbc[exists]=true&gclid[exists]=true", set()),
        ("dclid[exists]=true", {"mar2"}),
        ("wbraid[exists]=true&gbraid[exists]=true&epik[exists]=true", {"mar2"}),
        ("epik[exists]=false", EVERY - {"mar2"}),
        ("epik[exists]=true&gclid[exists]=true", set()),
        # value: numeric equality and comparisons to the cent
        ("value=5000", {"feb"}),
        ("value=5000.00", {"feb"}),
        ("value=5000.001", set()),
        ("value=99.5", {"mar1_late"}),
        ("value=99.50", {"mar1_late"}),
        ("value=0", {"mar1_10"}),
        ("value=12.25,5000", {"mar2", "feb"}),
        ("value[gte]=99.5", {"feb", "mar1_late"}),
        ("value[gt]=99.5", {"feb"}),
        ("value[gt]=99.49", {"feb", "mar1_late"}),
        ("value[gt]=99.499", {"feb", "mar1_late"}),
        ("value[gte]=99.501", {"feb"}),
        ("value[lt]=12.25", {"mar1_10"}),
        ("value[lte]=12.25", {"mar1_10", "mar2"}),
        ("value[lte]=12.249", {"mar1_10"}),
        ("value[gte]=-1", WITH_VALUE),
        ("value[lt]=0", set()),
        ("value[gte]=10&value[lte]=100", {"mar1_late", "mar2"}),
        ("value[gte]=10&value[gte]=100", {"feb"}),
        ("value=" + "1" * 5000, set()),
        ("value[lte]=" + "9" * 5000, WITH_VALUE),
        # dates: whole UTC days
        ("createdAt[gte]=2026-01-01&createdAt[lte]=2026-03-01",
         {"jan1_start", "feb", "mar1_10", "mar1_late"}),
        ("createdAt=2026-03-01", {"mar1_10", "mar1_late"}),
        ("createdAt=2026-03-01,2026-01-01", {"mar1_10", "mar1_late", "jan1_start"}),
        ("createdAt[gt]=2026-03-01", {"mar2"}),
        ("createdAt[gte]=2026-03-02", {"mar2"}),
        ("createdAt[lt]=2026-01-01", {"dec31_end"}),
        ("createdAt[lte]=2025-12-31", {"dec31_end"}),
        ("createdAt[gt]=2025-12-31&createdAt[lt]=2026-03-01", {"jan1_start", "feb"}),
        # dates: instants, offsets, fractions
        ("createdAt[gte]=2026-03-01T10:00Z", {"mar1_10", "mar1_late", "mar2"}),
        ("createdAt[gt]=2026-03-01T10:00Z", {"mar1_late", "mar2"}),
        ("createdAt[gte]=2026-03-01T10:00", {"mar1_10", "mar1_late", "mar2"}),
        ("createdAt[gte]=2026-03-01T12:00%2B02:00", {"mar1_10", "mar1_late", "mar2"}),
        ("createdAt[gte]=2026-03-01T12:00+02:00", {"mar1_10", "mar1_late", "mar2"}),
        ("createdAt[gt]=2026-03-01T12:00+02:00", {"mar1_late", "mar2"}),
        ("createdAt[lt]=2026-03-01T05:00-05:00", {"dec31_end", "jan1_start", "feb"}),
        ("createdAt=2026-03-01T10:00:00.000Z", {"mar1_10"}),
        ("createdAt=2026-03-01T11:00:00%2B01:00", {"mar1_10"}),
        ("createdAt=2026-03-01T10:00:00.0001Z", set()),
        ("createdAt[lte]=2026-03-01T23:59:59.999Z", EVERY - {"mar2"}),
        ("createdAt[lt]=2026-03-01T23:59:59.999Z", EVERY - {"mar2", "mar1_late"}),
        ("createdAt[gte]=2026-03-01T23:59:59.9995Z", {"mar2"}),
        ("createdAt[gt]=2026-03-01T23:59:59.9985Z", {"mar1_late", "mar2"}),
        ("createdAt[lt]=2026-01-01T00:00:00.0001Z", {"dec31_end", "jan1_start"}),
        # the other date fields
        ("updatedAt[gte]=2026-03-01", {"jan1_start", "mar1_10", "mar1_late", "mar2"}),
        ("qualifiedAt[lte]=2026-02-16", {"feb"}),
        ("qualifiedAt[lt]=2026-02-16", set()),
        ("qualifiedAt=2026-02-16", {"feb"}),
        ("expiresAt[lt]=2026-04-01", {"dec31_end"}),
        ("expiresAt=2026-04-01", {"jan1_start"}),
        # legacy
        ("updated_after=2026-03-01", {"jan1_start", "mar1_10", "mar1_late", "mar2"}),
        ("updated_after=2026-03-05T08:00:00.001Z", set()),
        ("updated_after=2026-03-05T08:00Z", {"jan1_start"}),
        # several fields: AND
        ("status=open&createdAt=2026-03-01", {"mar1_10"}),
        ("status=won&source=import", set()),
        ("status=won,lost&value[lt]=1000", {"mar1_late"}),
        ("source=gtm,import&gclid[exists]=true&value[gt]=100", {"feb"}),
        # empty means absent
        ("status=&limit=", EVERY),
        ("value=,", EVERY),
        ("value[gte]=,&gclid[exists]=&createdAt=%20", EVERY),
    ),
)
def test_filters(
    client: TestClient, add_leads: AddLeads, qs: str, expected: set[str]
) -> None:
    keys = insert(add_leads, FILTER_LEADS)
    assert matching(client, keys, qs) == expected


def test_long_filter_lists(client: TestClient, add_leads: AddLeads) -> None:
    """Long value lists and repeated operators (up to the 1,000-value limit) answer like
    their short forms."""
    keys = insert(add_leads, FILTER_LEADS)
    amounts = ",".join(f"{cents / 100:.2f}" for cents in range(9_500, 10_400))  # 95.00-103.99
    assert matching(client, keys, f"value={amounts}") == {"mar1_late"}
    days = {str(datetime(2024, 1, 1) + timedelta(days=2 * d))[:10] for d in range(900)}
    on_those_days = {
        key for key, row in FILTER_LEADS.items()
        if str(EPOCH + timedelta(milliseconds=row["created_at"]))[:10] in days
    }
    assert matching(client, keys, f"createdAt={','.join(sorted(days))}") == on_those_days
    repeated = "&".join(f"value[gte]={n}" for n in range(900))
    assert matching(client, keys, repeated) == {"feb"}
    gclids = ",".join(f"G{n}" for n in range(990))
    assert matching(client, keys, f"gclid={gclids}") == {"feb"}


# --- search --------------------------------------------------------------------------------

SEARCH_LEADS: dict[str, dict[str, Any]] = {
    "strasse": {"name": "Straße Müller", "email": "S.Mueller@Example.com",
                "phone": "+1 (234) 567-890"},
    "emile": {"name": "Émile Zola", "email": "emile@zola.fr"},
    "percent": {"name": "100% Pure"},
    "snake": {"name": "snake_case", "email": "snake_case@x.io"},
    "xcase": {"name": "theXcase"},  # what `e_c` would match if `_` were a wildcard
    "backslash": {"name": "back\\slash"},
    "slash": {"name": "Slasher", "email": "a/b@x.io"},
    "plain": {"name": "Plain Jane", "phone": "06-111 222 33", "status": "won"},
    "nameless": {"email": "only@mail.io"},
}


@pytest.mark.parametrize(
    ("qs", "expected"),
    cases(
        # case-insensitive through Unicode case folding, on name, email and phone
        ("search=STRASSE", {"strasse"}),
        ("search=strasse", {"strasse"}),
        ("search=Stra%C3%9Fe", {"strasse"}),
        ("search=STRA%C3%9FE", {"strasse"}),
        ("search=%C3%9F", {"strasse"}),
        ("search=ss", {"strasse"}),
        ("search=M%C3%9CLLER", {"strasse"}),
        ("search=example.COM", {"strasse"}),
        ("search=s.mueller%40", {"strasse"}),
        ("search=%C3%89MILE", {"emile"}),
        ("search=%C3%A9mile%20z", {"emile"}),
        ("search=emile", {"emile"}),  # the email has no accent
        ("search=EMILE%20ZOLA", set()),  # accents are not removed from the name
        ("search=jane", {"plain"}),
        ("search=%20%20jane%20%20", {"plain"}),
        ("search=ONLY%40", {"nameless"}),
        ("search=zzz", set()),
        ("search=zola%0Aemile", set()),  # a term never spans two fields ...
        ("search=jane%0A06", set()),  # ... nor a field and the phone
        # % _ \ and / are literal
        ("search=%25", {"percent"}),
        ("search=0%25%20p", {"percent"}),
        ("search=_", {"snake"}),
        ("search=e_c", {"snake"}),
        ("search=E_C", {"snake"}),
        ("search=%5C", {"backslash"}),
        ("search=k%5Cs", {"backslash"}),
        ("search=/", {"slash"}),
        ("search=a/b", {"slash"}),
        ("search=%25_", set()),
        # phone text and phone digits
        ("search=(234)", {"strasse"}),
        ("search=234%20567", {"strasse"}),
        ("search=234-567", {"strasse"}),
        ("search=(234)%20567-890", {"strasse"}),
        ("search=1234567890", {"strasse"}),
        ("search=%2B1-234-567-890", {"strasse"}),
        ("search=111", {"plain"}),
        ("search=1%201%201", {"plain"}),  # 3 digits: found in the phone's digits only
        ("search=4%205%206", {"strasse"}),
        ("search=22%2023", {"plain"}),
        ("search=4%205", set()),  # 2 digits are no digit search
        ("search=%D9%A2%D9%A3%D9%A4", set()),  # Arabic-Indic digits are not digits here
        # with filters
        ("search=jane&status=won", {"plain"}),
        ("search=jane&status=open", set()),
        ("search=a&status=won", {"plain"}),
    ),
)
def test_search(client: TestClient, add_leads: AddLeads, qs: str, expected: set[str]) -> None:
    keys = insert(add_leads, SEARCH_LEADS)
    assert matching(client, keys, qs) == expected


# --- sorting -------------------------------------------------------------------------------

T0 = ms("2026-02-01T12:00:00")
SORT_LEADS: dict[str, dict[str, Any]] = {
    "a": {"name": "émile", "email": "b@x.io", "status": "open", "value_cents": 500_000,
          "created_at": T0, "updated_at": T0 + 5, "qualified_at": None},
    "b": {"name": "Bob", "email": "A@x.io", "status": "won", "value_cents": None,
          "created_at": T0, "updated_at": T0, "qualified_at": T0},
    "c": {"name": "alice", "email": None, "status": "lost", "value_cents": 9_950,
          "created_at": T0 + 1, "updated_at": T0 + 1, "qualified_at": None},
    "d": {"name": None, "email": "a@x.io", "status": "qualified", "value_cents": 1_225,
          "created_at": T0 - 5, "updated_at": T0 + 9, "qualified_at": T0 + 3},
    "e": {"name": "Zoë", "email": "Émile@x.io", "status": "open", "value_cents": 0,
          "created_at": T0 + 1, "updated_at": T0 + 5, "qualified_at": T0},
    "f": {"name": "bob", "email": "c@x.io", "status": "lost", "value_cents": None,
          "created_at": T0, "updated_at": T0 - 1, "qualified_at": None},
    "g": {"name": "Alice", "email": None, "status": "won", "value_cents": 9_950,
          "created_at": T0 + 2, "updated_at": T0 + 5, "qualified_at": T0 - 1},
    "h": {"name": "ALICE", "email": "b@X.IO", "status": "open", "value_cents": 9_950,
          "created_at": T0 - 5, "updated_at": T0, "qualified_at": None},
}
SORT_COLUMNS = {
    "name": "name", "email": "email", "status": "status", "value": "value_cents",
    "createdAt": "created_at", "updatedAt": "updated_at", "qualifiedAt": "qualified_at",
    "expiresAt": "expires_at",
}


def sort_value(row: dict[str, Any], field: str) -> Any:
    value = row.get(SORT_COLUMNS[field])
    if field == "expiresAt":
        value = row["created_at"] + 90 * DAY  # what the fixture stores
    if field in ("name", "email") and value is not None:
        return value.casefold()  # compared code point by code point
    return value


def expected_order(rows: Sequence[dict[str, Any]], keys: Sequence[tuple[str, bool]]) -> list[str]:
    """The contract's order: keys in turn, nulls last either way, ties by id in the direction
    of the last key."""

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for field, descending in keys:
            x, y = sort_value(a, field), sort_value(b, field)
            if x == y:
                continue
            if x is None or y is None:
                return 1 if x is None else -1
            return (-1 if x < y else 1) * (-1 if descending else 1)
        return (-1 if a["id"] < b["id"] else 1) * (-1 if keys[-1][1] else 1)

    return [row["id"] for row in sorted(rows, key=cmp_to_key(compare))]


def sorted_ids(client: TestClient, qs: str) -> list[str]:
    return [lead["id"] for lead in listed(client, f"{qs}&limit=100")["data"]]


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("field", sorted(SORTABLE))
def test_sort_by_each_field(
    client: TestClient, add_leads: AddLeads, field: str, direction: str
) -> None:
    rows = add_leads(*SORT_LEADS.values())
    expected = expected_order(rows, [(field, direction == "desc")])
    assert sorted_ids(client, f"sort={field}:{direction}") == expected
    if direction == "asc":
        assert sorted_ids(client, f"sort={field}") == expected


@pytest.mark.parametrize(
    "sort",
    [
        "status,value:desc",
        "status:desc,value",
        "value:desc,name",
        "qualifiedAt,createdAt:desc",
        "status:DESC,email:Asc",
        "name,email:desc,createdAt",
        "updatedAt:desc,status:desc",
        "email:desc,qualifiedAt:desc",
    ],
)
def test_sort_by_several_keys(client: TestClient, add_leads: AddLeads, sort: str) -> None:
    rows = add_leads(*SORT_LEADS.values())
    keys = [
        (name, direction.lower() == "desc")
        for name, _, direction in (item.partition(":") for item in sort.split(","))
    ]
    assert sorted_ids(client, f"sort={sort}") == expected_order(rows, keys)


def test_default_sort_is_newest_first_then_id(client: TestClient, add_leads: AddLeads) -> None:
    rows = add_leads(*SORT_LEADS.values())
    expected = expected_order(rows, [("createdAt", True)])
    assert sorted_ids(client, "") == expected
    assert sorted_ids(client, "sort=createdAt:desc") == expected


@pytest.mark.parametrize(
    ("legacy", "modern"),
    [("created_at", "createdAt"), ("updated_at:desc", "updatedAt:desc"),
     ("qualified_at,created_at:desc", "qualifiedAt,createdAt:desc")],
)
def test_legacy_sort_names(
    client: TestClient, add_leads: AddLeads, legacy: str, modern: str
) -> None:
    add_leads(*SORT_LEADS.values())
    assert sorted_ids(client, f"sort={legacy}") == sorted_ids(client, f"sort={modern}")


def test_names_compare_case_folded_by_code_point(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"name": "émile"}, {"name": "Bob"}, {"name": "alice"}, {"name": None})
    names = [lead["name"] for lead in listed(client, "sort=name")["data"]]
    assert names == ["alice", "Bob", "émile", None]
    names = [lead["name"] for lead in listed(client, "sort=name:desc")["data"]]
    assert names == ["émile", "Bob", "alice", None]


def test_status_sorts_as_text(client: TestClient, add_leads: AddLeads) -> None:
    add_leads(*({"status": status} for status in STATUSES))
    statuses = [lead["status"] for lead in listed(client, "sort=status")["data"]]
    assert statuses == ["lost", "open", "qualified", "won"]


def test_nulls_last_in_both_directions(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"value_cents": None}, {"value_cents": 100}, {"value_cents": None},
              {"value_cents": 200})
    for sort, values in (("value", [1, 2, None, None]), ("value:desc", [2, 1, None, None])):
        assert [lead["value"] for lead in listed(client, f"sort={sort}")["data"]] == values


@pytest.mark.parametrize("sort", ["status", "status:desc", "status:desc,value", "value:desc"])
def test_stable_pages_over_many_equal_keys(
    client: TestClient, add_leads: AddLeads, sort: str
) -> None:
    rows = add_leads(*(
        {"status": STATUSES[i % 2], "value_cents": 100 * (i % 3), "created_at": T0}
        for i in range(31)
    ))
    keys = [(item.partition(":")[0], item.endswith(":desc")) for item in sort.split(",")]
    expected = expected_order(rows, keys)
    paged: list[str] = []
    for page in range(1, 9):
        paged += [lead["id"] for lead in listed(client, f"sort={sort}&limit=4&page={page}")["data"]]
    assert paged == expected


@pytest.mark.parametrize("sort", ["", "value:desc,name", "name", "status:desc"])
def test_deep_pages_keep_the_order(client: TestClient, add_leads: AddLeads, sort: str) -> None:
    """Pages past the first thousand rows (read another way) continue the same order."""
    rows = add_leads(*(
        {"name": f"n{i % 13}", "status": STATUSES[i % 4], "created_at": T0 + i % 5,
         "value_cents": None if i % 6 == 0 else (i * 7919) % 50 * 100}
        for i in range(1010)
    ))
    keys = [(item.partition(":")[0], item.endswith(":desc")) for item in sort.split(",") if item]
    expected = expected_order(rows, keys or [("createdAt", True)])
    for limit, page in ((3, 335), (7, 144), (100, 11), (50, 21), (100, 10)):
        body = listed(client, f"sort={sort}&limit={limit}&page={page}")
        offset = (page - 1) * limit
        assert [lead["id"] for lead in body["data"]] == expected[offset:offset + limit]
        assert body["meta"]["pagination"]["total"] == 1010


# --- field selection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "keys"),
    [
        ("name", ["id", "name"]),
        ("email,name", ["id", "name", "email"]),
        ("%20value%20,%20status", ["id", "status", "value"]),
        ("id", ["id"]),
        ("createdAt,id,gclid", ["id", "gclid", "createdAt"]),
        (",".join(reversed(FIELD_NAMES)), list(FIELD_NAMES)),
    ],
)
def test_field_selection(
    client: TestClient, add_leads: AddLeads, fields: str, keys: list[str]
) -> None:
    rows = add_leads({"name": "Ann", "email": "ann@x.io", "value_cents": 1_050, "gclid": "G"},
                     {"name": "Ben"})
    body = listed(client, f"fields={fields}&sort=name")
    assert [list(lead) for lead in body["data"]] == [keys, keys]
    full = {lead["id"]: lead for lead in listed(client)["data"]}
    for lead in body["data"]:
        assert lead == {key: full[lead["id"]][key] for key in keys}
    assert {lead["id"] for lead in body["data"]} == {row["id"] for row in rows}


def test_field_selection_with_filters_and_search(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"name": "Ann", "status": "won", "value_cents": 100},
              {"name": "Annie", "status": "lost", "value_cents": 200})
    body = listed(client, "fields=value&search=ann&status=won")
    assert [{k: v for k, v in lead.items() if k != "id"} for lead in body["data"]] == [
        {"value": 1}
    ]


# --- output values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "value", "json_text"),
    [
        (500_000, 5000, b'"value":5000}'),
        (9_950, 99.5, b'"value":99.5}'),
        (1_225, 12.25, b'"value":12.25}'),
        (1, 0.01, b'"value":0.01}'),
        (10, 0.1, b'"value":0.1}'),
        (0, 0, b'"value":0}'),
        (123_456_789, 1_234_567.89, b'"value":1234567.89}'),
        (None, None, b'"value":null}'),
    ],
)
def test_value_output(
    client: TestClient, add_leads: AddLeads, cents: int | None, value: Any, json_text: bytes
) -> None:
    add_leads({"value_cents": cents})
    response = get(client, "fields=value")
    assert json_text in response.content.replace(b" ", b"")
    (lead,) = response.json()["data"]
    assert lead["value"] == value
    assert type(lead["value"]) is type(value)


@pytest.mark.parametrize(
    ("column", "stored", "shown"),
    [
        ("created_at", ms("2026-01-15T10:30:00.123"), "2026-01-15T10:30:00.123Z"),
        ("created_at", ms("2026-01-15T10:30:00"), "2026-01-15T10:30:00.000Z"),
        ("created_at", -1, "1969-12-31T23:59:59.999Z"),
        ("updated_at", ms("2026-12-31T23:59:59.999"), "2026-12-31T23:59:59.999Z"),
        ("qualified_at", ms("2026-02-28T00:00:00"), "2026-02-28T00:00:00.000Z"),
        ("qualified_at", None, None),
        ("expires_at", ms("2026-04-15T10:30:00.5"), "2026-04-15T10:30:00.500Z"),
    ],
)
def test_timestamp_output(
    client: TestClient, add_leads: AddLeads, column: str, stored: int | None, shown: str | None
) -> None:
    add_leads({column: stored})
    name = {"created_at": "createdAt", "updated_at": "updatedAt", "qualified_at": "qualifiedAt",
            "expires_at": "expiresAt"}[column]
    (lead,) = listed(client)["data"]
    assert lead[name] == shown


def full_row() -> dict[str, Any]:
    """A stored row with every lead column set, by kind."""
    row: dict[str, Any] = {}
    for number, field in enumerate(LEAD_FIELDS):
        if field.kind is Kind.TEXT:
            row[field.column] = f"{field.name} {number} Ünïcode"
        elif field.kind is Kind.CONSENT:
            row[field.column] = number % 2 == 0
    row.update(status="qualified", source="wordpress", value_cents=123_456,
               created_at=ms("2026-01-15T10:30:00"), updated_at=ms("2026-01-16T11:00:00.250"),
               qualified_at=ms("2026-01-16T11:00:00.250"), expires_at=ms("2026-04-15T10:30:00"),
               custom='{"plan": "pro"}')
    return row


def test_the_full_lead_object(client: TestClient, add_leads: AddLeads) -> None:
    (row,) = add_leads(full_row())
    (lead,) = listed(client)["data"]
    assert list(lead) == list(FIELD_NAMES)
    for field in LEAD_FIELDS:
        if field.kind in (Kind.TEXT, Kind.CONSENT, Kind.ID, Kind.CHOICE):
            assert lead[field.name] == row[field.column], field.name
    assert lead["value"] == 1234.56
    assert lead["custom"] == '{"plan": "pro"}'
    assert (lead["createdAt"], lead["updatedAt"], lead["qualifiedAt"], lead["expiresAt"]) == (
        "2026-01-15T10:30:00.000Z", "2026-01-16T11:00:00.250Z", "2026-01-16T11:00:00.250Z",
        "2026-04-15T10:30:00.000Z",
    )
    assert {lead[name] for name in ("ad_storage", "ad_user_data", "analytics_storage",
                                    "ad_personalization")} == {True, False}


def test_a_sparse_lead_has_every_field_as_null(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"name": "Only a name"})
    (lead,) = listed(client)["data"]
    assert list(lead) == list(FIELD_NAMES)
    present = {"id", "name", "status", "source", "createdAt", "updatedAt", "expiresAt"}
    assert {name for name, value in lead.items() if value is not None} == present
    assert lead["status"] in STATUSES
    assert lead["source"] in SOURCES


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "code", "parameter"),
    [
        ("limit=0", "VALIDATION_ERROR", "limit"),
        ("limit=101", "VALIDATION_ERROR", "limit"),
        ("limit=-1", "VALIDATION_ERROR", "limit"),
        ("limit=1.5", "VALIDATION_ERROR", "limit"),
        ("limit=abc", "VALIDATION_ERROR", "limit"),
        ("limit=%EF%BC%95", "VALIDATION_ERROR", "limit"),
        ("page=0", "VALIDATION_ERROR", "page"),
        ("page=abc", "VALIDATION_ERROR", "page"),
        ("page=" + "9" * 40, "VALIDATION_ERROR", "page"),
        ("limit=5&limit=6", "VALIDATION_ERROR", "limit"),
        ("page=1&page=1", "VALIDATION_ERROR", "page"),
        ("sort=a&sort=b", "VALIDATION_ERROR", "sort"),
        ("search=a&search=b", "VALIDATION_ERROR", "search"),
        ("fields=id&fields=id", "VALIDATION_ERROR", "fields"),
        ("sort=phone", "VALIDATION_ERROR", "sort"),
        ("sort=value:sideways", "VALIDATION_ERROR", "sort"),
        ("sort=created_at,createdAt", "VALIDATION_ERROR", "sort"),
        ("fields=nope", "VALIDATION_ERROR", "fields"),
        ("search=" + "x" * 201, "VALIDATION_ERROR", "search"),
        ("foo=1", "INVALID_FILTER", "foo"),
        ("api_key=x", "INVALID_FILTER", "api_key"),
        ("status[gte]=won", "INVALID_FILTER", "status[gte]"),
        ("value[eq]=5", "INVALID_FILTER", "value[eq]"),
        ("value[gte", "INVALID_FILTER", "value[gte"),
        ("source=foo", "INVALID_FILTER", "source"),
        ("status=won,maybe", "INVALID_FILTER", "status"),
        ("value[gte]=abc", "INVALID_FILTER", "value[gte]"),
        ("value=1e5", "INVALID_FILTER", "value"),
        ("value[gte]=1,2", "INVALID_FILTER", "value[gte]"),
        ("gclid[exists]=maybe", "INVALID_FILTER", "gclid[exists]"),
        ("sessionId[exists]=true", "INVALID_FILTER", "sessionId[exists]"),
        ("wbraid[gte]=a", "INVALID_FILTER", "wbraid[gte]"),
        ("status=won%00", "INVALID_FILTER", "status"),
        ("search=a%00", "VALIDATION_ERROR", "search"),
        ("value=" + ",".join(["1"] * 10_001), "INVALID_FILTER", "value"),
        ("createdAt=2026-02-30", "INVALID_DATE", "createdAt"),
        ("createdAt[gte]=2026-13-01", "INVALID_DATE", "createdAt[gte]"),
        ("updatedAt[lt]=2026-01-01T25:00", "INVALID_DATE", "updatedAt[lt]"),
        ("qualifiedAt=garbage", "INVALID_DATE", "qualifiedAt"),
        ("updated_after=2026-02-30", "INVALID_DATE", "updated_after"),
    ],
)
def test_errors(client: TestClient, qs: str, code: str, parameter: str) -> None:
    response = get(client, qs)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["details"] == {"parameter": parameter}
    assert parameter in body["error"]["message"]
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]


def test_source_error_lists_the_allowed_values(client: TestClient) -> None:
    message = get(client, "source=foo").json()["error"]["message"]
    assert all(source in message for source in SOURCES)


def test_no_error_message_leaks_internals(client: TestClient) -> None:
    for qs in ("value=" + "1" * 5000, "createdAt=2026-02-30", "foo=1", "sort=x"):
        text = get(client, qs).text.lower()
        for leak in ("select", "traceback", "sqlalchemy", ".py", "value_cents"):
            assert leak not in text, (qs, leak)


def test_unknown_route_and_wrong_method(client: TestClient) -> None:
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert response.headers["X-Request-Id"] == response.json()["meta"]["requestId"]
    response = client.delete("/api/leads")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["X-Request-Id"] == response.json()["meta"]["requestId"]


def test_json_is_compact_and_utf8(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"name": "Zoë 😀"})
    response = get(client, "fields=name")
    assert orjson.loads(response.content)["data"][0]["name"] == "Zoë 😀"
    assert "Zoë 😀".encode() in response.content
