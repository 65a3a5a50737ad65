"""Rendering the stored lead objects that are missing: after a migration added the column
or changed the lead object (store/schema.py LEAD_JSON_COLUMN). Every write renders its own
leads (store/unit_of_work.py); this only serves leads stored before.
"""

from __future__ import annotations

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
