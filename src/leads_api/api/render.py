"""Rows -> lead objects and the list's pagination block. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from leads_api.lead import object_builder
from leads_api.query.model import ListQuery
from leads_api.query.tokens import Cursor, encode_cursor, encode_position
from leads_api.store.feed import ChangesPage
from leads_api.store.reads import Page


def pagination(query: ListQuery, page: Page, *, org_id: int) -> dict[str, Any]:
    """`meta.pagination`. A page reached by cursor has no page number; `hasMore` then says
    whether leads follow it. `nextCursor` continues the query after this page's last lead."""
    total_pages = -(-page.total // query.limit)
    has_more = page.more if query.by_cursor else query.page < total_pages
    next_cursor = None
    if has_more and page.next_after is not None:
        next_cursor = encode_cursor(
            Cursor(query.shape, query.limit, page.next_after), org_id=org_id
        )
    return {
        "limit": query.limit,
        "page": None if query.by_cursor else query.page,
        "totalPages": total_pages,
        "total": page.total,
        "hasMore": has_more,
        "nextCursor": next_cursor,
    }


def page_objects(page: Page | ChangesPage) -> list[Any]:
    """The page's lead objects, for orjson: whole leads pass their stored JSON on as it is."""
    if page.whole:
        return [orjson.Fragment(row[0]) for row in page.rows]
    build = object_builder(page.fields)
    return [build(row) for row in page.rows]


def changes_meta(page: ChangesPage, *, org_id: int) -> dict[str, Any]:
    """`meta.changes`: where to continue from, and whether more changes wait there."""
    return {"next": encode_position(page.next, org_id=org_id), "hasMore": page.more}
