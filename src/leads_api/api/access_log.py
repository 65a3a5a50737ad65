"""The access log: one structured line per request, on stderr.

Each line has the request id (the `X-Request-Id` the client got, so a client's report can
be found), method, path, status, duration and the caller's organization id. It never holds
the query string (a filter value may be an email, and a careless client may put its key
there), a header, a body or a key. `LEADS_LOG_FORMAT` chooses `json` (default) or `text`;
`LEADS_ACCESS_LOG=0` turns the lines off (requests still get their ids).

A pure ASGI middleware, outermost but for Starlette's error middleware: it sees every
answer, CORS preflights and 404s included, and an unexpected exception as a 500.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leads_api.api.envelope import REQUEST_ID_HEADER

LOGGER_NAME = "leads_api.access"
FORMATS = ("json", "text")
_MAX_PATH = 300  # a path is client-chosen text: bounded, like everything else logged
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]{1,80}")


class RequestRecord:
    """What the log learns during a request, from code that runs in other threads (auth
    runs in the thread pool, where a context variable set would not be seen back here)."""

    __slots__ = ("org_id",)

    def __init__(self) -> None:
        self.org_id: int | None = None


_current: ContextVar[RequestRecord | None] = ContextVar("leads_request_record", default=None)


def note_organization(org_id: int) -> None:
    """Called by auth once the key is known: the organization id goes in the log line."""
    record = _current.get()
    if record is not None:
        record.org_id = org_id


def log_format_from_env() -> str:
    chosen = (os.environ.get("LEADS_LOG_FORMAT") or "json").strip().lower()
    return chosen if chosen in FORMATS else "json"


def access_log_enabled() -> bool:
    return (os.environ.get("LEADS_ACCESS_LOG") or "1").strip().lower() not in ("0", "false", "off")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "access", {})
        line = {"ts": _timestamp(record.created), "level": record.levelname.lower(),
                "event": "request", **fields}
        return orjson.dumps(line).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        f: dict[str, Any] = getattr(record, "access", {})
        org = f.get("orgId")
        return (f"{_timestamp(record.created)} {f['requestId']} {f['method']} {f['path']} "
                f"{f['status']} {f['durationMs']}ms org={'-' if org is None else org}")


def access_logger() -> logging.Logger:
    """The access logger, set up on first use from LEADS_LOG_FORMAT, to stderr."""
    logger = logging.getLogger(LOGGER_NAME)
    return logger if logger.handlers else configure_access_log()


def configure_access_log(fmt: str | None = None, stream: Any = None) -> logging.Logger:
    """(Re)direct the access log: one line per record, `fmt` (default LEADS_LOG_FORMAT),
    to `stream` (default stderr)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # its own format; not uvicorn's nor the root's
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_JsonFormatter() if (fmt or log_format_from_env()) == "json"
                         else _TextFormatter())
    logger.addHandler(handler)
    return logger


class AccessLog:
    """Gives every request its id (kept for the envelope, and sent as X-Request-Id on every
    answer) and, unless `write` is false (LEADS_ACCESS_LOG=0), logs its line."""

    def __init__(
        self, app: ASGIApp, logger: logging.Logger | None = None, *, write: bool = True
    ) -> None:
        self.app = app
        self.write = write
        if logger is None:
            logger = access_logger() if write else logging.getLogger(LOGGER_NAME)
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = RequestRecord()
        token = _current.set(record)
        # The id every answer carries: the envelope takes it from the request's state.
        rid = "req_" + secrets.token_hex(6)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
            if self.write:
                self.logger.info("request", extra={"access": {
                    "requestId": rid,
                    "method": scope.get("method", ""),
                    "path": logged_path(scope),
                    "status": status,
                    "durationMs": round((time.perf_counter() - started) * 1000, 2),
                    "orgId": record.org_id,
                }})


def logged_path(scope: Scope) -> str:
    """The path, bounded; a path parameter that is not a plain token (an email or phone
    sent where an id belongs) is shown as the route's `{name}` instead."""
    path: str = scope.get("path", "")
    route = scope.get("route")
    params: dict[str, Any] = scope.get("path_params") or {}
    if route is not None and any(not _TOKEN.fullmatch(str(v)) for v in params.values()):
        path = str(getattr(route, "path", path))
    return path if len(path) <= _MAX_PATH else path[:_MAX_PATH] + "..."


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
