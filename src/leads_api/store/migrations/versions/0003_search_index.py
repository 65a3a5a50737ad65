"""Search index: a folded `search_text` column and a trigram index over it.

PostgreSQL: pg_trgm GIN index with the organization in it (btree_gin), so a search is
answered per organization from the index. SQLite: an FTS5 trigram table kept in step with
`leads` by triggers; `leads_fts_map` remembers each lead's FTS row so updates and deletes
find it without relying on the implicit rowid (which VACUUM may renumber).

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

    op.execute(
        "CREATE VIRTUAL TABLE leads_fts USING fts5("
        "search_text, lead_id UNINDEXED, org_id UNINDEXED, tokenize='trigram')"
    )
    op.execute(
        "CREATE TABLE leads_fts_map (lead_id TEXT PRIMARY KEY, fts_rowid INTEGER NOT NULL) "
        "WITHOUT ROWID"
    )
    op.execute(
        """CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads
        WHEN new.search_text IS NOT NULL BEGIN
          INSERT INTO leads_fts (search_text, lead_id, org_id)
            VALUES (new.search_text, new.id, new.org_id);
          INSERT INTO leads_fts_map (lead_id, fts_rowid) VALUES (new.id, last_insert_rowid());
        END"""
    )
    op.execute(
        """CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
          DELETE FROM leads_fts
            WHERE rowid = (SELECT fts_rowid FROM leads_fts_map WHERE lead_id = old.id);
          DELETE FROM leads_fts_map WHERE lead_id = old.id;
        END"""
    )
    op.execute(
        """CREATE TRIGGER leads_fts_update AFTER UPDATE OF search_text, org_id ON leads BEGIN
          DELETE FROM leads_fts
            WHERE rowid = (SELECT fts_rowid FROM leads_fts_map WHERE lead_id = old.id);
          DELETE FROM leads_fts_map WHERE lead_id = old.id;
          INSERT INTO leads_fts (search_text, lead_id, org_id)
            SELECT new.search_text, new.id, new.org_id WHERE new.search_text IS NOT NULL;
          INSERT INTO leads_fts_map (lead_id, fts_rowid)
            SELECT new.id, last_insert_rowid() WHERE new.search_text IS NOT NULL;
        END"""
    )
    op.execute(
        "INSERT INTO leads_fts (search_text, lead_id, org_id) "
        "SELECT search_text, id, org_id FROM leads WHERE search_text IS NOT NULL"
    )
    op.execute(
        "INSERT INTO leads_fts_map (lead_id, fts_rowid) "
        "SELECT lead_id, rowid FROM leads_fts"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX ix_leads_search")
    else:
        for trigger in ("leads_fts_insert", "leads_fts_delete", "leads_fts_update"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE leads_fts_map")
        op.execute("DROP TABLE leads_fts")
    op.drop_column("leads", "search_text")
