"""Counters for what is counted rather than logged: requests refused before the app saw them,
and clients that hung up before their request was read.

A client can send malformed or oversized requests as fast as it likes; one log line each
would let it grow the log at will, so each is one increment here instead. The counters are
registered with prometheus_client's default registry, which `/metrics` exposes.
"""

from __future__ import annotations

from prometheus_client import Counter

REJECTIONS = Counter(
    "leads_http_rejected_requests",
    "Requests answered by the HTTP server itself, before the application, by reason",
    ["reason"],
)
DISCONNECTS = Counter(
    "leads_client_disconnects",
    "Requests whose client hung up before the request body was read",
)

# Every reason the server refuses a request for, with its status.
REASONS = {
    "malformed": 400,
    "headers_timeout": 408,
    "body_timeout": 408,
    "request_line_too_long": 414,
    "headers_too_large": 431,
    "too_many_headers": 431,
    "too_many_connections": 503,
}


def rejected(reason: str) -> None:
    REJECTIONS.labels(reason=reason).inc()


def disconnected() -> None:
    DISCONNECTS.inc()
