"""GET /api/leads against tests/reference.py: random leads, random valid queries, same answer.

Each example stores a random set of leads in a fresh organization, then asks several random
valid queries (filters, search, sort, fields, pages) and requires the API's `data` and
`meta.pagination` to equal the reference's exactly, on both databases. The lead objects the
reference reads are built here from the same generated values as the stored rows, with this
module's own conversions, so a rendering mistake shows up too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from leads_api.fields import FIELD_NAMES, LEAD_FIELDS, Kind
from leads_api.store import Store
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import insert_leads
from reference import (
    CLICK_IDS,
    DATE_FIELDS,
    EQUALITY_ONLY,
    SORTABLE,
    SOURCES,
    STATUSES,
    TEXT_FILTERS,
    Rejected,
    list_leads,
)

DAY_MS = 86_400_000
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
QUERIES_PER_EXAMPLE = 20  # queries are cheap next to a new organization and its leads

NAMES = ["Straße", "STRASSE", "strasse", "ÉMILE", "émile", "Émile", "e\u0301mile", "bob", "Bob",
         "alice", "Alice", "Zoë", "zoe", "ﬁsh", "FISH", "İstanbul", "ΣΊΣΥΦΟΣ", "σίσυφος",
         "李雷", "\U0001d518nicode", "O'Brien", "100% real_deal"]
EMAILS = ["alice@example.com", "ALICE@example.com", "bob@EXAMPLE.org", "straße@müller.de",
          "STRASSE@MÜLLER.DE", "100%_off\\deal@x.io", "a/b@c.d"]
PHONES = ["+1 (234) 567-890", "+12345678901", "234-567", "+44 20 7946 0958", "(555) 010-0199",
          "١٢٣٤٥", "call me"]
TEXT_VALUES: dict[str, list[str]] = {
    "website": ["https://example.com", "https://Example.com", "https://example.com/"],
    "labelId": ["label_1", "LABEL_1", "label 2"],
    "utm_source": ["google", "Google", "facebook"],
    "utm_medium": ["cpc", "email"],
    "utm_campaign": ["summer_sale", "spring", "Ünïcode"],
    **{click: ["abc123", "ABC123", "GA1.1.42", "x%y_z"] for click in CLICK_IDS},
    "sessionId": ["0b9f6a62-5d4e-4f1a-9c1e-2a7d3b8e4f10", "0B9F6A62-5D4E-4F1A-9C1E-2A7D3B8E4F10",
                  "octa_sid 1"],
}
OTHER_TEXT = ["Customer notes", '{"company":"Acme Inc"}', "Purchase", "/pricing", "123456789"]
CENTS = [0, 1, 99, 100, 9950, 9999, 500000, 500001, 123456789]
SEARCH_SPECIALS = ["%", "_", "\\", "/", "100%", "%_", "STRASSE", "strasse", "ÉMILE", "e\u0301",
                   "234 567", "(234)", "555", "4 5", "1-2", "90 ", "١٢٣", "\U0001d518", "ﬁ",
                   "FI", "ς", "@", "a"]
LEGACY_SORT_SPELLING = {"createdAt": "created_at", "updatedAt": "updated_at",
                        "qualifiedAt": "qualified_at"}
EXISTS_FIELDS = (*TEXT_FILTERS, "value", *DATE_FIELDS)

# --- generated leads ---------------------------------------------------------------------

unicode_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                       min_size=1, max_size=8)


def maybe(values: list[Any], *, none_weight: int = 1) -> st.SearchStrategy[Any]:
    return st.sampled_from([None] * none_weight + values)


@st.composite
def moments(draw: st.DrawFn) -> int:
    """Instants in the few days around 2026-01-01, often right at a day boundary."""
    day = draw(st.integers(-2, 3))
    within = draw(st.one_of(st.sampled_from([0, 1, 999, 1000, DAY_MS // 2, DAY_MS - 1000,
                                             DAY_MS - 1]), st.integers(0, DAY_MS - 1)))
    return BASE_MS + day * DAY_MS + within


@st.composite
def lead_values(draw: st.DrawFn, times: list[int]) -> dict[str, Any]:
    """One lead's non-null values by field name, in their stored form (cents, ms, bool)."""
    when = st.sampled_from(times)
    values: dict[str, Any] = {
        "name": draw(st.one_of(maybe(NAMES), unicode_text)),
        "email": draw(maybe(EMAILS)),
        "phone": draw(maybe(PHONES)),
        "status": draw(st.sampled_from(STATUSES)),
        "value": draw(st.one_of(maybe(CENTS), st.integers(0, 10**12))),
        "source": draw(st.sampled_from(SOURCES)),
        "createdAt": draw(when),
        "updatedAt": draw(when),
        "qualifiedAt": draw(st.one_of(st.none(), when)),
        "expiresAt": draw(when),
    }
    for field, pool in TEXT_VALUES.items():
        values[field] = draw(maybe(pool, none_weight=2 if field in CLICK_IDS else 1))
    for field in LEAD_FIELDS:
        if field.name in values or field.name == "id":
            continue
        if field.kind is Kind.CONSENT:
            values[field.name] = draw(st.sampled_from([None, True, False]))
        else:
            values[field.name] = draw(maybe(OTHER_TEXT, none_weight=3))
    return {name: value for name, value in values.items() if value is not None}  # terse


