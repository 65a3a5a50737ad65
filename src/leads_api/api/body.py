"""Reading a request's JSON body: size limit, media type, and a JSON object, or a typed error.

The size is checked twice: a declared `Content-Length` over the limit is refused before a
byte is read, and the bytes are counted while they stream in, so a chunked or lying client
cannot make the server buffer more than the limit either.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from typing import Any

import orjson
from starlette.requests import Request

from leads_api.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError
from leads_api.json_shape import check_depth

MAX_BODY_BYTES = 1024 * 1024
BODY_FIELD = "body"


@dataclass(frozen=True)
class Body:
    """A request's body as read, not yet looked at: its bytes and media type, or why it was
    not read to the end (over the limit)."""

    raw: bytes
    content_type: str | None
    refused: PayloadTooLarge | None = None


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 413 over 1 MiB, 415 when not JSON, 400 when absent or bad."""
    return json_object(await read_body(request))


async def read_body(request: Request) -> Body:
    """The body's bytes, up to the limit: for an endpoint that looks at them later (after
    the caller's key, in the same worker thread as its write: json_object)."""
    content_type = request.headers.get("content-type")
    try:
        return Body(await _read_limited(request), content_type)
    except PayloadTooLarge as error:
        return Body(b"", content_type, refused=error)


def json_object(body: Body) -> dict[str, Any]:
    """`body` as a JSON object, or the error read_json_object gives."""
    if body.refused is not None:
        raise body.refused
    raw = body.raw
    if not raw.strip():
        raise ValidationError("A JSON object body is required (send {} for none)", field=BODY_FIELD)
    _require_json_media_type(body.content_type)
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ValidationError(
            f"The request body is not valid JSON: {error}", field=BODY_FIELD
        ) from None
    if not isinstance(parsed, dict):
        raise ValidationError(
            f"The request body must be a JSON object, not {_json_kind(parsed)}", field=BODY_FIELD
        )
    check_depth(parsed)  # before anything encodes a value again (orjson stops at 254 levels)
    return parsed


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is over 1 MiB ({MAX_BODY_BYTES} bytes)",
        field=BODY_FIELD,
        maxBytes=MAX_BODY_BYTES,
    )


def _require_json_media_type(header: str | None) -> None:
    """`application/json`, with any parameters; a charset other than UTF-8 is refused too,
    because JSON on the wire is UTF-8 (RFC 8259) and that is how the body is decoded."""
    problem = "The request body must be sent as Content-Type: application/json"
    if header is None or not header.strip():
        raise UnsupportedMediaType(problem, parameter="Content-Type", received=None)
    message = Message()
    message["content-type"] = header
    if message.get_content_type() != "application/json":
        raise UnsupportedMediaType(problem, parameter="Content-Type", received=header)
    charset = message.get_param("charset")
    if isinstance(charset, str) and charset.strip().lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            "JSON bodies must be UTF-8 (Content-Type: application/json; charset=utf-8)",
            parameter="Content-Type",
            received=header,
        )


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
