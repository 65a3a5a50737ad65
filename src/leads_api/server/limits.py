"""The HTTP server's limits and timeouts: what one connection may send, and for how long.

Each limit is one field here, set by the environment variable `LEADS_HTTP_` + its name in
capitals (`LEADS_HTTP_HEADERS_TIMEOUT_S=5`). They hold before the application sees a
request, so before any key is checked.

>>> HttpLimits.from_env({"LEADS_HTTP_MAX_HEADERS": "50"}).max_headers
50
>>> env_name("body_timeout_s")
'LEADS_HTTP_BODY_TIMEOUT_S'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leads_api.errors import UsageError

ENV_PREFIX = "LEADS_HTTP_"
KIB = 1024


def _limit(default: float, meaning: str) -> Any:
    return field(default=default, metadata={"meaning": meaning})


@dataclass(frozen=True)
class HttpLimits:
    max_request_line_bytes: int = _limit(
        8 * KIB, "longest request line (method, target, version); longer is 414"
    )
    max_header_bytes: int = _limit(
        32 * KIB, "request line and headers together; more is 431"
    )
    max_headers: int = _limit(100, "header fields in one request; more is 431")
    headers_timeout_s: float = _limit(
        10.0, "time from a request's first byte (or the connection's start) to its last header; "
        "then 408 (a connection that sent nothing is closed)"
    )
    body_timeout_s: float = _limit(
        30.0, "time from the last header to the body's last byte; then 408"
    )
    keepalive_s: float = _limit(5.0, "an idle keep-alive connection is closed after this")
    max_connections: int = _limit(
        1000, "open connections per worker process; one more is answered 503 and closed"
    )
    linger_s: float = _limit(
        5.0, "after answering a request whose body was not read (413, 408, 431), how long "
        "the rest of it is read and discarded so that the client sees the answer"
    )
    linger_bytes: int = _limit(8 * KIB * KIB, "at most this much is discarded so")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpLimits:
        """The defaults, overridden by any `LEADS_HTTP_*` variable; a bad one is a UsageError."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for limit in dataclasses.fields(cls):
            raw = env.get(env_name(limit.name), "").strip()
            if not raw:
                continue
            kind = int if limit.type in ("int", int) else float
            try:
                value = kind(raw)
            except ValueError:
                value = -1
            if value <= 0:
                raise UsageError(
                    f"{env_name(limit.name)}={raw!r}: expected a positive "
                    f"{'whole number' if kind is int else 'number'}"
                )
            values[limit.name] = value
        return cls(**values)


def env_name(limit: str) -> str:
    return ENV_PREFIX + limit.upper()


def described() -> list[tuple[str, Any, str]]:
    """(variable, default, meaning) of every limit, for the README and `serve --help`."""
    return [
        (env_name(limit.name), limit.default, limit.metadata["meaning"])
        for limit in dataclasses.fields(HttpLimits)
    ]