def iso(ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def json_money(cents: int) -> int | float:
    return cents // 100 if cents % 100 == 0 else float(Decimal(cents) / 100)


def lead_object(lead_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """What GET must return for a lead stored from `values`."""
    obj: dict[str, Any] = {"id": lead_id}
    for field in LEAD_FIELDS[1:]:
        value = values.get(field.name)
        if value is not None and field.kind is Kind.TIME:
            value = iso(value)
        elif value is not None and field.kind is Kind.MONEY:
            value = json_money(value)
        obj[field.name] = value
    return obj


def stored_row(lead_id: str, values: dict[str, Any]) -> dict[str, Any]:
    row = {field.column: values.get(field.name) for field in LEAD_FIELDS[1:]}
    row["id"] = lead_id
    return row


@st.composite
def lead_sets(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    times = draw(st.lists(moments(), min_size=1, max_size=6))
    # Sizes drawn uniformly (hypothesis's own list sizes stay small); now and then enough
    # rows for insert_leads to take its bulk path (COPY on PostgreSQL).
    bulk = draw(st.integers(0, 5)) == 5
    size = draw(st.integers(100, 130) if bulk else st.integers(1, 40))
    suffixes = draw(st.lists(st.text(BASE62, min_size=1, max_size=6), unique=True,
                             min_size=size, max_size=size))
    # A fresh prefix per example keeps ids unique across examples (the id is the primary
    # key); the generated suffix alone decides the order by id within one example.
    prefix = "lead_" + secrets.token_hex(4)
    return [(prefix + suffix, draw(lead_values(times))) for suffix in suffixes]


# --- generated queries -------------------------------------------------------------------


def spaced(draw: st.DrawFn, items: list[str]) -> str:
    """A comma list, sometimes with blanks around items and empty items (both ignored)."""
    if draw(st.booleans()):
        return ",".join(items)
    parts = [draw(st.sampled_from(["", " ", "  "])) + item + draw(st.sampled_from(["", " "]))
             for item in items]
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), " ")
    return ",".join(parts)


def any_of(draw: st.DrawFn, name: str, items: list[str]) -> list[tuple[str, str]]:
    """`name=a,b` or, as often, the same filter repeated (`name=a&name=b`)."""
    if len(items) > 1 and draw(st.booleans()):
        return [(name, item) for item in items]
    return [(name, spaced(draw, items))]


def money_text(draw: st.DrawFn, cents: int) -> str:
    exact = Decimal(cents) / 100
    forms = [format(exact, "f"), format(exact.quantize(Decimal("0.01")), "f"),
             format(exact.quantize(Decimal("0.001")), "f"),
             format(exact + Decimal("0.001"), "f"), format(exact - Decimal("0.001"), "f")]
    if cents % 100 == 0:
        forms.append(str(cents // 100))
    return draw(st.sampled_from(forms))


def day_text(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%d")


def instant_text(draw: st.DrawFn, ms: int) -> str:
    """An instant near `ms`, at some precision, in UTC or at an offset, as a client writes it."""
    offset_min = draw(st.sampled_from([0, 0, 60, -300, 330, 840, -720]))
    local = EPOCH + timedelta(milliseconds=ms, minutes=offset_min)
    text = local.strftime("%Y-%m-%dT%H:%M")
    precision = draw(st.sampled_from(["minute", "second", "ms", "ms", "sub-ms"]))
    if precision != "minute":
        text += local.strftime(":%S")
    if precision in ("ms", "sub-ms"):
        text += f".{ms % 1000:03d}"
    if precision == "sub-ms":
        text += draw(st.sampled_from(["0", "000", "1", "4999", "5", "999999"]))
    if offset_min == 0:
        return text + draw(st.sampled_from(["Z", "", "+00:00", "-00:00", " 00:00"]))
    hours, minutes = divmod(abs(offset_min), 60)
    # A space is what a literal `+` in a query string decodes to; the contract reads it as +.
    sign = "-" if offset_min < 0 else draw(st.sampled_from(["+", " "]))
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def date_text(draw: st.DrawFn, times: list[int]) -> str:
    ms = draw(st.one_of(st.sampled_from(times), moments()))
    return day_text(ms) if draw(st.booleans()) else instant_text(draw, ms)


def exists_word(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(["true", "false"]))
    word = "".join(c.upper() if draw(st.booleans()) else c for c in word)
    return draw(st.sampled_from(["", " "])) + word


def search_term(draw: st.DrawFn, leads: list[dict[str, Any]]) -> str:
    texts = [lead[f] for lead in leads for f in ("name", "email", "phone") if lead[f]]
    if not texts or draw(st.booleans()):
        return draw(st.sampled_from(SEARCH_SPECIALS))
    text = draw(st.sampled_from(texts))
    start = draw(st.integers(0, len(text) - 1))
    end = draw(st.integers(start + 1, len(text)))
    change = draw(st.sampled_from([str, str.upper, str.lower, str.swapcase, str.casefold]))
    return change(text[start:end])


def sort_text(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(SORTABLE), min_size=1, max_size=3, unique=True))
    keys = []
    for name in names:
        spelled = LEGACY_SORT_SPELLING.get(name, name) if draw(st.booleans()) else name
        keys.append(spelled + draw(st.sampled_from(["", ":asc", ":desc", ":DESC", ":Asc"])))
    return spaced(draw, keys)


def choice_filter(draw: st.DrawFn, leads: list[dict[str, Any]], times: list[int]
                  ) -> list[tuple[str, str]]:
    field, choices = draw(st.sampled_from([("status", STATUSES), ("source", SOURCES)]))
    chosen = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=4, unique=True))
    return any_of(draw, field, chosen)


def text_filter(draw: st.DrawFn, leads: list[dict[str, Any]], times: list[int]
                ) -> list[tuple[str, str]]:
    field = draw(st.sampled_from((*TEXT_FILTERS, *EQUALITY_ONLY)))
    present = sorted({lead[field] for lead in leads if lead[field] is not None})
    chosen = draw(st.lists(st.sampled_from([*present, *present, "nope"]), min_size=1,
                           max_size=3))
    return any_of(draw, field, chosen)


def exists_filter(draw: st.DrawFn, leads: list[dict[str, Any]], times: list[int]
                  ) -> list[tuple[str, str]]:
    return [(draw(st.sampled_from(EXISTS_FIELDS)) + "[exists]", exists_word(draw))]


def value_filter(draw: st.DrawFn, leads: list[dict[str, Any]], times: list[int]
                 ) -> list[tuple[str, str]]:
    stored = [lead["value"] for lead in leads if lead["value"] is not None]
    cents = st.one_of(st.sampled_from([*stored, *stored, *CENTS]), st.integers(-100, 10**12))
    op = draw(st.sampled_from(["", "[gte]", "[gt]", "[lte]", "[lt]"]))
    if op == "":
        texts = [money_text(draw, draw(cents)) for _ in range(draw(st.integers(1, 3)))]
        return any_of(draw, "value", texts)
    return [("value" + op, money_text(draw, draw(cents)))]


def date_filter(draw: st.DrawFn, leads: list[dict[str, Any]], times: list[int]
                ) -> list[tuple[str, str]]:
    field = draw(st.sampled_from([*DATE_FIELDS, "updated_after"]))
    if field == "updated_after":  # the legacy name for updatedAt[gte]
        return [(field, date_text(draw, times))]
    op = draw(st.sampled_from(["", "[gte]", "[gt]", "[lte]", "[lt]"]))
    if op == "":
        return any_of(draw, field, [date_text(draw, times)
                                    for _ in range(draw(st.integers(1, 3)))])
    return [(field + op, date_text(draw, times))]


def search_filter(draw: st.DrawFn, leads: list[dict[str, Any]], times: list[int]
                  ) -> list[tuple[str, str]]:
    return [("search", search_term(draw, leads))]


FILTERS = [choice_filter, text_filter, exists_filter, value_filter, value_filter, date_filter,
           date_filter, date_filter, search_filter, search_filter]
EMPTY_PARAMETERS = [("limit", ""), ("status", ""), ("value", ","), ("gclid[exists]", " "),
                    ("search", "  "), ("fields", ", ,"), ("sort", ",")]


@st.composite
def queries(draw: st.DrawFn, leads: list[dict[str, Any]], times: list[int]
            ) -> list[tuple[str, str]]:
    """A random valid query for GET /api/leads, as decoded (name, value) pairs.

    At most four filters (each one can empty the answer), pages mostly near the start.
    """
    pairs: list[tuple[str, str]] = []
    at_least = 0 if draw(st.integers(0, 7)) == 0 else 1  # an unfiltered list, now and then
    for make in draw(st.lists(st.sampled_from(FILTERS), min_size=at_least, max_size=4)):
        if make is search_filter and any(name == "search" for name, _ in pairs):
            continue  # search may be given only once
        pairs += make(draw, leads, times)
    if draw(st.integers(0, 3)) != 0:
        pairs.append(("sort", sort_text(draw)))
    if draw(st.integers(0, 2)) == 0:
        chosen = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=5, unique=True))
        pairs.append(("fields", spaced(draw, chosen)))
    if draw(st.booleans()):
        pairs.append(("limit", str(draw(st.sampled_from([1, 2, 3, 5, 7, 10, 50, 100])))))
    if draw(st.booleans()):
        pairs.append(("page", str(draw(st.sampled_from([1, 1, 2, 2, 3, 4, 9])))))
    if draw(st.integers(0, 5)) == 0:  # given but empty: counts as absent
        pairs.append(draw(st.sampled_from(EMPTY_PARAMETERS)))
    return draw(st.permutations(pairs))


