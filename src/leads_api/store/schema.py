"""The tables, as SQLAlchemy Core metadata; the `leads` columns come from the field registry.

This is what queries are built against. The DDL that creates it lives in the Alembic
migrations (`migrations/versions`), which both databases share; a test checks the two agree.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from leads_api.fields import (
    CATEGORY_NAMES,
    CLICK_ID_NAMES,
    FIELDS_BY_NAME,
    FOLDED_COLUMNS,
    LEAD_FIELDS,
    PHONE_DIGITS_COLUMN,
    SEARCH_TEXT_COLUMN,
    Field,
    Kind,
)

# Text that is ordered or compared must order by code point on both databases: SQLite's
# BINARY collation does that for UTF-8, PostgreSQL needs the "C" collation.
OrderedText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

metadata = sa.MetaData()

# Each lead's change position: the organization's data version taken by the write that last
# created or changed it, and the lead's ordinal among the rows that write wrote, in the order
# it wrote them (store/unit_of_work.py). The change feed follows (change_seq, change_ord):
# the order rows were written in, so a feed walk reads the table about in its own order.
CHANGE_SEQ_COLUMN = "change_seq"
CHANGE_ORD_COLUMN = "change_ord"
# Each lead's object as the API renders it (every field, as JSON text), written by the unit of
# work with the row: a page of whole leads is these texts joined, not rows turned into objects
# and encoded again (a 1,000-lead feed page was measured at a quarter of the time). Empty
# only between a migration that adds the column or a field and the rendering that follows it
# at the end of every upgrade (migrations/env.py, store/lead_objects.py).
LEAD_JSON_COLUMN = "lead_json"
# Which click IDs a lead has, bit i for CLICK_ID_NAMES[i] (the bits of the click rollup),
# computed by the database itself from the columns on every write: no writer can leave it
# wrong, a process of an older version included. It sits in the (org, created_at) index, so
# a page in the default order with click-ID presence filters checks them on index entries
# (bench/RESULTS.md, Q5: the rows a rare pair needs are a whole index walk away).
CLICK_MASK_COLUMN = "click_mask"
CLICK_MASK_SQL = " + ".join(
    f"(CASE WHEN {FIELDS_BY_NAME[name].column} IS NULL THEN 0 ELSE {1 << bit} END)"
    for bit, name in enumerate(CLICK_ID_NAMES)
)

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("allow_bulk_updates", sa.Boolean, nullable=False, default=False),
    sa.Column("leads_limit", sa.Integer, nullable=True),
    sa.Column("attribution_days", sa.Integer, nullable=False, default=90),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Moved by every write of the organization's leads, in the write's own transaction
    # (store/tenants.py): an answer computed at one version is the answer until it moves,
    # and each written lead is stamped with it (leads.change_seq).
    sa.Column("data_version", sa.BigInteger, nullable=False, server_default="0"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("read_only", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Index("ix_api_keys_org", "org_id"),
)


def _lead_column(field: Field) -> sa.Column[Any]:
    kind_types: dict[Kind, sa.types.TypeEngine[Any]] = {
        Kind.ID: OrderedText,
        Kind.TEXT: OrderedText,
        Kind.CHOICE: OrderedText,
        Kind.MONEY: sa.BigInteger(),
        Kind.TIME: sa.BigInteger(),
        Kind.CONSENT: sa.Boolean(),
    }
    return sa.Column(
        field.column,
        kind_types[field.kind],
        primary_key=field.kind is Kind.ID,
        nullable=field.nullable,
    )


leads = sa.Table(
    "leads",
    metadata,
    sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
    *(_lead_column(f) for f in LEAD_FIELDS),
    *(sa.Column(c, OrderedText, nullable=True) for c in FOLDED_COLUMNS.values()),
    sa.Column(PHONE_DIGITS_COLUMN, sa.Text, nullable=True),
    sa.Column(SEARCH_TEXT_COLUMN, sa.Text, nullable=True),
    # The defaults only serve rows that existed before the columns did (migrations 0006 and
    # 0009): every writer sets both, and inserts name every column.
    sa.Column(CHANGE_SEQ_COLUMN, sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(CHANGE_ORD_COLUMN, sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(LEAD_JSON_COLUMN, sa.Text, nullable=True),
    # Virtual on SQLite (kept in the index only), stored on PostgreSQL (its only kind).
    sa.Column(CLICK_MASK_COLUMN, sa.Integer, sa.Computed(CLICK_MASK_SQL)),
    # Each order's index ends with the filter columns most often combined with that order,
    # so those filters are checked on the index entries and only the page's rows are read
    # (SQLite seeks a row only once a column outside the index is needed; PostgreSQL checks
    # key columns in the index, and an index-only scan checks any).
    sa.Index("ix_leads_org_created", "org_id", "created_at", "id", CLICK_MASK_COLUMN),
    # The leads of a few click-ID combinations, found without walking the created index
    # (store/reads.py, _few_clicked).
    sa.Index("ix_leads_org_clicks", "org_id", CLICK_MASK_COLUMN, "created_at", "id"),
    sa.Index("ix_leads_org_change", "org_id", CHANGE_SEQ_COLUMN, CHANGE_ORD_COLUMN),
    sa.Index("ix_leads_org_updated", "org_id", "updated_at", "id"),
    sa.Index("ix_leads_org_qualified", "org_id", "qualified_at", "id"),
    sa.Index("ix_leads_org_status_created", "org_id", "status", "created_at", "id"),
    sa.Index(
        "ix_leads_org_source_created", "org_id", "source", "created_at", "id", "utm_source"
    ),
    sa.Index("ix_leads_org_value", "org_id", "value_cents", "id", "status", "source"),
    sa.Index("ix_leads_org_email_fold", "org_id", "email_fold"),
    sa.Index("ix_leads_org_phone", "org_id", "phone"),
)

# `sessionId=` finds the lead(s) of one pixel session. Most leads have no session id, so
# only those with one are indexed: imports without them pay nothing for the index.
sa.Index(
    "ix_leads_org_session",
    leads.c.org_id,
    leads.c.session_id,
    sqlite_where=leads.c.session_id.is_not(None),
    postgresql_where=leads.c.session_id.is_not(None),
)

# PostgreSQL cannot walk an ascending index backwards for `value DESC NULLS LAST` (that
# gives NULLS FIRST), so the sort by value:desc gets an index of its own there. SQLite
# already puts NULLs last when descending, and has no NULLS LAST in CREATE INDEX.
sa.Index(
    "ix_leads_org_value_desc",
    leads.c.org_id,
    leads.c.value_cents.desc().nulls_last(),
    leads.c.id.desc(),
    leads.c.status,
    leads.c.source,
).ddl_if(dialect="postgresql")

# On SQLite, a search term too short for a trigram scans this index's entries of the
# organization, not its rows; the exact match on the folded columns then decides. (On
# PostgreSQL the trigram index is over `search_rows`, below, since migration 0014.)
sa.Index("ix_leads_search", leads.c.org_id, leads.c[SEARCH_TEXT_COLUMN]).ddl_if(dialect="sqlite")

# Search decides on narrow rows (migration 0014): each lead's organization, id, created_at
# and folded columns (and on PostgreSQL `search_text`, under the pg_trgm GIN index), kept by
# triggers on `leads`. Keyed by the lead row's rowid on SQLite (what the FTS5 index gives)
# and by the lead's id on PostgreSQL, so no one Table declares it for both: store/sql.py
# names its columns, and schema comparisons leave it out.
SEARCH_ROWS = "search_rows"

# On SQLite, search looks terms up in an FTS5 trigram index over `search_text` (migration
# 0010): a virtual table with shadow tables of its own, kept by triggers on `leads`. A
# Table cannot declare it, so schema comparisons leave these names out.
SQLITE_SEARCH_INDEX = "leads_search"
SQLITE_SEARCH_INDEX_TABLES = frozenset(
    f"{SQLITE_SEARCH_INDEX}{suffix}" for suffix in ("", "_data", "_idx", "_config")
)

# A retried POST with the same Idempotency-Key returns the stored first answer; the primary
# key makes the database, not a check-then-insert, decide which of two racing requests wins.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("body_hash", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("response", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_idempotency_created", "created_at"),
)

# Rollups: exact lead counts per organization and group, kept in the same transaction as
# every write (store/rollups.py), so a total is a sum over a few rows instead of a count
# over an organization's whole index. `n` may reach 0; such rows are harmless.
lead_counts = sa.Table(
    "lead_counts",
    metadata,
    sa.Column("org_id", sa.Integer, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)
lead_counts_by_day = sa.Table(  # createdAt ranges, by UTC day
    "lead_counts_by_day",
    metadata,
    sa.Column("org_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)
# updatedAt ranges (a poller's updated_after), by UTC day alone: a range from far back sums
# one row a day (with status and source, twenty: 3 ms for two years on SQLite).
lead_counts_by_updated_day = sa.Table(
    "lead_counts_by_updated_day",
    metadata,
    sa.Column("org_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)
lead_counts_by_value = sa.Table(  # value ranges, by 100.00 wide bucket; -1 = no value
    "lead_counts_by_value",
    metadata,
    sa.Column("org_id", sa.Integer, primary_key=True),
    sa.Column("bucket", sa.BigInteger, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)
lead_counts_by_clicks = sa.Table(  # click-ID presence, as a bitmask over CLICK_ID_NAMES
    "lead_counts_by_clicks",
    metadata,
    sa.Column("org_id", sa.Integer, primary_key=True),
    sa.Column("mask", sa.Integer, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)


def _category_rollup(column: str) -> sa.Table:
    # `present` keeps a lead without the field apart from one whose value is "" (None
    # cannot be part of a primary key); such leads are stored with value "".
    return sa.Table(
        f"lead_counts_by_{column}",
        metadata,
        sa.Column("org_id", sa.Integer, primary_key=True),
        sa.Column("present", sa.Boolean, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )


# By utm_source, utm_medium, utm_campaign, labelId and website (with status and source).
category_rollups: dict[str, sa.Table] = {
    name: _category_rollup(FIELDS_BY_NAME[name].column) for name in CATEGORY_NAMES
}

# --- Webhooks (store/webhooks.py, store/outbox.py) -------------------------------------------

# An id that grows and is never reused, on both databases: SQLite's AUTOINCREMENT keeps
# deleted ids from coming back (the outbox deletes what it delivered).
Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# A subscription. `events` holds its event types between commas (",lead.created,"), so one
# LIKE picks the subscriptions of a type. The secrets sign, so they are kept as issued.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text, nullable=True),  # signs beside it until:
    sa.Column("previous_secret_until", sa.BigInteger, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("failing", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_webhooks_org", "org_id", "enabled"),
)

# One row per change of a lead that an enabled subscription listened to, written in the
# change's own transaction: the lead object as it was after the change, once, however many
# subscriptions and event types it fans out to. Pruned once nothing in the outbox needs it.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("seq", Serial, primary_key=True, autoincrement=True),
    sa.Column("org_id", sa.Integer, nullable=False),
    sa.Column("lead_id", sa.Text, nullable=False),
    sa.Column("created", sa.Boolean, nullable=False),
    sa.Column("status_changed", sa.Boolean, nullable=False),
    sa.Column("lead", sa.Text, nullable=False),  # the lead object's JSON
    sa.Column("occurred_at", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# The transactional outbox: one row per message still to deliver (subscription x event x
# type). `position` (event seq * 4 + the type's rank) orders a lead's messages; a row is
# claimed by moving `next_attempt_at` past the claim's lease, and deleted once delivered.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column(
        "webhook_id",
        sa.Text,
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_seq", sa.BigInteger, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("lead_id", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_webhook_outbox_due", "webhook_id", "next_attempt_at"),
    sa.Index("ix_webhook_outbox_lead", "webhook_id", "lead_id", "position"),
    sa.Index("ix_webhook_outbox_event", "event_seq"),
)

# Every delivery attempt, for GET /api/webhooks/{id}/deliveries; the newest few per
# subscription are kept (store/outbox.py prunes the rest).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Serial, primary_key=True, autoincrement=True),
    sa.Column(
        "webhook_id",
        sa.Text,
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # delivered | retrying | failed | gone
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.BigInteger, nullable=False),
    sa.Column("next_retry_at", sa.BigInteger, nullable=True),
    sa.Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
    sqlite_autoincrement=True,
)
