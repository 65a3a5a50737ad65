"""The HTTP edges of CONTRACT.md section 2: wrong method, unknown route, body size, media
type, malformed JSON. Every answer is the error envelope with an X-Request-Id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
# The JSON-body endpoints, each with a body it would otherwise accept past the body checks.
BODY_ENDPOINTS = [
    ("POST", "/api/leads", {"name": "Ada"}),
    ("PATCH", "/api/leads", {"id": "lead_none", "status": "won"}),
    ("POST", "/api/stats", {}),
]


def assert_error(response: Any, status: int, code: str, **details: Any) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "error", "meta"}
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    for key, value in details.items():
        assert body["error"]["details"][key] == value, body
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = body["error"]
    return error


def total(client: TestClient) -> int:
    count: int = client.get("/api/leads?limit=1").json()["meta"]["pagination"]["total"]
    return count


# --- 405 and 404 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/leads", "GET, HEAD, POST, PATCH"),
        ("PUT", "/api/leads", "GET, HEAD, POST, PATCH"),
        ("OPTIONS", "/api/leads", "GET, HEAD, POST, PATCH"),
        ("PATCH", "/api/leads/lead_abc", "GET, HEAD"),
        ("DELETE", "/api/leads/lead_abc", "GET, HEAD"),
        ("POST", "/api/leads/lead_abc", "GET, HEAD"),
        ("GET", "/api/stats", "POST"),
        ("PATCH", "/api/stats", "POST"),
        ("PUT", "/api/check", "GET, HEAD, POST"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, json={"name": "x"})
    error = assert_error(response, 405, "METHOD_NOT_ALLOWED", method=method)
    assert response.headers["Allow"] == allow
    assert error["details"]["allow"] == allow.split(", ")
    assert method in error["message"] and path in error["message"]


def test_405_does_not_need_a_key(anonymous: TestClient) -> None:
    assert_error(anonymous.delete("/api/leads"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/nothing"), ("POST", "/api/lead"), ("GET", "/"), ("PATCH", "/api/leads/a/b"),
     ("POST", "/api/stats/x"), ("DELETE", "/api/check/x")],
)
def test_unknown_route_is_404(client: TestClient, method: str, path: str) -> None:
    error = assert_error(client.request(method, path), 404, "NOT_FOUND", path=path)
    assert path in error["message"]


def test_head_answers_like_get(client: TestClient) -> None:
    response = client.head("/api/leads")
    assert response.status_code == 200
    assert response.headers["X-Request-Id"].startswith("req_")


# --- 413 ------------------------------------------------------------------------------------


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON, padded with whitespace to exactly `size` bytes (still valid JSON)."""
    text = orjson.dumps(body)
    return text + b" " * (size - len(text))


@pytest.mark.parametrize(("method", "path", "body"), BODY_ENDPOINTS)
def test_over_one_mib_is_413(client: TestClient, method: str, path: str, body: Any) -> None:
    response = client.request(method, path, content=padded(body, MIB + 1), headers=JSON)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE", field="body")
    assert total(client) == 0


def test_exactly_one_mib_is_read(client: TestClient) -> None:
    response = client.post("/api/leads", content=padded({"name": "Ada"}, MIB), headers=JSON)
    assert response.status_code == 201, response.text


def test_a_large_string_field_is_413_not_a_length_error(client: TestClient) -> None:
    response = client.post("/api/leads", json={"custom": "x" * MIB}, headers=JSON)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_streamed_body_is_counted_while_it_arrives(client: TestClient) -> None:
    """No Content-Length (chunked): the limit still holds, counted as the bytes come."""

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "Ada", "note": "'
        for _ in range(20):
            yield b"x" * 65_536
        yield b'"}'

    response = client.post("/api/leads", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    def small() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"Ada"}'

    assert client.post("/api/leads", content=small(), headers=JSON).status_code == 201


