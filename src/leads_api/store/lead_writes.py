"""Creating and changing leads through the API: idempotent creates under the monthly limit,
and updates found by id, email or phone. Scoped to an organization.

Both run inside one `Store.write()` transaction, and the database settles every race:
- two creates with one Idempotency-Key: the key's primary key lets exactly one insert it;
  the other waits for that transaction and then reads its stored answer;
- the monthly limit: on PostgreSQL the organization's row is locked (`FOR UPDATE`) for the
  count-then-insert; SQLite's `BEGIN IMMEDIATE` already lets one writer in at a time;
- concurrent updates: the matched leads are locked (`FOR UPDATE` on PostgreSQL) and changed
  by one UPDATE whose new values are computed from the row itself (`qualifiedAt` only if
  null, `updatedAt` never backwards), so no update is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from leads_api.errors import Conflict, Forbidden, NotFound
from leads_api.lead import now_ms
from leads_api.lead_input import LeadChange
from leads_api.store.rollups import ROLLUP_COLUMNS
from leads_api.store.schema import idempotency_keys, leads, organizations
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import lead_writes

DAY_MS = 86_400_000
IDEMPOTENCY_WINDOW_MS = DAY_MS  # a key is remembered for 24 hours


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    body_hash: str


@dataclass(frozen=True)
class Answer:
    """What a create answers: its status and data, and whether it is a stored first answer."""

    status: int
    data: Any
    replayed: bool = False


def create_appends_only(known: Organization, idempotency: IdempotencyKey | None) -> bool:
    """Whether a create by a caller of organization `known` runs no SQL but the insert of
    its lead: no Idempotency-Key to claim, no monthly limit to count (create_lead). Such
    a create may be written as append-only (Store.write)."""
    return idempotency is None and known.leads_limit is None


def body_hash(body: Any) -> str:
    """SHA-256 of the body's canonical JSON: key order and whitespace do not matter."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def create_lead(
    conn: Connection,
    *,
    org_id: int,
    columns: Mapping[str, Any],
    answer: Answer,
    idempotency: IdempotencyKey | None = None,
    known: Organization | None = None,
) -> Answer:
    """Insert a new API lead (`columns` by column name, with its id) unless `idempotency`
    names a key already used within 24 hours: then its first answer, and nothing is created.
    `answer` is what this create returns, and what a repeat of its key will return.
    `known` is the organization as read with the caller's key, if it was: its settings then
    need no read of their own while the write holds the organization (see _org_settings)."""
    leads_limit, attribution_days = _org_settings(conn, org_id=org_id, known=known)
    now = now_ms()
    if idempotency is not None:
        stored = _claim_key(conn, org_id=org_id, idempotency=idempotency, answer=answer, now=now)
        if stored is not None:
            return stored
    if leads_limit is not None:
        used = _created_between(conn, org_id=org_id, bounds=month_bounds(now))
        if used >= leads_limit:
            raise Forbidden(
                f"The monthly limit of {leads_limit} leads is reached for this organization",
                leadsLimit=leads_limit,
                leadsUsed=used,
            )
    row = {
        **columns,
        "status": "open",
        "source": "api",
        "created_at": now,
        "updated_at": now,
        "expires_at": now + attribution_days * DAY_MS,
    }
    with lead_writes(conn, org_id=org_id) as writes:
        writes.insert([row])
    return answer


def update_leads(
    conn: Connection, *, org_id: int, change: LeadChange, allow_bulk: bool
) -> list[str]:
    """Apply `change` to the leads it matches; their ids, oldest first.

    NotFound when nothing matches; Conflict, with nothing changed, when several match and
    `allow_bulk` is off."""
    with lead_writes(conn, org_id=org_id) as writes:
        writes.lock()  # the organization's row before the leads' rows, as every writer
        matched = [
            dict(row)
            for row in conn.execute(
                sa.select(leads.c.id, *(leads.c[c] for c in ROLLUP_COLUMNS))
                .where(leads.c.org_id == org_id, _match(change))
                .order_by(leads.c.created_at, leads.c.id)
                .limit(None if allow_bulk else 2)
                .with_for_update()
            ).mappings()
        ]
        if not matched:
            raise NotFound(
                f"No lead with {change.match_field} {change.match_value!r}",
                field=change.match_field,
            )
        if len(matched) > 1 and not allow_bulk:
            raise Conflict(
                f"More than one lead has {change.match_field} {change.match_value!r}, and "
                "bulk updates are off for this organization: nothing was changed (update by id)",
                field=change.match_field,
            )
        writes.update(matched, _new_values(change, now_ms()))
    return [row["id"] for row in matched]


