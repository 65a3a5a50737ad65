"""Prometheus metrics: requests by route and status, latencies, answer-cache hits and
misses, database errors; served at GET /metrics in the text format.

Off unless `LEADS_METRICS=1`, or `LEADS_METRICS_TOKEN` is set, which also requires
`Authorization: Bearer <token>` on /metrics (metrics name routes and rates a competitor
or an attacker should not see on a public port). While off nothing is measured.

With `serve --workers N` every worker writes its samples to files in the directory
PROMETHEUS_MULTIPROC_DIR (the supervisor makes a fresh one, cli/workers.py), and
/metrics, answered by any one worker, adds up all of them: prometheus_client's
multi-process mode. Every metric any module registers with prometheus_client is exposed.
"""

from __future__ import annotations

import hmac
import os
import threading
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leads_api.api.answer_cache import AnswerCache
from leads_api.errors import NotFound, ServiceUnavailable, Unauthorized

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"  # 404s: their paths are the client's, not a bounded set

REQUESTS = Counter(
    "leads_http_requests", "HTTP requests answered, by route, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "leads_http_request_duration_seconds", "Time to answer a request, by route and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE = Counter(
    "leads_answer_cache_lookups", "List answers looked up in this process's answer cache",
    ["result"],  # hit, miss, shared (waited for a concurrent request's computation)
)
DATABASE_ERRORS = Counter(
    "leads_database_errors", "Requests failed by the database: unreachable (503) or an "
    "unexpected database error (500)", ["kind"],
)


def metrics_token() -> str | None:
    return (os.environ.get("LEADS_METRICS_TOKEN") or "").strip() or None


def metrics_enabled() -> bool:
    flag = (os.environ.get("LEADS_METRICS") or "").strip().lower()
    return flag in ("1", "true", "on", "yes") or metrics_token() is not None


def count_database_error(error: BaseException) -> None:
    """Called for every 503 (the error mapper) and unexpected 500 (the Guard); cheap when off."""
    if isinstance(error, ServiceUnavailable):
        DATABASE_ERRORS.labels("unavailable").inc()
    elif type(error).__module__.startswith("sqlalchemy"):
        DATABASE_ERRORS.labels("error").inc()


class _CacheCounts:
    """Moves the cache counters by what an AnswerCache counted since the last look: the
    cache counts with plain integers under its own lock, and stays free of Prometheus."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {"hit": 0, "miss": 0, "shared": 0}

    def sync(self, cache: AnswerCache) -> None:
        now = {"hit": cache.hits, "miss": cache.misses, "shared": cache.shared}
        with self._lock:
            for result, count in now.items():
                if count > self._seen[result]:
                    CACHE.labels(result).inc(count - self._seen[result])
                    self._seen[result] = count


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request by its route's template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cache_counts = _CacheCounts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", UNMATCHED_ROUTE))
            method = scope.get("method", "")
            REQUESTS.labels(template, method, str(status)).inc()
            LATENCY.labels(template, method).observe(time.perf_counter() - started)
            cache = getattr(scope.get("app"), "state", None)
            if cache is not None and isinstance(getattr(cache, "answer_cache", None),
                                                AnswerCache):
                self.cache_counts.sync(cache.answer_cache)


async def metrics_endpoint(request: Request) -> Response:
    if not metrics_enabled():
        raise NotFound("Metrics are off: set LEADS_METRICS=1 (or LEADS_METRICS_TOKEN)",
                       path=request.url.path)
    token = metrics_token()
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise Unauthorized("Metrics need Authorization: Bearer <LEADS_METRICS_TOKEN>")
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def exposition() -> bytes:
    """Every registered metric: this process's, or all workers' in multi-process mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)

