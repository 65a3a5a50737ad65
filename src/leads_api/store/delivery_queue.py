"""The deliverer's side of the outbox: finding due messages, claiming them, recording what
each attempt did. Works across organizations, message by message: every message belongs
to one subscription, and through it to one organization, and is only ever sent there.

A claim moves a message's `next_attempt_at` past a lease, in a short transaction: on
PostgreSQL the rows are locked with FOR UPDATE SKIP LOCKED, so concurrent deliverers take
different messages; on SQLite the write transaction holds the database's write lock. A
deliverer that dies leaves its claims to expire, and the messages are due again.

Per-lead order: a message is claimable only when no earlier message of the same lead is
still in the outbox for that subscription (delivered messages are deleted), so one lead's
messages reach a subscription one after the other, in the order of the changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.lead import format_timestamp
from leads_api.store.schema import webhook_deliveries, webhook_events, webhook_outbox, webhooks
from leads_api.store.webhooks import Signing, signings

_PRUNE_EVENTS_AFTER_MS = 60_000  # a change is kept this long even without messages


@dataclass(frozen=True)
class Message:
    webhook_id: str
    position: int
    event_id: str  # the `webhook-id` header: stable across retries
    type: str
    attempt: int  # this attempt's number, from 1
    event_ms: int
    body: bytes


@dataclass(frozen=True)
class Attempt:
    """What one attempt at a message did, and what happens next."""

    message: Message
    outcome: str  # delivered | retrying | failed | gone
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: int
    next_attempt_at: int | None  # set when outcome is "retrying"


def event_id(position: int) -> str:
    return f"evt_{position}"


def message_body(event_type: str, occurred_at: int, lead_json: str) -> bytes:
    """`{"type", "timestamp", "data": <the lead object>}` with the stored lead JSON as is."""
    return orjson.dumps(
        {
            "type": event_type,
            "timestamp": format_timestamp(occurred_at),
            "data": orjson.Fragment(lead_json),
        }
    )


def due_webhooks(conn: Connection, *, now: int, limit: int = 1_000) -> list[str]:
    """Enabled subscriptions with at least one message due (one index probe each)."""
    o = webhook_outbox
    due = sa.exists().where(o.c.webhook_id == webhooks.c.id, o.c.next_attempt_at <= now)
    return list(
        conn.execute(
            sa.select(webhooks.c.id)
            .where(webhooks.c.enabled.is_(True), due)
            .order_by(webhooks.c.id)
            .limit(limit)
        ).scalars()
    )


def claim(
    conn: Connection, *, webhook_id: str, now: int, lease_ms: int, claimer: str, limit: int
) -> tuple[Signing | None, list[Message]]:
    """Claim up to `limit` due messages of an enabled subscription, each the earliest of its
    lead, in order; with the subscription's URL and secrets. Call in a write transaction."""
    target = conn.execute(
        sa.select(webhooks.c.org_id).where(
            webhooks.c.id == webhook_id, webhooks.c.enabled.is_(True)
        )
    ).first()
    if target is None:
        return None, []
    o, earlier = webhook_outbox, webhook_outbox.alias("earlier")
    blocked = sa.exists().where(
        earlier.c.webhook_id == o.c.webhook_id,
        earlier.c.lead_id == o.c.lead_id,
        earlier.c.position < o.c.position,
    )
    statement = (
        sa.select(o.c.position)
        .where(o.c.webhook_id == webhook_id, o.c.next_attempt_at <= now, ~blocked)
        .order_by(o.c.position)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update(of=o, skip_locked=True)
    positions = list(conn.execute(statement).scalars())
    if not positions:
        return None, []
    conn.execute(
        o.update()
        .where(o.c.webhook_id == webhook_id, o.c.position.in_(positions))
        .values(
            next_attempt_at=now + lease_ms, claimed_by=claimer, attempts=o.c.attempts + 1
        )
    )
    e = webhook_events
    rows = conn.execute(
        sa.select(o.c.position, o.c.type, o.c.attempts, e.c.occurred_at, e.c.lead)
        .join(e, e.c.seq == o.c.event_seq)
        .where(o.c.webhook_id == webhook_id, o.c.position.in_(positions))
        .order_by(o.c.position)
    )
    messages = [
        Message(webhook_id, pos, event_id(pos), kind, attempts, at, message_body(kind, at, lead))
        for pos, kind, attempts, at, lead in rows
    ]
    target_signing = signings(conn, org_id=target[0], webhook_ids=[webhook_id])[webhook_id]
    return target_signing, messages


def record(conn: Connection, *, attempts: Sequence[Attempt], claimer: str) -> None:
    """Settle attempts: delivered and finally failed messages leave the outbox, retried ones
    wait for their next attempt; every attempt joins the log. 410 Gone disables the
    subscription and drops its messages; a final failure marks it failing, a delivery
    clears that mark. A claim that expired meanwhile (another deliverer has the message)
    is left alone, but the attempt is logged all the same."""
    if not attempts:
        return
    o = webhook_outbox
    mine = (
        o.c.webhook_id == sa.bindparam("w_id"),
        o.c.position == sa.bindparam("pos"),
        o.c.claimed_by == claimer,
    )
    settled = [a for a in attempts if a.outcome != "retrying"]
    retried = [a for a in attempts if a.outcome == "retrying"]
    if settled:
        conn.execute(
            o.delete().where(*mine),
            [{"w_id": a.message.webhook_id, "pos": a.message.position} for a in settled],
        )
    if retried:
        conn.execute(
            o.update().where(*mine).values(next_attempt_at=sa.bindparam("next"), claimed_by=None),
            [
                {"w_id": a.message.webhook_id, "pos": a.message.position, "next": a.next_attempt_at}
                for a in retried
            ],
        )
    log_attempts(conn, attempts=attempts)
    for webhook_id in {a.message.webhook_id for a in attempts}:
        outcomes = {a.outcome for a in attempts if a.message.webhook_id == webhook_id}
        if "gone" in outcomes:
            conn.execute(
                webhooks.update().where(webhooks.c.id == webhook_id).values(enabled=False)
            )
            conn.execute(o.delete().where(o.c.webhook_id == webhook_id))
        elif "failed" in outcomes:
            conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id, webhooks.c.failing.is_(False))
                .values(failing=True)
            )
        elif "delivered" in outcomes:
            conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id, webhooks.c.failing.is_(True))
                .values(failing=False)
            )