def month_bounds(ms: int) -> tuple[int, int]:
    """The UTC calendar month holding instant `ms`, as half-open epoch ms [start, end)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    after = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(after.timestamp() * 1000)


# --- create ---------------------------------------------------------------------------------


def _org_settings(
    conn: Connection, *, org_id: int, known: Organization | None = None
) -> tuple[int | None, int]:
    """(leadsLimit, attributionDays); a limited organization's row stays locked until commit.

    An organization without a limit, `known` from the key's check a moment before, needs no
    read here: a create's statements run while it holds the organization's turn to write,
    and each one there was measured to cost several of its own (the writers behind it
    wait). A limit set in that moment applies from the next create on."""
    known = known if known is not None and known.id == org_id else None
    if known is not None and known.leads_limit is None:
        return None, known.attribution_days
    statement = sa.select(organizations.c.leads_limit, organizations.c.attribution_days).where(
        organizations.c.id == org_id
    )
    hold = conn.dialect.name == "postgresql"  # SQLite's BEGIN IMMEDIATE already holds it
    if known is None:  # unknown: read it first, and hold it only when it has a limit
        leads_limit, days = conn.execute(statement).one()
        if leads_limit is None or not hold:
            return leads_limit, days
    if hold:
        statement = statement.with_for_update()
    leads_limit, days = conn.execute(statement).one()
    return leads_limit, days


def _created_between(conn: Connection, *, org_id: int, bounds: tuple[int, int]) -> int:
    start, end = bounds
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(leads)
            .where(leads.c.org_id == org_id, leads.c.created_at >= start, leads.c.created_at < end)
        ).scalar_one()
    )


def _claim_key(
    conn: Connection, *, org_id: int, idempotency: IdempotencyKey, answer: Answer, now: int
) -> Answer | None:
    """Record `idempotency` with this create's answer (None: go ahead and create), or return
    the answer stored by the first use of the key within 24 hours."""
    table = idempotency_keys
    conn.execute(
        table.delete().where(
            table.c.org_id == org_id, table.c.created_at < now - IDEMPOTENCY_WINDOW_MS
        )
    )
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    inserted = conn.execute(
        insert.values(
            org_id=org_id,
            key=idempotency.key,
            body_hash=idempotency.body_hash,
            status=answer.status,
            response=orjson.dumps(answer.data).decode(),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.org_id, table.c.key])
        .returning(table.c.key)  # a row only when this insert won (rowcount is not portable)
    ).first()
    if inserted is not None:
        return None
    stored = conn.execute(
        sa.select(table.c.body_hash, table.c.status, table.c.response).where(
            table.c.org_id == org_id, table.c.key == idempotency.key
        )
    ).one()
    if stored.body_hash != idempotency.body_hash:
        raise Conflict(
            "This Idempotency-Key was already used with a different request body",
            parameter="Idempotency-Key",
        )
    return Answer(stored.status, orjson.loads(stored.response), replayed=True)


# --- update ---------------------------------------------------------------------------------


def _match(change: LeadChange) -> ColumnElement[bool]:
    if change.match_field == "email":
        return leads.c.email_fold == change.match_value.casefold()
    return leads.c[change.match_field] == change.match_value


def _new_values(change: LeadChange, now: int) -> dict[str, Any]:
    values: dict[str, Any] = dict(change.columns)
    # max(stored, now): a clock step back never moves a lead's updatedAt backwards.
    values["updated_at"] = sa.case((leads.c.updated_at > now, leads.c.updated_at), else_=now)
    status = change.status
    if status is not None:
        values["status"] = status
        if status == "qualified" or (status == "won" and change.also_qualified):
            values["qualified_at"] = sa.func.coalesce(leads.c.qualified_at, now)
        if status != "lost":
            values["loss_reason"] = None  # a reason belongs to a lost lead only
        elif change.loss_reason_given:
            values["loss_reason"] = change.loss_reason
    elif change.loss_reason_given:
        values["loss_reason"] = sa.case(
            (leads.c.status == "lost", sa.literal(change.loss_reason, sa.Text)),
            else_=leads.c.loss_reason,
        )
    return values
