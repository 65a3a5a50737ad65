"""Streaming an organization's matching leads, in full, to a JSONL or CSV stream.

The query is GET /api/leads's own (filters, search, sort) minus its paging and field
selection, since an export is every matching lead in full. Rows come from a server-side
cursor and go out one by one, so memory stays flat however many leads match. JSONL lines
are the leads' stored objects (store/schema.py LEAD_JSON_COLUMN), passed on as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson

from leads_api.errors import ApiError, UsageError
from leads_api.fields import LEAD_FIELDS
from leads_api.lead import object_builder
from leads_api.query import ListQuery, parse_list_query, split_query_string
from leads_api.store import Store
from leads_api.store.reads import count_leads, iter_leads
from leads_api.store.tenants import require_organization
from leads_api.transfer.formats import JSONL, write_leads
from leads_api.transfer.progress import Tracker

# Parameters of GET that shape a page rather than choose leads.
PAGE_PARAMETERS = ("limit", "page", "fields")


def export_query(text: str) -> ListQuery:
    """`--query 'status=won&sort=value:desc'` -> ListQuery; mistakes are UsageErrors."""
    pairs = split_query_string(text.lstrip("?"))
    for name, _ in pairs:
        if name in PAGE_PARAMETERS:
            raise UsageError(
                f"--query: {name!r} is not allowed; an export writes every matching lead "
                "with every field (filters, search and sort are allowed)"
            )
    try:
        return parse_list_query(pairs)
    except ApiError as error:
        raise UsageError(f"--query: {error.message}") from None


def export_leads(
    store: Store,
    *,
    org_name: str,
    query: ListQuery,
    out: IO[bytes],
    fmt: str,
    progress: Tracker | None = None,
) -> int:
    """Write the organization's leads matching `query` to `out`; returns how many."""
    with store.snapshot() as conn:
        org = require_organization(conn, org_name)
        if progress is not None:
            progress.start(count_leads(conn, org_id=org.id, query=query))
        objects: Iterator[Any]
        if fmt == JSONL:  # each lead's stored object, written as it is
            rows = iter_leads(conn, org_id=org.id, query=query, stored=True)
            objects = (orjson.Fragment(row[0]) for row in rows)
        else:
            build = object_builder(LEAD_FIELDS)
            objects = (build(row) for row in iter_leads(conn, org_id=org.id, query=query))
        return write_leads(
            objects, out, fmt, progress=None if progress is None else progress.advance
        )