# --- the property ------------------------------------------------------------------------


@pytest.fixture
def fresh_org(store: Store, make_org: Callable[..., Organization],
              make_key: Callable[..., str]) -> Callable[[list[dict[str, Any]]], str]:
    """Store rows in a new organization and return its key (one organization per example)."""

    def make(rows: list[dict[str, Any]]) -> str:
        org = make_org()
        with store.write() as conn:
            insert_leads(conn, org_id=org.id, rows=rows)
        return make_key(org)

    return make


# A failure is worth its shrinking (hypothesis gives up after 5 minutes): more time than usual.
@pytest.mark.timeout(900)
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_list_matches_the_reference(
    client: TestClient, fresh_org: Callable[[list[dict[str, Any]]], str], data: st.DataObject
) -> None:
    generated = data.draw(lead_sets(), label="leads")
    objects = [lead_object(lead_id, values) for lead_id, values in generated]
    key = fresh_org([stored_row(lead_id, values) for lead_id, values in generated])
    times = sorted({values[f] for _, values in generated for f in DATE_FIELDS
                    if f in values}) or [BASE_MS]

    for _ in range(QUERIES_PER_EXAMPLE):
        pairs = data.draw(queries(objects, times), label="query")
        query = urlencode(pairs)
        note(f"GET /api/leads?{query}")
        expected = list_leads(objects, pairs)
        response = client.get(f"/api/leads?{query}", headers={"X-API-KEY": key})
        assert response.status_code == 200, response.text
        body = response.json()
        pagination = dict(body["meta"]["pagination"])
        cursor = pagination.pop("nextCursor")
        assert pagination == expected.pagination
        assert body["data"] == expected.data
        # Equal JSON text also means the same key order and `5000`, not `5000.0`.
        assert json.dumps(body["data"]) == json.dumps(expected.data)
        assert (cursor is not None) == expected.pagination["hasMore"]
        walk_cursors(client, key, objects, pairs, expected.pagination["page"], cursor)


