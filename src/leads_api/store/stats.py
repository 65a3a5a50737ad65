"""Counting an organization's leads created in a period, by status and source, in one query."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.store.schema import leads


@dataclass(frozen=True)
class GroupCount:
    status: str
    source: str
    leads: int
    won_value_cents: int  # the sum of the values of the group's won leads (0 if none)


def count_created(
    conn: Connection, *, org_id: int, start_ms: int, end_ms: int
) -> list[GroupCount]:
    """One row per (status, source) among leads created in [start_ms, end_ms)."""
    won_value = sa.func.sum(
        sa.case((leads.c.status == "won", leads.c.value_cents), else_=None)
    )
    statement = (
        sa.select(leads.c.status, leads.c.source, sa.func.count(), won_value)
        .where(
            leads.c.org_id == org_id,
            leads.c.created_at >= start_ms,
            leads.c.created_at < end_ms,
        )
        .group_by(leads.c.status, leads.c.source)
    )
    return [
        GroupCount(status, source, int(count), int(value or 0))
        for status, source, count, value in conn.execute(statement)
    ]
