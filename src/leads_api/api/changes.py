"""GET /api/leads/changes: the change feed. auth -> (304?) -> parse -> store -> render.

Answers are kept in the answer cache like list answers (a poller asking again with the
same `since` while nothing changed costs one lookup), under their own key space.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.answer_cache import AnswerCache
from leads_api.api.auth import key_from_headers, require_caller
from leads_api.api.conditional import client_has, etag, not_modified
from leads_api.api.envelope import success_from_head, success_head
from leads_api.api.render import changes_meta, page_objects
from leads_api.query import parse_changes_query, split_query_string
from leads_api.store import Store
from leads_api.store.feed import changed_leads
from leads_api.store.tenants import data_version

CACHE_PREFIX = "changes?"  # the cache's key space for feed answers


async def changes_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    key = key_from_headers(request)
    query_string = request.scope["query_string"].decode("latin-1")
    cache: AnswerCache = request.app.state.answer_cache

    def work() -> Response:
        with store.read() as conn:
            caller = require_caller(conn, key)
            org_id, version = caller.org.id, caller.data_version
            tag = etag(request, org_id=org_id, data_version=version)
            if client_has(request, tag):
                return not_modified(request, tag)

            def compute() -> bytes:
                query = parse_changes_query(split_query_string(query_string), org_id=org_id)
                page = changed_leads(conn, org_id=org_id, query=query)
                return success_head(
                    page_objects(page), meta={"changes": changes_meta(page, org_id=org_id)}
                )

            def still_at_version() -> bool:
                return data_version(conn, org_id=org_id) == version

            head, exact = cache.answer(
                org_id, CACHE_PREFIX + query_string, version, compute, still_at_version
            )
        return success_from_head(request, head, headers={"ETag": tag} if exact else None)

    return await run_in_threadpool(work)