CURSOR_STEPS = 3  # pages followed by cursor after each query


def walk_cursors(client: TestClient, key: str, objects: list[dict[str, Any]],
                 pairs: list[tuple[str, str]], page: int, cursor: str | None) -> None:
    """Following nextCursor gives the reference's next pages, by keyset instead of offset."""
    for _ in range(CURSOR_STEPS):
        if cursor is None:
            return
        page += 1
        expected = list_leads(objects, [p for p in pairs if p[0] != "page"] + [("page", str(page))])
        response = client.get("/api/leads", params={"cursor": cursor}, headers={"X-API-KEY": key})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] == expected.data
        pagination = body["meta"]["pagination"]
        cursor = pagination["nextCursor"]
        assert pagination["page"] is None
        assert pagination["total"] == expected.pagination["total"]
        assert pagination["hasMore"] == expected.pagination["hasMore"] == (cursor is not None)


# --- the reference itself, on the contract's own examples ---------------------------------


def _lead(lead_id: str, **values: Any) -> dict[str, Any]:
    return {**dict.fromkeys(FIELD_NAMES), "id": lead_id, "status": "open", "source": "api",
            "createdAt": "2026-01-01T00:00:00.000Z", **values}


def _ids(leads: list[dict[str, Any]], *pairs: tuple[str, str]) -> list[str]:
    return [lead["id"] for lead in list_leads(leads, pairs).data]


