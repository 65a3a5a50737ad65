"""Rows -> lead objects and the list's pagination block. Pure."""

from __future__ import annotations

from typing import Any

from leads_api.lead import object_builder
from leads_api.query.model import ListQuery
from leads_api.store.reads import Page


def pagination(query: ListQuery, total: int) -> dict[str, Any]:
    total_pages = -(-total // query.limit)
    return {
        "limit": query.limit,
        "page": query.page,
        "totalPages": total_pages,
        "total": total,
        "hasMore": query.page < total_pages,
    }


def page_objects(page: Page) -> list[dict[str, Any]]:
    build = object_builder(page.fields)
    return [build(row) for row in page.rows]
