"""Organizations and their API keys. Keys are stored as SHA-256 hashes, never in clear."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.errors import UsageError
from leads_api.lead import base62, now_ms
from leads_api.store.schema import api_keys, organizations, webhooks

KEY_PREFIX = "lak_"
KEY_SECRET_LENGTH = 40  # base62 characters: ~238 random bits


@dataclass(frozen=True)
class Organization:
    id: int
    name: str
    allow_bulk_updates: bool
    leads_limit: int | None
    attribution_days: int


@dataclass(frozen=True)
class Caller:
    """Who is asking: the key's organization, and whether the key may write."""

    key_id: str
    org: Organization
    read_only: bool
    data_version: int  # of the organization's leads, as this transaction saw it


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str | None
    prefix: str
    read_only: bool
    created_at: int
    revoked_at: int | None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


_ORG_COLUMNS = (
    organizations.c.id,
    organizations.c.name,
    organizations.c.allow_bulk_updates,
    organizations.c.leads_limit,
    organizations.c.attribution_days,
)


def _org(row: Any) -> Organization:
    return Organization(row[0], row[1], bool(row[2]), row[3], row[4])


def create_organization(
    conn: Connection,
    name: str,
    *,
    allow_bulk_updates: bool = False,
    leads_limit: int | None = None,
    attribution_days: int = 90,
) -> Organization:
    if not name.strip():
        raise UsageError("An organization needs a name")
    if find_organization(conn, name) is not None:
        raise UsageError(f"An organization named {name!r} already exists")
    if leads_limit is not None and leads_limit < 0:
        raise UsageError("--leads-limit must be 0 or more")
    if attribution_days < 1:
        raise UsageError("--attribution-days must be at least 1")
    org_id = conn.execute(
        organizations.insert()
        .values(
            name=name,
            allow_bulk_updates=allow_bulk_updates,
            leads_limit=leads_limit,
            attribution_days=attribution_days,
            created_at=now_ms(),
        )
        .returning(organizations.c.id)
    ).scalar_one()
    return Organization(org_id, name, allow_bulk_updates, leads_limit, attribution_days)


def update_organization(
    conn: Connection,
    name: str,
    *,
    allow_bulk_updates: bool | None = None,
    leads_limit: int | bool | None = False,  # False: unchanged; None: unlimited
    attribution_days: int | None = None,
) -> Organization:
    org = require_organization(conn, name)
    values: dict[str, object] = {}
    if allow_bulk_updates is not None:
        values["allow_bulk_updates"] = allow_bulk_updates
    if leads_limit is not False:
        values["leads_limit"] = leads_limit
    if attribution_days is not None:
        if attribution_days < 1:
            raise UsageError("--attribution-days must be at least 1")
        values["attribution_days"] = attribution_days
    if values:
        conn.execute(organizations.update().where(organizations.c.id == org.id).values(values))
    return require_organization(conn, name)


def find_organization(conn: Connection, name: str) -> Organization | None:
    row = conn.execute(sa.select(*_ORG_COLUMNS).where(organizations.c.name == name)).first()
    return None if row is None else _org(row)


def require_organization(conn: Connection, name: str) -> Organization:
    org = find_organization(conn, name)
    if org is None:
        raise UsageError(f"No organization named {name!r} (create it with `leads-api orgs create`)")
    return org


def list_organizations(conn: Connection) -> list[Organization]:
    return [_org(r) for r in conn.execute(sa.select(*_ORG_COLUMNS).order_by(organizations.c.id))]


def create_key(
    conn: Connection, org: Organization, *, name: str | None = None, read_only: bool = False
) -> tuple[str, str]:
    """A new key for `org`: returns (key id, secret). The secret is not kept."""
    secret = KEY_PREFIX + base62(KEY_SECRET_LENGTH)
    key_id = "key_" + base62(12)
    conn.execute(
        api_keys.insert().values(
            id=key_id,
            org_id=org.id,
            name=name,
            key_hash=hash_key(secret),
            prefix=secret[: len(KEY_PREFIX) + 4],
            read_only=read_only,
            created_at=now_ms(),
        )
    )
    return key_id, secret


