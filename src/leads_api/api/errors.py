"""The one place errors become HTTP responses. Nothing from a driver reaches the client."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.envelope import failure
from leads_api.api.metrics import count_database_error
from leads_api.errors import (
    ApiError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)

log = logging.getLogger("leads_api")
# The order methods are listed in an Allow header (Starlette keeps a route's methods in a set).
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(request: Request, error: ApiError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, MethodNotAllowed) and "allow" in error.details:
        headers["Allow"] = ", ".join(error.details["allow"])
    if isinstance(error, PayloadTooLarge):
        # The body is left unread: close the connection after the answer (the server reads
        # and discards the rest for a moment first, so the client sees this answer).
        headers["Connection"] = "close"
    return failure(
        request,
        status=error.status,
        code=error.code,
        message=error.message,
        details=error.details,
        headers=headers,
    )


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if isinstance(exc, ServiceUnavailable):
        log.warning("database unavailable: %r", exc.__cause__)
        count_database_error(exc)
    return error_response(request, exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (unknown route, wrong method) in the contract's envelope."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if exc.status_code == 405:
        allow = sorted(
            (m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()),
            key=lambda m: _METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER),
        )
        return error_response(
            request,
            MethodNotAllowed(
                f"{request.method} is not allowed on {path}; use {', '.join(allow)}",
                method=request.method,
                allow=allow,
            ),
        )
    if exc.status_code == 404:
        return error_response(request, NotFound(f"No route {request.method} {path}", path=path))
    if exc.status_code == 413:
        return error_response(request, PayloadTooLarge("The request body is over 1 MiB"))
    log.error("unexpected HTTP exception %s on %s", exc.status_code, path)
    return error_response(request, InternalError("An unexpected error occurred"))
