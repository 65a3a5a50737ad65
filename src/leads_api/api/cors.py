"""CORS for browser clients (a form back-end on another origin): LEADS_CORS_ORIGINS, a
comma-separated list of origins (default none: no CORS headers, preflights are 405)."""

from __future__ import annotations

import os

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from leads_api.api.envelope import REQUEST_ID_HEADER

ALLOWED_HEADERS = ("X-API-KEY", "Authorization", "Idempotency-Key", "Content-Type")
ALLOWED_METHODS = ("GET", "POST", "PATCH")
EXPOSED_HEADERS = (REQUEST_ID_HEADER, "Retry-After", "Idempotent-Replayed")
PREFLIGHT_MAX_AGE_S = 600


def cors_origins_from_env() -> list[str]:
    raw = os.environ.get("LEADS_CORS_ORIGINS") or ""
    return [origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()]


def cors_middleware() -> list[Middleware]:
    origins = cors_origins_from_env()
    if not origins:
        return []
    return [Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,  # keys travel in a header, never in cookies
        max_age=PREFLIGHT_MAX_AGE_S,
    )]