def log_attempts(conn: Connection, *, attempts: Sequence[Attempt]) -> None:
    conn.execute(
        webhook_deliveries.insert(),
        [
            {
                "webhook_id": a.message.webhook_id,
                "event_id": a.message.event_id,
                "type": a.message.type,
                "attempt": a.message.attempt,
                "outcome": a.outcome,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
                "attempted_at": a.attempted_at,
                "next_retry_at": a.next_attempt_at,
            }
            for a in attempts
        ],
    )


def release(conn: Connection, *, messages: Sequence[Message], claimer: str, now: int) -> None:
    """Give back claimed messages that were not attempted (a deliverer stopping)."""
    if not messages:
        return
    o = webhook_outbox
    conn.execute(
        o.update()
        .where(
            o.c.webhook_id == sa.bindparam("w_id"),
            o.c.position == sa.bindparam("pos"),
            o.c.claimed_by == claimer,
        )
        .values(next_attempt_at=now, claimed_by=None, attempts=o.c.attempts - 1),
        [{"w_id": m.webhook_id, "pos": m.position} for m in messages],
    )


def prune(conn: Connection, *, now: int, webhook_ids: Sequence[str], keep: int) -> None:
    """Drop stored changes no message needs any more, and all but the newest `keep`
    attempts of each of `webhook_ids`."""
    e, o, d = webhook_events, webhook_outbox, webhook_deliveries
    unneeded = (
        sa.select(e.c.seq)
        .where(
            e.c.occurred_at < now - _PRUNE_EVENTS_AFTER_MS,
            ~sa.exists().where(o.c.event_seq == e.c.seq),
        )
        .limit(10_000)
    )
    conn.execute(e.delete().where(e.c.seq.in_(unneeded)))
    for webhook_id in webhook_ids:
        cutoff = (
            sa.select(d.c.id)
            .where(d.c.webhook_id == webhook_id)
            .order_by(d.c.id.desc())
            .offset(keep)
            .limit(1)
            .scalar_subquery()
        )
        conn.execute(d.delete().where(d.c.webhook_id == webhook_id, d.c.id <= cutoff))
