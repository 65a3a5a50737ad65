"""Import's side of the store: which of some lead ids exist (the rewriting is the unit of
work's, store/unit_of_work.py).

Scoped to an organization like every lead function; ids are unique across organizations,
so `find_leads` also says which ids another organization owns (without showing its lead).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from leads_api.fields import LEAD_FIELDS
from leads_api.store.schema import leads
from leads_api.store.sql import columns_for

Row = dict[str, Any]

_LEAD_COLUMNS = columns_for(LEAD_FIELDS)
_TEXT_ARRAY = postgresql.ARRAY(sa.Text)


def find_leads(
    conn: Connection, *, org_id: int, ids: Collection[str]
) -> tuple[dict[str, Row], set[str]]:
    """Of `ids`: this organization's stored leads (rows by column name) and the ids that
    belong to another organization. One query, however many ids (callers chunk them)."""
    if not ids:
        return {}, set()
    if conn.dialect.name == "postgresql":
        # One array parameter: an IN list of 2,000 parameters cost more to build, send and
        # parse (client and server) than the lookup itself.
        match = leads.c.id == sa.func.any(sa.bindparam("ids", list(ids), type_=_TEXT_ARRAY))
    else:
        match = leads.c.id.in_(list(ids))
    result = conn.execute(sa.select(leads.c.org_id, *_LEAD_COLUMNS).where(match))
    own: dict[str, Row] = {}
    foreign: set[str] = set()
    for owner, *values in result:
        if owner == org_id:
            row = {c.name: v for c, v in zip(_LEAD_COLUMNS, values, strict=True)}
            own[row["id"]] = row
        else:
            foreign.add(values[0])
    return own, foreign
