"""GET /healthz (the process is up) and GET /readyz (the database answers and its schema
is current). No key, no envelope: they are for probes, so they answer before any other
check and cost at most one small read."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.envelope import json_response
from leads_api.errors import ServiceUnavailable
from leads_api.store import Store
from leads_api.store.migrate import schema_is_current


async def healthz_endpoint(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store

    def work() -> tuple[str, str]:
        try:
            with store.read() as conn:
                return "ok", "current" if schema_is_current(conn) else "outdated"
        except ServiceUnavailable:
            return "unavailable", "unknown"
        except SQLAlchemyError:  # e.g. no alembic_version table: not this service's schema
            return "ok", "outdated"

    database, schema = await run_in_threadpool(work)
    ready = database == "ok" and schema == "current"
    return json_response(
        {"status": "ready" if ready else "not ready", "database": database, "schema": schema},
        status=200 if ready else 503,
    )
