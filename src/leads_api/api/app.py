"""The ASGI application: routes, and the error handlers that give every answer the envelope."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads_api.api.access_log import AccessLog, access_log_enabled
from leads_api.api.answer_cache import AnswerCache
from leads_api.api.ceiling import ceiling_routes
from leads_api.api.cors import cors_middleware
from leads_api.api.endpoints import ENDPOINTS
from leads_api.api.errors import on_api_error, on_http_exception
from leads_api.api.guard import Guard
from leads_api.api.metrics import RequestMetrics, metrics_enabled
from leads_api.api.openapi import document
from leads_api.api.read_slots import ReadSlots, read_threads_from_env
from leads_api.delivery.deliverer import Deliverer, DeliveryThread
from leads_api.errors import ApiError
from leads_api.store import Store, open_store


def create_app(
    store: Store | None = None,
    answer_cache: AnswerCache | None = None,
    *,
    deliver_webhooks: bool = False,
    read_threads: int | None = None,
) -> Starlette:
    """The app over `store` (default: the store LEADS_DATABASE_URL names), with
    `answer_cache` (default: LEADS_ANSWER_CACHE_MB's size, see answer_cache.py) and
    `read_threads` reads at once (default LEADS_READ_THREADS's, see read_slots.py); with
    `deliver_webhooks`, it runs a webhook deliverer while it serves."""
    # Outermost first. The access log sees every answer, the Guard's 500s included; CORS
    # wraps those too, so a browser can read them; the Guard (guard.py) turns unexpected
    # exceptions and vanished clients into one log line each.
    middleware = [
        Middleware(AccessLog, write=access_log_enabled()),
        *([Middleware(RequestMetrics)] if metrics_enabled() else []),
        *cors_middleware(),
        Middleware(Guard),
    ]
    store = store if store is not None else open_store()
    app = Starlette(
        routes=routes() + ceiling_routes(store),
        middleware=middleware,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
        },
        lifespan=delivering if deliver_webhooks else None,
    )
    # `/api/leads/` is not a route: answer 404 in the envelope rather than Starlette's bare
    # redirect, which a client POSTing a lead would not follow.
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.answer_cache = answer_cache if answer_cache is not None else AnswerCache.from_env()
    app.state.read_slots = ReadSlots(
        read_threads if read_threads is not None else read_threads_from_env()
    )
    app.state.openapi_json = orjson.dumps(document())
    return app


Endpoint = Callable[[Request], Awaitable[Response]]


def routes() -> list[Route]:
    """One Route per path of api/endpoints.py's declarations, in their order."""
    by_path: dict[str, dict[str, Endpoint]] = defaultdict(dict)
    for endpoint in ENDPOINTS:
        by_path[endpoint.path][endpoint.method] = endpoint.handler
    return [Route(path, by_method(**handlers), methods=list(handlers))
            for path, handlers in by_path.items()]


@asynccontextmanager
async def delivering(app: Starlette) -> AsyncIterator[None]:
    """Lifespan of a serving process: a webhook deliverer runs beside the server."""
    thread = DeliveryThread(Deliverer(app.state.store)).start()
    try:
        yield
    finally:
        thread.stop()


def by_method(**endpoints: Endpoint) -> Endpoint:
    """One endpoint per method on one path. A single Route (rather than one per method) keeps
    Starlette's 405 and its Allow header listing every method the path takes."""
    if len(endpoints) == 1:
        return next(iter(endpoints.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory leads_api.api.app:app_from_env` (one per worker)."""
    delivery = os.environ.get("LEADS_WEBHOOK_DELIVERY", "1").strip().lower()
    return create_app(deliver_webhooks=delivery not in ("0", "false", "no", "off"))
