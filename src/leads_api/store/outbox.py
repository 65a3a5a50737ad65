"""The transactional outbox: each change of leads writes its webhook messages in its own
transaction, so an acknowledged write always has its events and a rolled-back one none.

`record_events` runs as a write listener of the unit of work (registered below, when the
store package is imported), once per unit of work before its commit, or once per writer
group and organization for all the group's writers (store/write_groups.py).
For an organization without enabled subscriptions it costs one indexed query, or none in a
PostgreSQL writer group (which read them with its change position, store/tenants.py).
Otherwise each changed lead's object is stored once (`webhook_events`, as GET returns it
after the change: the unit of work hands it over with the event) and fanned out to the
subscriptions' messages (`webhook_outbox`) with one INSERT ... SELECT per event type,
however many leads changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from leads_api.lead import now_ms
from leads_api.store.driver import psycopg_connection
from leads_api.store.schema import (
    webhook_events,
    webhook_outbox,
    webhooks,
)
from leads_api.store.tenants import held_position, hold_organization
from leads_api.store.unit_of_work import COPY_FROM_ROWS, LeadEvent, add_write_listener
from leads_api.webhook_input import EVENT_TYPES, POSITION_STRIDE, EventType


def record_events(conn: Connection, *, org_id: int, events: Sequence[LeadEvent]) -> int:
    """Write the messages `events` cause for `org_id`'s enabled subscriptions, inside the
    caller's transaction; returns how many changes were stored."""
    if not events:
        return 0
    held = held_position(conn, org_id=org_id)
    if held is not None:  # read with the group's position, and holding its lock
        subscribed: Sequence[str] = held.subscriptions
    else:
        subscribed = conn.execute(
            sa.select(webhooks.c.events).where(
                webhooks.c.org_id == org_id, webhooks.c.enabled.is_(True)
            )
        ).scalars().all()
    if not subscribed:
        return 0
    types = [t for t in EVENT_TYPES if any(f",{t.name}," in s for s in subscribed)]
    wanted = [e for e in events if any(_reports(t, e) for t in types)]
    if not wanted:
        return 0
    if held is None:
        # The fan-out below selects this write's changes by their seq, so no other write
        # of the organization may add changes meanwhile. The unit of work already
        # holds this lock (its change position); taking it again costs nothing and keeps
        # the outbox right whoever calls it.
        hold_organization(conn, org_id=org_id)
    now = now_ms()
    rows = [
        (org_id, e.lead_id, e.created, not e.created and e.old_status != e.new_status, e.lead, now)
        for e in wanted
    ]
    # This write's changes are the organization's rows past the newest seq so far: seqs
    # only grow, and no other write of the organization runs meanwhile (see above).
    after = conn.execute(sa.select(sa.func.max(webhook_events.c.seq))).scalar() or 0
    _insert_changes(conn, rows)
    for event_type in types:
        _fan_out(conn, org_id=org_id, event_type=event_type, after=after)
    return len(rows)


_CHANGE_COLUMNS = ("org_id", "lead_id", "created", "status_changed", "lead", "occurred_at")
_COPY_CHANGES = sql.SQL("COPY {} ({}) FROM STDIN").format(
    sql.Identifier(webhook_events.name), sql.SQL(", ").join(map(sql.Identifier, _CHANGE_COLUMNS))
)


def _insert_changes(conn: Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """The changes, by COPY on PostgreSQL from COPY_FROM_ROWS on (an import's thousands of
    lead objects: INSERT ... RETURNING was measured at over ten times the COPY's time)."""
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        with (
            psycopg_connection(conn, what="COPY webhook_events") as raw,
            raw.cursor() as cursor,
            cursor.copy(_COPY_CHANGES) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    params = [dict(zip(_CHANGE_COLUMNS, row, strict=True)) for row in rows]
    conn.execute(webhook_events.insert(), params)


def _reports(event_type: EventType, change: LeadEvent) -> bool:
    if event_type.when_column == "created":
        return change.created is event_type.when_value
    return (not change.created and change.old_status != change.new_status) is event_type.when_value


def _fan_out(conn: Connection, *, org_id: int, event_type: EventType, after: int) -> None:
    """One message per (subscription of `event_type`, change after `after` it reports)."""
    e, w = webhook_events, webhooks
    source = (
        sa.select(
            w.c.id,
            e.c.seq * POSITION_STRIDE + event_type.rank,
            e.c.seq,
            sa.literal(event_type.name, sa.Text),
            e.c.lead_id,
            sa.literal(0, sa.Integer),
            e.c.occurred_at,
            e.c.occurred_at,
        )
        .select_from(e.join(w, w.c.org_id == e.c.org_id))
        .where(
            e.c.org_id == org_id,
            e.c.seq > after,
            e.c[event_type.when_column].is_(event_type.when_value),
            w.c.enabled.is_(True),
            w.c.events.like(f"%,{event_type.name},%"),
        )
    )
    conn.execute(
        webhook_outbox.insert().from_select(
            [
                "webhook_id",
                "position",
                "event_seq",
                "type",
                "lead_id",
                "attempts",
                "next_attempt_at",
                "created_at",
            ],
            source,
        )
    )


def _on_lead_writes(conn: Connection, org_id: int, events: Sequence[LeadEvent]) -> None:
    record_events(conn, org_id=org_id, events=events)


add_write_listener(_on_lead_writes)
