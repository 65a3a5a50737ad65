"""Import's side of the store: which of some lead ids exist, and rewriting stored leads in bulk.

Scoped to an organization like every lead function; ids are unique across organizations,
so `find_leads` also says which ids another organization owns (without showing its lead).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.fields import LEAD_FIELDS
from leads_api.lead import with_derived_columns
from leads_api.store.rollups import RollupChanges, record_changes
from leads_api.store.schema import leads
from leads_api.store.sql import columns_for

Row = dict[str, Any]

_LEAD_COLUMNS = columns_for(LEAD_FIELDS)
# Everything an update may set: the lead's columns but its id, and the derived columns.
_SET_COLUMNS = tuple(c.name for c in leads.columns if c.name not in ("id", "org_id"))


def find_leads(
    conn: Connection, *, org_id: int, ids: Collection[str]
) -> tuple[dict[str, Row], set[str]]:
    """Of `ids`: this organization's stored leads (rows by column name) and the ids that
    belong to another organization. One query, however many ids (callers chunk them)."""
    if not ids:
        return {}, set()
    result = conn.execute(
        sa.select(leads.c.org_id, *_LEAD_COLUMNS).where(leads.c.id.in_(list(ids)))
    )
    own: dict[str, Row] = {}
    foreign: set[str] = set()
    for owner, *values in result:
        if owner == org_id:
            row = {c.name: v for c, v in zip(_LEAD_COLUMNS, values, strict=True)}
            own[row["id"]] = row
        else:
            foreign.add(values[0])
    return own, foreign


def replace_leads(
    conn: Connection,
    *,
    org_id: int,
    changes: Sequence[tuple[Row, Row]],
    rollups: RollupChanges | None = None,
) -> int:
    """Rewrite stored leads of `org_id` in place: each change is (stored row, new row).
    The rollups move now, or in `rollups` if the caller gathers them."""
    if not changes:
        return 0
    statement = leads.update().where(
        leads.c.org_id == org_id, leads.c.id == sa.bindparam("_id")
    )
    params = []
    for _, new in changes:
        full = with_derived_columns(new)
        params.append({"_id": new["id"], **{c: full.get(c) for c in _SET_COLUMNS}})
    conn.execute(statement, params)
    record_changes(
        conn,
        org_id=org_id,
        removed=[old for old, _ in changes],
        added=[new for _, new in changes],
        gather=rollups,
    )
    return len(changes)
