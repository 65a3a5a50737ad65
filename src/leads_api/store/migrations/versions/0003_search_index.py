"""Search index: a folded `search_text` column and a trigram index over it.

PostgreSQL: pg_trgm GIN index with the organization in it (btree_gin), so a search is
answered per organization from the index. SQLite: an index on (org_id, search_text) that a
search scans instead of the table.

Revision ID: 0003
Revises: 0002
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_NON_DIGITS = re.compile(r"[^0-9]")


def _search_text(name: str | None, email: str | None, phone: str | None) -> str | None:
    # Frozen copy of leads_api.lead.derived_columns' search_text at this revision.
    digits = _NON_DIGITS.sub("", phone) if phone else ""
    parts = [p.casefold() for p in (name, email, phone) if p is not None]
    parts = [p for p in parts if p]
    if digits:
        parts.append(digits)
    return "\n".join(parts) if parts else None


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("leads", sa.Column("search_text", sa.Text, nullable=True))
    leads = sa.table(
        "leads", sa.column("id"), sa.column("name"), sa.column("email"), sa.column("phone"),
        sa.column("search_text"),
    )
    rows = bind.execute(sa.select(leads.c.id, leads.c.name, leads.c.email, leads.c.phone))
    batch: list[dict[str, object]] = []
    update = (
        leads.update().where(leads.c.id == sa.bindparam("b_id"))
        .values(search_text=sa.bindparam("b_text"))
    )
    for lead_id, name, email, phone in rows.fetchall():
        batch.append({"b_id": lead_id, "b_text": _search_text(name, email, phone)})
        if len(batch) == 5000:
            bind.execute(update, batch)
            batch = []
    if batch:
        bind.execute(update, batch)

    if bind.dialect.name == "postgresql":
        # Extensions are per database and may already live in another schema: install them
        # in public when missing, then name the operator class by the schema it is in.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin SCHEMA public")
        schema = bind.execute(
            sa.text(
                "SELECT n.nspname FROM pg_extension e "
                "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            )
        ).scalar_one()
        op.execute(
            "CREATE INDEX ix_leads_search ON leads USING gin "
            f'(org_id, search_text "{schema}".gin_trgm_ops)'
        )
        return

    # SQLite: FTS5's trigram index costs two thirds of an insert; a plain index whose
    # entries hold the search text lets a search scan one organization's texts without
    # reading its rows, at a fraction of that cost.
    op.create_index("ix_leads_search", "leads", ["org_id", "search_text"])


def downgrade() -> None:
    op.drop_index("ix_leads_search", "leads")
    op.drop_column("leads", "search_text")
