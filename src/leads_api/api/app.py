"""The ASGI application: routes, and the error handlers that give every answer the envelope."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads_api.api.answer_cache import AnswerCache
from leads_api.api.changes import changes_endpoint
from leads_api.api.check import check_endpoint
from leads_api.api.errors import on_api_error, on_http_exception, on_unexpected
from leads_api.api.read import list_leads_endpoint, one_lead_endpoint
from leads_api.api.stats import stats_endpoint
from leads_api.api.webhooks import (
    deliveries_endpoint,
    rotate_secret_endpoint,
    test_endpoint,
    webhook_endpoint,
    webhooks_endpoint,
)
from leads_api.api.write import create_lead_endpoint, update_leads_endpoint
from leads_api.delivery.deliverer import Deliverer, DeliveryThread
from leads_api.errors import ApiError
from leads_api.store import Store, open_store


def create_app(
    store: Store | None = None,
    answer_cache: AnswerCache | None = None,
    *,
    deliver_webhooks: bool = False,
) -> Starlette:
    """The app over `store` (default: the store LEADS_DATABASE_URL names), with
    `answer_cache` (default: LEADS_ANSWER_CACHE_MB's size, see answer_cache.py); with
    `deliver_webhooks`, it runs a webhook deliverer while it serves."""
    routes = [
        Route(
            "/api/leads",
            by_method(
                GET=list_leads_endpoint, POST=create_lead_endpoint, PATCH=update_leads_endpoint
            ),
            methods=["GET", "POST", "PATCH"],
        ),
        # Before /api/leads/{lead_id}: no lead id is "changes" (ids start with lead_).
        Route("/api/leads/changes", changes_endpoint, methods=["GET"]),
        Route("/api/leads/{lead_id:str}", one_lead_endpoint, methods=["GET"]),
        Route("/api/check", check_endpoint, methods=["GET", "POST"]),
        Route("/api/stats", stats_endpoint, methods=["POST"]),
        *WEBHOOK_ROUTES,
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
        lifespan=delivering if deliver_webhooks else None,
    )
    # `/api/leads/` is not a route: answer 404 in the envelope rather than Starlette's bare
    # redirect, which a client POSTing a lead would not follow.
    app.router.redirect_slashes = False
    app.state.store = store if store is not None else open_store()
    app.state.answer_cache = answer_cache if answer_cache is not None else AnswerCache.from_env()
    return app


Endpoint = Callable[[Request], Awaitable[Response]]

WEBHOOK_ROUTES = [
    Route("/api/webhooks", webhooks_endpoint, methods=["GET", "POST"]),
    Route(
        "/api/webhooks/{webhook_id:str}",
        webhook_endpoint,
        methods=["GET", "PATCH", "DELETE"],
    ),
    Route(
        "/api/webhooks/{webhook_id:str}/rotate-secret", rotate_secret_endpoint, methods=["POST"]
    ),
    Route("/api/webhooks/{webhook_id:str}/deliveries", deliveries_endpoint, methods=["GET"]),
    Route("/api/webhooks/{webhook_id:str}/test", test_endpoint, methods=["POST"]),
]


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

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory leads_api.api.app:app_from_env` (one per worker)."""
    delivery = os.environ.get("LEADS_WEBHOOK_DELIVERY", "1").strip().lower()
    return create_app(deliver_webhooks=delivery not in ("0", "false", "no", "off"))
