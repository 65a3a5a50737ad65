"""Rendering the stored lead objects that are missing (store/schema.py LEAD_JSON_COLUMN).
Every write renders its own leads (store/unit_of_work.py); these serve the others:

- `render_missing`: after a migration added the column or changed the lead object, every
  lead stored before, at the end of the upgrade;
- `completed`: at read time, a lead written after the upgrade by a process of an older
  version, one that knows nothing of the column and was not restarted yet (a rolling
  upgrade on PostgreSQL). Rare, so it costs one query when it happens and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.fields import LEAD_FIELDS
from leads_api.lead import lead_json
from leads_api.store.schema import LEAD_JSON_COLUMN, leads

RENDER_BATCH = 5_000  # leads read, rendered and written per round

_COLUMNS = tuple(leads.c[f.column] for f in LEAD_FIELDS)
_SET = (
    leads.update()
    .where(leads.c.org_id == sa.bindparam("_org"), leads.c.id == sa.bindparam("_id"))
    .values({LEAD_JSON_COLUMN: sa.bindparam("_json")})
)


def render_missing(conn: Connection, *, org_id: int) -> int:
    """Render every lead of `org_id` whose object is not stored, in id order, in batches;
    how many.

    A migration's work, in its transaction (store/migrate.py render_stored_objects): no
    writer runs meanwhile (the schema is not current until it commits)."""
    done = 0
    after = ""
    while True:
        rows = conn.execute(
            sa.select(*_COLUMNS)
            .where(
                leads.c.org_id == org_id,
                leads.c[LEAD_JSON_COLUMN].is_(None),
                leads.c.id > after,
            )
            .order_by(leads.c.id)
            .limit(RENDER_BATCH)
        ).all()
        if not rows:
            return done
        conn.execute(
            _SET,
            [{"_org": org_id, "_id": row.id, "_json": lead_json(row._mapping)} for row in rows],
        )
        done += len(rows)
        after = rows[-1].id


def completed(
    conn: Connection, *, org_id: int, rows: Sequence[Sequence[Any]]
) -> list[Sequence[Any]]:
    """Rows of whole leads as sql.lead_columns reads them (stored object, id, then anything
    else), each with its object: one that is missing is rendered from the lead's columns
    (and not stored: a read writes nothing). `rows` itself when none is missing."""
    missing = [row[1] for row in rows if row[0] is None]
    if not missing:
        return rows if isinstance(rows, list) else list(rows)
    rendered = {
        row.id: lead_json(row._mapping)
        for row in conn.execute(
            sa.select(*_COLUMNS).where(leads.c.org_id == org_id, leads.c.id.in_(missing))
        )
    }
    return [row if row[0] is not None else (rendered[row[1]], *row[1:]) for row in rows]
