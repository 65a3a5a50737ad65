"""Random and hostile query strings at GET /api/leads and GET /api/leads/{id}.

Whatever the query string, the answer is 200, 400 or 404 in the contract's envelope: never a
500 or a 503, never an exception out of the app. A 400 carries a contract code that fits the
parameter it names in `details`; a 200 list carries consistent pagination.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from leads_api.fields import FIELD_NAMES

REQUEST_ID = re.compile(r"req_[0-9a-f]{12}")
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
CODES_400 = {"VALIDATION_ERROR", "INVALID_FILTER", "INVALID_DATE"}
SINGLE = ("limit", "page", "sort", "search", "fields")  # bad ones are VALIDATION_ERROR
DATE_PARAMETERS = re.compile(r"(createdAt|updatedAt|qualifiedAt|expiresAt)(\[[a-z]*\])?"
                             r"|updated_after")
HYPOTHESIS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

KEYS = [
    "status", "source", "value", "createdAt", "qualifiedAt", "gclid", "utm_source", "labelId",
    "value[gte]", "value[lt]", "createdAt[lte]", "updatedAt[gt]", "gclid[exists]",
    "status[gte]", "value[eq]", "value[]", "value[gte][lt]", "value[[gte]]", "value[", "value]",
    "[gte]", "[", "]", "[]", "", " ", "status ", "Status", "VALUE", "updated_after", "sort",
    "limit", "page", "search", "fields", "id", "org_id", "api_key", "x-api-key", "name",
    "__proto__", "value%5Bgte%5D", "value%5B", "%00", "st%00atus", "é", "e\u0301",
    "\U0001d518", "status\u200b", "createdAt[exists]", "expiresAt[gte]", "rdt_cid[exists]",
]
VALUES = [
    "", " ", ",", ",,", " , ", "won", "won,lost", "WON", "open,", "true", "TRUE", "maybe",
    "' OR 1=1 --", "1; DROP TABLE leads; --", '" OR ""="', "%' OR '%'='", "\\", "_", "%_",
    "%", "%%", "%2", "%zz", "%00", "%C3", "%E2%82", "%F0%9F%98", "%u0041", "%25", "%2B",
    "+", "++", "1e999", "-1e999", "1E3", "NaN", "Infinity", "-0", "0x10", "1_000", "+5",
    "\uff11\uff12\uff13", "\u0661\u0662\u0663", str(10**30), "9" * 400, "-" + "9" * 5000,
    "0." + "0" * 5000 + "1", "99.999", "2026-02-30", "0000-01-01", "2026-01-01T24:00",
    "9999-12-31T23:59:59.999999999+23:59", "0001-01-01T00:00-23:59", "2026-01-01T10:00+99:99",
    "2026-01-01T10:00:00." + "9" * 5000 + "Z", "2026-1-1", "2026-01-01T10:00 02:00",
    "\u0301", "e\u0301", "\U0001d518", "\U0010ffff", "\ufeff", "\u202e", "\x7f", "\n", "\t",
    "x" * 10_000, "é" * 10_000, "name:desc,name", "value:sideways", "createdAt,created_at",
    ":desc", "name:", "id,nope", "id", "lead_", "[]", "{}", "null", "<script>", "a&b=c",
]


def as_url(text: str) -> str:
    """Percent-encode what no HTTP client sends raw (controls, '#'); leave the rest to the
    client, so lone '%', '%00', brackets and quotes reach the app exactly as written."""
    return "".join(quote(c, safe="") if ord(c) < 0x20 or c in "\x7f#" else c for c in text)


any_text = st.text(st.characters(codec="utf-8"), max_size=30)


@st.composite
def hostile_parameters(draw: st.DrawFn) -> str:
    """`key=value` made of known, unknown and broken names and nasty values."""
    key = draw(st.one_of(st.sampled_from(KEYS), any_text))
    value = draw(st.one_of(st.sampled_from(VALUES), any_text))
    encode = draw(st.sampled_from(["raw", "raw", "quoted", "plus"]))
    if encode == "quoted":
        key, value = quote(key, safe=""), quote(value, safe="")
    elif encode == "plus":
        value = value.replace(" ", "+")
    form = draw(st.sampled_from(["{k}={v}", "{k}={v}", "{k}", "{k}=", "={v}", "{k}=={v}"]))
    return as_url(form.format(k=key, v=value))


def sent_length(text: str) -> int:
    """The length of `text` once the client has percent-encoded its non-ASCII characters."""
    return sum(1 if ord(c) < 0x80 else 3 * len(c.encode()) for c in text)


MAX_SENT = 60_000  # httpx refuses a query component over 65,536 characters


@st.composite
def hostile_query_strings(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return as_url(draw(st.text(max_size=200)))
    separator = draw(st.sampled_from(["&", "&", "&&", ";", "&amp;"]))
    parts: list[str] = []
    for part in draw(st.lists(hostile_parameters(), min_size=1, max_size=6)):
        if sent_length(separator.join([*parts, part])) <= MAX_SENT:
            parts.append(part)
    return separator.join(parts)


# --- the checks ----------------------------------------------------------------------------


def assert_envelope(status: int, headers: Mapping[str, str], content: bytes, *,
                    one_lead: str | None = None) -> dict[str, Any]:
    """The contract's envelope for any answer of GET /api/leads[/{id}] (one_lead = the id)."""
    assert status in (200, 400, 404), content[:2000]
    assert headers["content-type"].startswith("application/json")
    body = json.loads(content)
    request_id = body["meta"]["requestId"]
    assert REQUEST_ID.fullmatch(request_id)
    assert headers["x-request-id"] == request_id
    assert TIMESTAMP.fullmatch(body["meta"]["timestamp"])
    if status == 200:
        assert body["success"] is True
        if one_lead is None:
            _assert_page(body)
        else:
            assert body["data"]["id"] == one_lead
            assert "pagination" not in body["meta"]
            _assert_lead_object(body["data"])
        return body
    assert body["success"] is False
    assert set(body) == {"success", "error", "meta"}
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if status == 404:
        assert error["code"] == "NOT_FOUND"
        return body
    assert error["code"] in CODES_400
    parameter = error["details"]["parameter"]
    assert isinstance(parameter, str)
    # One lead takes only `fields`: the list's other shaping parameters are unknown there.
    singles = SINGLE if one_lead is None else ("fields",)
    if parameter in singles:
        assert error["code"] == "VALIDATION_ERROR", body
    if error["code"] == "INVALID_DATE":
        assert DATE_PARAMETERS.fullmatch(parameter), body
    assert parameter.casefold()[:40] in error["message"].casefold(), body
    return body


