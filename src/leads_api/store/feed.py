"""The change feed: an organization's leads in the order they last changed. Scoped to an
organization.

Every write stamps the leads it creates or changes with its change position (`change_seq`,
the organization's data version it took, see store/unit_of_work.py) and each with its
ordinal within the write (`change_ord`, 0, 1, ... in the order the rows were written), and
writers of one organization take positions one after the other, each only once the one
before has committed. So the positions a reader can see are always all positions up to some
point, each with all its leads: reading `(change_seq, change_ord) > since` in order, and
continuing after the last lead read, never skips a lead, whatever commits meanwhile, on
either database. A lead changed again moves to its new position, so it comes once, at its
latest version. The order is the order rows were written in, so a walk through a large
import reads the table about sequentially (in id order it read it at random).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.fields import LEAD_FIELDS, Field
from leads_api.query.model import ChangesQuery, FeedPosition, LegacyFeedPosition
from leads_api.store.lead_objects import completed
from leads_api.store.schema import CHANGE_ORD_COLUMN, CHANGE_SEQ_COLUMN, leads
from leads_api.store.sql import lead_columns, selected_values, where_clause, whole_leads

_SEQ = leads.c[CHANGE_SEQ_COLUMN]
_ORD = leads.c[CHANGE_ORD_COLUMN]


@dataclass(frozen=True)
class ChangesPage:
    fields: tuple[Field, ...]
    rows: list[Sequence[Any]]  # each the `fields`' columns, or (stored object, id) if `whole`
    next: FeedPosition  # after the last lead of the page (`since` when there is none)
    more: bool  # more changes follow

    @property
    def whole(self) -> bool:
        """Whether each row is the lead's stored object (sql.lead_columns)."""
        return whole_leads(self.fields)


def changed_leads(conn: Connection, *, org_id: int, query: ChangesQuery) -> ChangesPage:
    """The leads matching `query.filters` whose position is after `query.since`, oldest
    change first, at most `query.filters.limit` of them."""
    filters = query.filters
    since = query.since
    if isinstance(since, LegacyFeedPosition):
        since = translated(conn, org_id=org_id, since=since)
    fields = filters.fields or LEAD_FIELDS
    statement = (
        sa.select(*lead_columns(fields), _SEQ.label("_seq"), _ORD.label("_ord"))
        .where(
            where_clause(filters, org_id=org_id, dialect=conn.dialect.name),
            sa.tuple_(_SEQ, _ORD) > sa.tuple_(sa.literal(since.seq), sa.literal(since.ordinal)),
        )
        .order_by(_SEQ, _ORD)
        .limit(filters.limit + 1)
    )
    rows: list[Sequence[Any]] = list(conn.execute(statement).all())
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    if whole_leads(fields):
        rows = completed(conn, org_id=org_id, rows=rows)
    last = FeedPosition(int(rows[-1][-2]), int(rows[-1][-1])) if rows else since
    kept = selected_values(fields)
    return ChangesPage(fields, [kept(row) for row in rows], last, more)


def translated(conn: Connection, *, org_id: int, since: LegacyFeedPosition) -> FeedPosition:
    """The position a token made before ordinals names: after lead `since.lead_id` in
    position `since.seq`, in (seq, id) order.

    Such a position was stamped before revision 0009, which ranked each position's leads by
    id, and a position never gains leads after it was seen (it only loses those written
    again), so its ordinals still follow id order: the place is that lead's ordinal if it is
    still there, else the largest ordinal of the position's leads below its id."""
    at = (leads.c.org_id == org_id, leads.c[CHANGE_SEQ_COLUMN] == since.seq)
    own = sa.select(_ORD).where(*at, leads.c.id == since.lead_id).scalar_subquery()
    below = sa.select(sa.func.max(_ORD)).where(*at, leads.c.id < since.lead_id).scalar_subquery()
    ordinal = conn.execute(sa.select(sa.func.coalesce(own, below, -1))).scalar_one()
    return FeedPosition(since.seq, int(ordinal))
