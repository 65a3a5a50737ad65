"""The ASGI application: routes, and the error handlers that give every answer the envelope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads_api.api.answer_cache import AnswerCache
from leads_api.api.check import check_endpoint
from leads_api.api.errors import on_api_error, on_http_exception
from leads_api.api.guard import Guard
from leads_api.api.read import list_leads_endpoint, one_lead_endpoint
from leads_api.api.stats import stats_endpoint
from leads_api.api.write import create_lead_endpoint, update_leads_endpoint
from leads_api.errors import ApiError
from leads_api.store import Store, open_store


def create_app(store: Store | None = None, answer_cache: AnswerCache | None = None) -> Starlette:
    """The app over `store` (default: the store LEADS_DATABASE_URL names), with
    `answer_cache` (default: LEADS_ANSWER_CACHE_MB's size, see answer_cache.py)."""
    routes = [
        Route(
            "/api/leads",
            by_method(
                GET=list_leads_endpoint, POST=create_lead_endpoint, PATCH=update_leads_endpoint
            ),
            methods=["GET", "POST", "PATCH"],
        ),
        Route("/api/leads/{lead_id:str}", one_lead_endpoint, methods=["GET"]),
        Route("/api/check", check_endpoint, methods=["GET", "POST"]),
        Route("/api/stats", stats_endpoint, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
        },
        # Unexpected exceptions and vanished clients: one log line each (see guard.py).
        middleware=[Middleware(Guard)],
    )
    # `/api/leads/` is not a route: answer 404 in the envelope rather than Starlette's bare
    # redirect, which a client POSTing a lead would not follow.
    app.router.redirect_slashes = False
    app.state.store = store if store is not None else open_store()
    app.state.answer_cache = answer_cache if answer_cache is not None else AnswerCache.from_env()
    return app


Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(**endpoints: Endpoint) -> Endpoint:
    """One endpoint per method on one path. A single Route (rather than one per method) keeps
    Starlette's 405 and its Allow header listing every method the path takes."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory leads_api.api.app:app_from_env` (one per worker)."""
    return create_app()