def _assert_page(body: dict[str, Any]) -> None:
    pagination = body["meta"]["pagination"]
    assert set(pagination) == {"limit", "page", "totalPages", "total", "hasMore", "nextCursor"}
    assert (pagination["nextCursor"] is not None) == pagination["hasMore"]
    limit, page, total = pagination["limit"], pagination["page"], pagination["total"]
    assert 1 <= limit <= 100 and page >= 1 and total >= 0
    assert pagination["totalPages"] == -(-total // limit)
    assert pagination["hasMore"] == (page < pagination["totalPages"])
    expected_rows = max(0, min(limit, total - (page - 1) * limit))
    assert len(body["data"]) == expected_rows
    for lead in body["data"]:
        _assert_lead_object(lead)


def _assert_lead_object(lead: dict[str, Any]) -> None:
    assert list(lead) == [name for name in FIELD_NAMES if name in lead]
    assert isinstance(lead["id"], str) and lead["id"].startswith("lead_")


# --- through the HTTP client ---------------------------------------------------------------


@pytest.fixture
def lenient(app: Any, api_key: str) -> Iterator[TestClient]:
    """A client authenticated as `org` that shows a server error as a 500 response."""
    with TestClient(app, headers={"X-API-KEY": api_key}, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def stored_ids(add_leads: Any) -> list[str]:
    rows = add_leads({"name": "Straße", "email": "a@b.c", "value_cents": 9950},
                     {"name": "' OR 1=1 --", "phone": "+1 (234) 567-890", "status": "won"},
                     {"name": None, "gclid": "abc"})
    return [row["id"] for row in rows]


@settings(HYPOTHESIS, max_examples=300)
@given(query=hostile_query_strings())
@example(query="page=1" + "0" * 30)
@example(query="page=" + "0" * 5000 + "1")
@example(query="limit=1e2&page=-1")
@example(query="value[gte]=1e999")
@example(query="value[gte]=" + "9" * 5000)
@example(query="value=-" + "1" * 5000 + "." + "1" * 5000)
@example(query="createdAt[gte]=2026-01-01T00:00:00." + "1" * 5000 + "Z")
@example(query="search=%00")
@example(query="limit=%00")
@example(query="sort=%00name")
@example(query="%00=1")
@example(query="status=%00")
@example(query="status=won' OR '1'='1")
@example(query="search=%27%20OR%201%3D1%20--")
@example(query="search=%25&search=_")
@example(query="search=" + "x" * 10_000)
@example(query="utm_source=" + "%C3%A9" * 10_000)
@example(query="value[gte][lt]=1&value[[gte]]=1")
@example(query="value[=1")
@example(query="]=1")
@example(query="=")
@example(query="&&&=&=&")
@example(query="%")
@example(query="search=%E2%82")
@example(query="search=e%CC%81&fields=name,%F0%9F%98%80")
@example(query="value=" + ",".join(str(i) for i in range(3000)))
@example(query="value[gte]=1&" * 2000)
@example(query="gclid=a&" * 3000)
@example(query="createdAt=" + ",".join(f"2026-{m:02d}-{d:02d}" for m in range(1, 13)
                                       for d in range(1, 29)))
@example(query="createdAt[gte]=9999-12-31T23:59:59.9999+23:59&createdAt[lt]=0001-01-01T00:00-23:59")
@example(query="createdAt=2026-02-30")
@example(query="sort=name,name")
@example(query="sort=value&sort=,")
@example(query="fields=name&fields=,")
def test_list_answers_any_query_in_the_envelope(
    lenient: TestClient, stored_ids: list[str], query: str
) -> None:
    response = lenient.get(f"/api/leads?{query}")
    assert_envelope(response.status_code, response.headers, response.content)


lead_ids = st.one_of(
    st.sampled_from(["lead_", "lead_" + "x" * 10_000, "' OR 1=1 --", "%00", "%", "%zz",
                     "..", "a/b", "\U0001d518", "e\u0301", " ", "NULL", "*"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
)


@settings(HYPOTHESIS, max_examples=200)
@given(data=st.data())
def test_one_lead_answers_any_id_and_query_in_the_envelope(
    lenient: TestClient, stored_ids: list[str], data: st.DataObject
) -> None:
    lead_id = data.draw(st.one_of(st.sampled_from(stored_ids), lead_ids), label="id")
    query = data.draw(st.one_of(
        st.just(""),
        st.sampled_from(["fields=name", "fields=name,nope", "fields=,", "fields=id&fields=name",
                         "status=won", "fields=%00", "fields=" + "x" * 10_000]),
        hostile_query_strings(),
    ), label="query")
    # Every character percent-encoded, dots too, so the client sends this id and no other
    # path (a raw '/', '?' or '..' would name another resource).
    path = "/api/leads/" + quote(lead_id, safe="").replace(".", "%2E")
    response = lenient.get(f"{path}?{query}" if query else path)
    assert_envelope(response.status_code, response.headers, response.content,
                    one_lead=lead_id)
    if lead_id not in stored_ids:
        assert response.status_code != 200


def test_a_stored_lead_is_found_and_a_near_miss_is_not(
    lenient: TestClient, stored_ids: list[str]
) -> None:
    found = lenient.get(f"/api/leads/{stored_ids[0]}?fields=name")
    body = assert_envelope(found.status_code, found.headers, found.content,
                           one_lead=stored_ids[0])
    assert body["data"] == {"id": stored_ids[0], "name": "Straße"}
    for near in (stored_ids[0].upper(), stored_ids[0] + " ", stored_ids[0][:-1]):
        missed = lenient.get("/api/leads/" + quote(near, safe=""))
        assert missed.status_code == 404, near


# --- raw bytes, straight into the ASGI app ---------------------------------------------------


def call_app(app: Any, path: str, query: bytes, key: str) -> tuple[int, dict[str, str], bytes]:
    """One GET through the ASGI interface with exactly these query bytes (no client cleans
    them up). An exception the app lets out propagates from here and fails the test."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": [(b"host", b"testserver"), (b"x-api-key", key.encode())],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    start = messages[0]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in messages[1:])


raw_fragments = st.sampled_from([
    b"status=won", b"value[gte]=", b"search=", b"sort=", b"fields=", b"limit=", b"page=",
    b"%", b"%0", b"%00", b"%FF", b"%C3", b"\x00", b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x82",
    b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"&", b"=", b"[", b"]", b"+", b" ", b"'", b";",
    "M\u00fcller".encode(), "M\u00fcller".encode("latin-1"), b"e\xcc\x81",
])


@settings(HYPOTHESIS, max_examples=200)
@given(query=st.one_of(st.binary(max_size=200),
                       st.lists(raw_fragments, max_size=12).map(b"".join)))
@example(query=b"search=M\xc3\xbcller")
@example(query=b"search=\xff\xfe&status=\xc3(")
@example(query=b"\x00=\x00")
@example(query=b"value[gte]=1e999&page=" + b"9" * 40)
def test_raw_query_bytes_never_break_the_app(
    app: Any, api_key: str, stored_ids: list[str], query: bytes
) -> None:
    status, headers, content = call_app(app, "/api/leads", query, api_key)
    assert_envelope(status, headers, content)
    status, headers, content = call_app(app, f"/api/leads/{stored_ids[0]}", query, api_key)
    assert_envelope(status, headers, content, one_lead=stored_ids[0])