def test_reference_reads_the_contracts_examples() -> None:
    people = [_lead("lead_1", name="émile"), _lead("lead_2", name="Bob"),
              _lead("lead_3", name="alice"), _lead("lead_4", name=None),
              _lead("lead_5", name="Straße", phone="+1 (234) 567-890")]
    # Folded: alice < bob < strasse < émile (code points), nulls last both ways.
    assert _ids(people, ("sort", "name")) == ["lead_3", "lead_2", "lead_5", "lead_1", "lead_4"]
    assert _ids(people, ("sort", "name:desc")) == ["lead_1", "lead_5", "lead_2", "lead_3",
                                                   "lead_4"]
    assert _ids(people, ("search", "STRASSE")) == ["lead_5"]
    assert _ids(people, ("search", "234 567")) == ["lead_5"]
    assert _ids(people, ("search", " 234567 ")) == ["lead_5"]  # trimmed; digits in digits
    assert _ids(people, ("search", "45")) == []  # two digits: the text alone decides

    march = [_lead("lead_a", createdAt="2026-03-01T23:59:59.999Z", value=5000),
             _lead("lead_b", createdAt="2026-03-02T00:00:00.000Z", value=99.5),
             _lead("lead_c", createdAt="2025-12-31T23:59:59.999Z", value=None)]
    assert _ids(march, ("createdAt[gte]", "2026-01-01"), ("createdAt[lte]", "2026-03-01")) == [
        "lead_a"]
    assert _ids(march, ("createdAt[gt]", "2026-03-01")) == ["lead_b"]
    assert _ids(march, ("createdAt[lt]", "2026-01-01T00:00+00:00")) == ["lead_c"]
    assert _ids(march, ("createdAt", "2026-03-02T01:00 01:00")) == ["lead_b"]
    assert _ids(march, ("value", "5000.00")) == ["lead_a"]
    assert _ids(march, ("value[gte]", "10"), ("value[gte]", "100")) == ["lead_a"]
    assert _ids(march, ("value", "99.5,1"), ("value[exists]", "TRUE")) == ["lead_b"]
    assert _ids(march, ("sort", "value:desc")) == ["lead_a", "lead_b", "lead_c"]
    assert _ids(march, ("sort", "value:asc")) == ["lead_b", "lead_a", "lead_c"]

    ties = [_lead(f"lead_{c}", status="won") for c in "bAa"]
    assert _ids(ties, ("sort", "status:desc")) == ["lead_b", "lead_a", "lead_A"]
    assert _ids(ties, ("sort", "status")) == ["lead_A", "lead_a", "lead_b"]
    page = list_leads(ties, [("limit", "2"), ("page", "2"), ("fields", " name ,email")])
    assert page.data == [{"id": "lead_A", "name": None, "email": None}]
    assert page.pagination == {"limit": 2, "page": 2, "totalPages": 2, "total": 3,
                               "hasMore": False}
    with pytest.raises(Rejected):
        list_leads(ties, [("status", "won"), ("limit", "5"), ("limit", "6")])