def test_a_declared_length_over_the_limit_is_refused_unread(client: TestClient) -> None:
    def never_read() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    response = client.post(
        "/api/leads", content=never_read(), headers={**JSON, "Content-Length": str(MIB + 1)}
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


# --- 415 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/jsonp", "json", "text/json", "application/json; charset=latin-1", None],
)
@pytest.mark.parametrize(("method", "path", "body"), BODY_ENDPOINTS)
def test_a_body_that_is_not_json_is_415(
    client: TestClient, content_type: str | None, method: str, path: str, body: Any
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.request(method, path, content=orjson.dumps(body), headers=headers)
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", parameter="Content-Type")


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON",
     'application/json;charset="UTF-8"', "application/json; charset=utf8"],
)
def test_json_content_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/api/leads", content=b'{"name": "Ad\xc3\xa9"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 201, response.text
    lead_id = response.json()["data"]["id"]
    assert client.get(f"/api/leads/{lead_id}").json()["data"]["name"] == "Adé"


# --- 400: no body, malformed JSON, not an object --------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b" \n", b'{"name": ', b"{'name': 'Ada'}", b'{"name": "Ada",}', b"not json",
     b'{"name": "\xff"}', b'{"name": "\\ud800"}', b"NaN", b'{"name": "Ada"} {}',
     b"[]", b'[{"name": "Ada"}]', b'"Ada"', b"42", b"true", b"null"],
)
@pytest.mark.parametrize(("method", "path", "_body"), BODY_ENDPOINTS)
def test_malformed_or_non_object_bodies_are_400(
    client: TestClient, content: bytes, method: str, path: str, _body: Any
) -> None:
    response = client.request(method, path, content=content, headers=JSON)
    error = assert_error(response, 400, "VALIDATION_ERROR", field="body")
    assert "Traceback" not in error["message"]


def test_body_errors_come_after_the_key_check(anonymous: TestClient) -> None:
    for content, headers in (
        (b"{", JSON), (b'{"name": "Ada"}', {"Content-Type": "text/plain"}),
        (b" " * (MIB + 1), JSON),
    ):
        response = anonymous.post("/api/leads", content=content, headers=headers)
        assert_error(response, 401, "UNAUTHORIZED")


def test_huge_numbers_are_a_field_error_not_a_crash(client: TestClient) -> None:
    response = client.patch(
        "/api/leads", content=b'{"id": "lead_x", "value": 1e400}', headers=JSON
    )
    assert_error(response, 400, "VALIDATION_ERROR")
    response = client.patch(
        "/api/leads", content=b'{"id": "lead_x", "value": 100000000000000000000000}',
        headers=JSON,
    )
    assert_error(response, 400, "VALIDATION_ERROR", field="value")


# --- no body makes a 500 --------------------------------------------------------------------

KNOWN_KEYS = ["name", "email", "phone", "custom", "note", "id", "status", "changedTo", "value",
              "lossReason", "alsoQualified", "ad_storage", "gclid", "period", "startDate",
              "endDate"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text() | st.sampled_from(["", " ", "won", "lost", "qualified", "custom", "2026-02-30",
                                   "2026-01-01", "granted", "99.50", "-1", "\x00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=6,
)
json_bodies = st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), json_values,
                              max_size=5)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=json_bodies, endpoint=st.sampled_from(BODY_ENDPOINTS))
def test_no_json_body_makes_a_500(
    client: TestClient, body: dict[str, Any], endpoint: tuple[str, str, Any]
) -> None:
    method, path, _ = endpoint
    content = json.dumps(body).encode()  # the stdlib also writes integers beyond 64 bits
    response = client.request(method, path, content=content, headers=JSON)
    assert response.status_code in (200, 201, 400, 403, 404, 409), response.text
    assert response.headers["X-Request-Id"] == response.json()["meta"]["requestId"]


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
def test_trailing_slash_is_an_enveloped_404(client: TestClient, method: str) -> None:
    response = client.request(method, "/api/leads/", json={"name": "x"})
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "NOT_FOUND"
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]
