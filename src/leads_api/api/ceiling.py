"""A benchmark aid, off by default: `GET /bench/ceiling`, a fixed page through the full stack.

With `LEADS_BENCH_CEILING=<organization name>` set, the app adds one route that answers
page 1 of that organization's leads (the default list, 50 leads, the list's own envelope)
from bytes computed once when the app starts: no key, no database, no answer cache. Its
rate is what this machine's server stack (uvicorn, server/protocol.py, the middleware,
the envelope's per-answer tail) can do at all, so `python -m bench` reports each query
as a share of it. Never set it in production: the route serves leads without a key.
"""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads_api.api.envelope import success_from_head, success_head
from leads_api.api.render import page_objects, pagination
from leads_api.query import parse_list_query
from leads_api.store import Store
from leads_api.store.reads import list_leads
from leads_api.store.tenants import require_organization

CEILING_ENV = "LEADS_BENCH_CEILING"
CEILING_PATH = "/bench/ceiling"


def ceiling_routes(store: Store) -> list[Route]:
    """The ceiling's route when LEADS_BENCH_CEILING names an organization, else none."""
    org_name = os.environ.get(CEILING_ENV, "").strip()
    if not org_name:
        return []
    with store.read() as conn:
        org = require_organization(conn, org_name)
        query = parse_list_query([], org_id=org.id)
        page = list_leads(conn, org_id=org.id, query=query)
        head = success_head(page_objects(page), pagination=pagination(query, page, org_id=org.id))

    async def ceiling(request: Request) -> Response:
        return success_from_head(request, head)

    return [Route(CEILING_PATH, ceiling, methods=["GET"])]
