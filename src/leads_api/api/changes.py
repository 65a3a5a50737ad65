"""GET /api/leads/changes: the change feed. auth -> (304?) -> parse -> store -> render.

Answers are kept in the answer cache like list answers (a poller asking again with the
same `since` while nothing changed costs one lookup), under their own key space.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.envelope import success_head
from leads_api.api.read import Computed, cached_answer
from leads_api.api.render import changes_meta, page_objects
from leads_api.query import parse_changes_query, split_query_string
from leads_api.store.feed import changed_leads

CACHE_PREFIX = "changes?"  # the cache's key space for feed answers


async def changes_endpoint(request: Request) -> Response:
    def compute(conn: Connection, org_id: int, query_string: str) -> Computed:
        query = parse_changes_query(split_query_string(query_string), org_id=org_id)
        page = changed_leads(conn, org_id=org_id, query=query)
        meta = {"changes": changes_meta(page, org_id=org_id)}
        return Computed(success_head(page_objects(page), meta=meta))

    return await cached_answer(request, compute, cache_prefix=CACHE_PREFIX)
