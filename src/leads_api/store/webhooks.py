"""Webhook subscriptions and their delivery log. Scoped to an organization.

A subscription's secret is returned only by create and rotate; reads never show it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.errors import Forbidden, NotFound
from leads_api.lead import base62, now_ms
from leads_api.signatures import new_secret
from leads_api.store.schema import webhook_deliveries, webhooks
from leads_api.store.tenants import hold_organization

WEBHOOK_ID_PREFIX = "wh_"
MAX_WEBHOOKS_PER_ORG = 100
ROTATION_OVERLAP_MS = 24 * 3600 * 1000  # the old secret keeps signing this long


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    enabled: bool
    failing: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Signing:
    """What a delivery to one subscription needs: where, and the secrets that sign now."""

    webhook_id: str
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Delivery:
    event_id: str
    type: str
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: int
    next_retry_at: int | None


def events_text(events: Sequence[str]) -> str:
    """The stored form of a list of event types: between commas, so LIKE '%,type,%' picks."""
    return "," + ",".join(events) + ","


def _events(text: str) -> tuple[str, ...]:
    return tuple(e for e in text.split(",") if e)


_COLUMNS = (
    webhooks.c.id,
    webhooks.c.url,
    webhooks.c.events,
    webhooks.c.description,
    webhooks.c.enabled,
    webhooks.c.failing,
    webhooks.c.created_at,
    webhooks.c.updated_at,
)


def _webhook(row: Any) -> Webhook:
    return Webhook(
        row[0], row[1], _events(row[2]), row[3], bool(row[4]), bool(row[5]), row[6], row[7]
    )


def create_webhook(
    conn: Connection,
    *,
    org_id: int,
    url: str,
    events: Sequence[str],
    description: str | None,
) -> tuple[Webhook, str]:
    """A new enabled subscription and its secret (shown once)."""
    # Before anything else: the writes acknowledged after this one must record its events
    # (see tenants.HeldPosition), and two creates must not both pass the count below.
    hold_organization(conn, org_id=org_id)
    count = conn.execute(
        sa.select(sa.func.count()).select_from(webhooks).where(webhooks.c.org_id == org_id)
    ).scalar_one()
    if count >= MAX_WEBHOOKS_PER_ORG:
        raise Forbidden(
            f"An organization may have at most {MAX_WEBHOOKS_PER_ORG} webhooks",
            maxWebhooks=MAX_WEBHOOKS_PER_ORG,
        )
    now = now_ms()
    secret = new_secret()
    webhook = Webhook(
        WEBHOOK_ID_PREFIX + base62(20), url, tuple(events), description, True, False, now, now
    )
    conn.execute(
        webhooks.insert().values(
            id=webhook.id,
            org_id=org_id,
            url=url,
            events=events_text(events),
            description=description,
            secret=secret,
            enabled=True,
            failing=False,
            created_at=now,
            updated_at=now,
        )
    )
    return webhook, secret


def list_webhooks(conn: Connection, *, org_id: int) -> list[Webhook]:
    rows = conn.execute(
        sa.select(*_COLUMNS)
        .where(webhooks.c.org_id == org_id)
        .order_by(webhooks.c.created_at, webhooks.c.id)
    )
    return [_webhook(r) for r in rows]


def get_webhook(conn: Connection, *, org_id: int, webhook_id: str) -> Webhook:
    row = conn.execute(
        sa.select(*_COLUMNS).where(webhooks.c.org_id == org_id, webhooks.c.id == webhook_id)
    ).first()
    if row is None:
        raise _not_found(webhook_id)
    return _webhook(row)


def update_webhook(
    conn: Connection, *, org_id: int, webhook_id: str, changes: Mapping[str, Any]
) -> Webhook:
    """Apply checked changes (url, events, description, enabled). Enabling a subscription
    clears its `failing` mark."""
    values: dict[str, Any] = {}
    for name in ("url", "description", "enabled"):
        if name in changes:
            values[name] = changes[name]
    if "events" in changes:
        values["events"] = events_text(changes["events"])
    if changes.get("enabled") is True:
        values["failing"] = False
    if values:
        if "events" in values or "enabled" in values:
            hold_organization(conn, org_id=org_id)  # as in create_webhook
        values["updated_at"] = now_ms()
        updated = conn.execute(
            webhooks.update()
            .where(webhooks.c.org_id == org_id, webhooks.c.id == webhook_id)
            .values(values)
        ).rowcount
        if updated == 0:
            raise _not_found(webhook_id)
    return get_webhook(conn, org_id=org_id, webhook_id=webhook_id)


def delete_webhook(conn: Connection, *, org_id: int, webhook_id: str) -> None:
    """Remove a subscription; its undelivered messages and its log go with it (cascade)."""
    deleted = conn.execute(
        webhooks.delete().where(webhooks.c.org_id == org_id, webhooks.c.id == webhook_id)
    ).rowcount
    if deleted == 0:
        raise _not_found(webhook_id)


def rotate_secret(conn: Connection, *, org_id: int, webhook_id: str) -> tuple[Webhook, str]:
    """A new secret; the current one keeps signing beside it for 24 hours."""
    row = conn.execute(
        sa.select(webhooks.c.secret)
        .where(webhooks.c.org_id == org_id, webhooks.c.id == webhook_id)
        .with_for_update()
    ).first()
    if row is None:
        raise _not_found(webhook_id)
    now = now_ms()
    secret = new_secret()
    conn.execute(
        webhooks.update()
        .where(webhooks.c.org_id == org_id, webhooks.c.id == webhook_id)
        .values(
            secret=secret,
            previous_secret=row[0],
            previous_secret_until=now + ROTATION_OVERLAP_MS,
            updated_at=now,
        )
    )
    return get_webhook(conn, org_id=org_id, webhook_id=webhook_id), secret


def signing(conn: Connection, *, org_id: int, webhook_id: str) -> Signing:
    return signings(conn, org_id=org_id, webhook_ids=[webhook_id])[webhook_id]


def signings(
    conn: Connection, *, org_id: int | None, webhook_ids: Sequence[str]
) -> dict[str, Signing]:
    """The URL and current secrets of each subscription (`org_id=None`: of any organization,
    for the deliverer). NotFound when one is missing."""
    statement = sa.select(
        webhooks.c.id,
        webhooks.c.url,
        webhooks.c.secret,
        webhooks.c.previous_secret,
        webhooks.c.previous_secret_until,
    ).where(webhooks.c.id.in_(list(webhook_ids)))
    if org_id is not None:
        statement = statement.where(webhooks.c.org_id == org_id)
    now = now_ms()
    found = {}
    for wid, url, secret, previous, until in conn.execute(statement):
        current = (secret, previous) if previous and until and until > now else (secret,)
        found[wid] = Signing(wid, url, current)
    for wid in webhook_ids:
        if wid not in found:
            raise _not_found(wid)
    return found


def list_deliveries(
    conn: Connection, *, org_id: int, webhook_id: str, limit: int
) -> list[Delivery]:
    """The subscription's latest delivery attempts, newest first."""
    get_webhook(conn, org_id=org_id, webhook_id=webhook_id)
    d = webhook_deliveries
    rows = conn.execute(
        sa.select(
            d.c.event_id,
            d.c.type,
            d.c.attempt,
            d.c.outcome,
            d.c.status_code,
            d.c.error,
            d.c.duration_ms,
            d.c.attempted_at,
            d.c.next_retry_at,
        )
        .where(d.c.webhook_id == webhook_id)
        .order_by(d.c.id.desc())
        .limit(limit)
    )
    return [Delivery(*r) for r in rows]


def _not_found(webhook_id: str) -> NotFound:
    return NotFound(f"No webhook {webhook_id!r}", id=webhook_id)
