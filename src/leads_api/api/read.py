"""GET /api/leads and GET /api/leads/{id}: auth -> (304?) -> parse -> store -> render."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.answer_cache import AnswerCache
from leads_api.api.auth import key_from_headers, require_caller
from leads_api.api.conditional import client_has, etag, not_modified
from leads_api.api.envelope import success_from_head, success_head
from leads_api.api.read_slots import in_read_slot
from leads_api.api.render import page_objects, pagination
from leads_api.errors import NotFound
from leads_api.lead import row_to_object
from leads_api.query import parse_list_query, parse_one_lead_query, split_query_string
from leads_api.store import Store
from leads_api.store.reads import get_lead, list_leads
from leads_api.store.tenants import data_version


async def list_leads_endpoint(request: Request) -> Response:
    def compute(conn: Connection, org_id: int, query_string: str) -> Computed:
        query = parse_list_query(split_query_string(query_string), org_id=org_id)
        page = list_leads(conn, org_id=org_id, query=query)
        head = success_head(page_objects(page), pagination=pagination(query, page, org_id=org_id))
        return Computed(head, page.version)

    return await cached_answer(request, compute)


class Computed(NamedTuple):
    head: bytes
    # The organization's data version as the answer's last statement saw it, when that
    # statement said (reads.Page.version); else None and it is asked for.
    version_seen: int | None = None


Compute = Callable[[Connection, int, str], Computed]  # (conn, org id, raw query string)


async def cached_answer(request: Request, compute: Compute, *, cache_prefix: str = "") -> Response:
    """A GET answer that is a function of (organization, URL, its leads): auth, then a 304
    when If-None-Match names this data version's ETag, then the answer cache (its keys under
    `cache_prefix`), computing the answer only when no kept one is this version's."""
    store: Store = request.app.state.store
    cache: AnswerCache = request.app.state.answer_cache
    key = key_from_headers(request)
    query_string = request.scope["query_string"].decode("latin-1")
    one_snapshot = store.dialect == "sqlite"

    def work() -> Response:
        with store.read() as conn:
            caller = require_caller(conn, key)
            org_id, version = caller.org.id, caller.data_version
            tag = etag(request, org_id=org_id, data_version=version)
            if client_has(request, tag):
                return not_modified(request, tag)

            seen: int | None = None

            def computed() -> bytes:
                nonlocal seen
                head, seen = compute(conn, org_id, query_string)
                return head

            def still_at_version() -> bool:
                # Each statement may see a newer snapshot on PostgreSQL: the answer is
                # exactly version's only if no write committed while it was computed, up
                # to its last statement (versions only grow). SQLite's read is one
                # snapshot, the key lookup's: no statement to ask.
                if one_snapshot:
                    return True
                last = seen if seen is not None else data_version(conn, org_id=org_id)
                return last == version

            head, exact = cache.answer(
                org_id, cache_prefix + query_string, version, computed, still_at_version
            )
        return success_from_head(request, head, headers={"ETag": tag} if exact else None)

    return await in_read_slot(request, work)


async def one_lead_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    key = key_from_headers(request)
    lead_id: str = request.path_params["lead_id"]
    query_string = request.scope["query_string"].decode("latin-1")

    def work() -> Response:
        with store.read() as conn:
            caller = require_caller(conn, key)
            org_id, version = caller.org.id, caller.data_version
            tag = etag(request, org_id=org_id, data_version=version)
            if client_has(request, tag):
                return not_modified(request, tag)
            fields = parse_one_lead_query(split_query_string(query_string))
            found = None
            if "\x00" not in lead_id:  # no stored id holds NUL; PostgreSQL would refuse it
                found = get_lead(conn, org_id=org_id, lead_id=lead_id, fields=fields)
            if found is None:
                raise NotFound(f"No lead with id {lead_id!r}", parameter="id", id=lead_id)
            exact = store.dialect == "sqlite" or found.version == version
        head = success_head(row_to_object(found.fields, found.row))
        return success_from_head(request, head, headers={"ETag": tag} if exact else None)

    return await in_read_slot(request, work)
