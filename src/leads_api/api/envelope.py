"""The response envelope (CONTRACT.md section 2): request ids, timestamps, JSON encoding."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

REQUEST_ID_HEADER = "X-Request-Id"


def request_id(request: Request) -> str:
    """This request's id, made on first use and kept for the error mapper to reuse."""
    rid: str | None = getattr(request.state, "request_id", None)
    if rid is None:
        rid = "req_" + secrets.token_hex(6)
        request.state.request_id = rid
    return rid


def utc_timestamp() -> str:
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


def json_response(
    body: Any, *, status: int = 200, rid: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    all_headers = dict(headers or {})
    if rid is not None:
        all_headers[REQUEST_ID_HEADER] = rid
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=all_headers
    )


def success(
    request: Request,
    data: Any,
    *,
    status: int = 200,
    pagination: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return success_from_head(
        request, success_head(data, pagination=pagination), status=status, headers=headers
    )


def success_head(
    data: Any, *, pagination: dict[str, Any] | None = None, meta: dict[str, Any] | None = None
) -> bytes:
    """The start of a success body: all of it but this response's requestId and timestamp,
    which success_from_head appends (the answer cache keeps heads). `meta` entries come
    after the pagination."""
    head = b'{"success":true,"data":' + orjson.dumps(data) + b',"meta":{'
    if pagination is not None:
        head += b'"pagination":' + orjson.dumps(pagination) + b","
    for name, value in (meta or {}).items():
        head += orjson.dumps(name) + b":" + orjson.dumps(value) + b","
    return head


def success_from_head(
    request: Request, head: bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    rid = request_id(request)
    tail = f'"requestId":"{rid}","timestamp":"{utc_timestamp()}"}}}}'.encode()
    all_headers = dict(headers or {})
    all_headers[REQUEST_ID_HEADER] = rid
    return Response(
        head + tail, status_code=status, media_type="application/json", headers=all_headers
    )


def failure(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Response:
    rid = request_id(request)
    body = {
        "success": False,
        "error": {"code": code, "message": message, "details": details},
        "meta": {"requestId": rid, "timestamp": utc_timestamp()},
    }
    return json_response(body, status=status, rid=rid, headers=headers)