def list_keys(conn: Connection, org: Organization) -> list[KeyInfo]:
    rows = conn.execute(
        sa.select(
            api_keys.c.id,
            api_keys.c.name,
            api_keys.c.prefix,
            api_keys.c.read_only,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        )
        .where(api_keys.c.org_id == org.id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return [KeyInfo(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]


def revoke_key(conn: Connection, key_id: str) -> None:
    updated = conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now_ms())
    ).rowcount
    if updated == 0:
        exists = conn.execute(sa.select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
        raise UsageError(f"Key {key_id} is already revoked" if exists else f"No key {key_id}")


# Every request runs these two: built once, so a request pays neither building them nor
# their cache keys (measured: a fifth of a fresh list answer's Python time on PostgreSQL).
_CALLER = (
    sa.select(api_keys.c.id, api_keys.c.read_only, *_ORG_COLUMNS, organizations.c.data_version)
    .join(organizations, organizations.c.id == api_keys.c.org_id)
    .where(api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)
_DATA_VERSION = sa.select(organizations.c.data_version).where(
    organizations.c.id == sa.bindparam("org_id")
)


def authenticate(conn: Connection, secret: str) -> Caller | None:
    """The caller behind a key secret, or None for an unknown or revoked key."""
    row = conn.execute(_CALLER, {"key_hash": hash_key(secret)}).first()
    if row is None:
        return None
    org = Organization(row[2], row[3], bool(row[4]), row[5], row[6])
    return Caller(row[0], org, bool(row[1]), row[7])


# --- the organization's data version ---------------------------------------------------------
# One counter per organization, moved by every write of its leads, in the write's own
# transaction (store/unit_of_work.py). It is both the answer cache's version (an answer computed
# at version V is the answer while the version is V) and the change feed's sequence: each
# lead written carries the version its write took (leads.change_seq).


def take_change_position(conn: Connection, *, org_id: int) -> int:
    """Move the organization's data version and return the new value, locking the
    organization's row until this transaction ends.

    The lock is what makes positions safe to follow: a writer takes its position only after
    the previous writer of the organization has committed, so the positions committed are
    always a prefix of the positions taken, and a reader that has seen position P can never
    later find a committed lead below P."""
    return int(
        conn.execute(_next_version(org_id).returning(organizations.c.data_version)).scalar_one()
    )


def _next_version(org_id: int) -> sa.Update:
    """The organization's data version moved on (its row locked until commit)."""
    return (
        organizations.update()
        .where(organizations.c.id == org_id)
        .values(data_version=organizations.c.data_version + 1)
    )


# A group of writers of one organization on PostgreSQL (store/write_groups.py) takes one
# position for all its members when it opens, instead of one round trip per writer while
# the others wait their turn: the group commits all its members' rows at once, so the
# position is still seen with all its leads or not at all. Its members' rows share it and
# take their ordinals from one counter, in the order they are written; a member that fails
# leaves a gap among the ordinals, never among the positions.
HELD_POSITION_OPTION = "leads_held_position"


@dataclass
class HeldPosition:
    """An organization's change position held by a group's transaction, with what the
    group's writes need to know of the organization at that moment."""

    org_id: int
    position: int
    # The `events` of its enabled webhook subscriptions (store/outbox.py). A change of
    # subscriptions holds the organization's row (`hold_organization`), so none can commit
    # while a group holding its position is open.
    subscriptions: tuple[str, ...]
    ordinals: Iterator[int] = field(default_factory=itertools.count)


def hold_position(conn: Connection, *, org_id: int) -> HeldPosition:
    """`take_change_position` for a group of writers, with the organization's enabled
    subscriptions read in the same statement; the organization's row stays locked."""
    subscribed = (
        sa.select(sa.func.array_agg(webhooks.c.events))
        .where(webhooks.c.org_id == organizations.c.id, webhooks.c.enabled.is_(True))
        .scalar_subquery()
    )
    row = conn.execute(
        _next_version(org_id).returning(organizations.c.data_version, subscribed)
    ).one()
    return HeldPosition(org_id, int(row[0]), tuple(row[1] or ()))


def held_position(conn: Connection, *, org_id: int) -> HeldPosition | None:
    """The position `conn`'s transaction holds for `org_id`'s writes, if it holds one."""
    held: HeldPosition | None = conn.get_execution_options().get(HELD_POSITION_OPTION)
    return held if held is not None and held.org_id == org_id else None


def hold_organization(conn: Connection, *, org_id: int) -> None:
    """Lock the organization's row until this transaction ends: waits for a group holding
    its position to commit. Nothing to do on SQLite, whose writers already take turns."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(
        sa.select(organizations.c.id).where(organizations.c.id == org_id).with_for_update()
    )


def data_version(conn: Connection, *, org_id: int) -> int:
    """The organization's data version as this transaction (or statement) sees it."""
    return int(conn.execute(_DATA_VERSION, {"org_id": org_id}).scalar_one())


def version_seen(org_id: int | sa.BindParameter[int]) -> sa.Label[Any]:
    """The organization's data version as a column of another statement: what that
    statement's snapshot holds (on PostgreSQL each statement may see a newer one)."""
    return (
        sa.select(organizations.c.data_version)
        .where(organizations.c.id == org_id)
        .scalar_subquery()
        .label("_data_version")
    )
