"""Helpers the HTTP tests share: reading timestamps back and checking error envelopes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def ms(timestamp: str) -> int:
    """`2026-01-15T10:30:00.000Z` -> epoch milliseconds."""
    moment = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def assert_error(response: Any, status: int, code: str, **details: Any) -> dict[str, Any]:
    """The response is the contract's error envelope with this status, code and details."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    for key, value in details.items():
        assert body["error"]["details"][key] == value, body
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]
    error: dict[str, Any] = body["error"]
    return error
