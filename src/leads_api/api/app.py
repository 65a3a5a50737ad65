"""The ASGI application: routes, and the error handlers that give every answer the envelope."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from leads_api.api.check import check_endpoint
from leads_api.api.errors import on_api_error, on_http_exception, on_unexpected
from leads_api.api.read import list_leads_endpoint, one_lead_endpoint
from leads_api.errors import ApiError
from leads_api.store import Store, open_store


def create_app(store: Store | None = None) -> Starlette:
    """The app over `store` (default: the store LEADS_DATABASE_URL names)."""
    routes = [
        Route("/api/leads", list_leads_endpoint, methods=["GET"]),
        Route("/api/leads/{lead_id:str}", one_lead_endpoint, methods=["GET"]),
        Route("/api/check", check_endpoint, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
    )
    app.state.store = store if store is not None else open_store()
    return app


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory leads_api.api.app:app_from_env` (one per worker)."""
    return create_app()
