"""SQLite search through an FTS5 trigram index over `leads.search_text`.

An external-content FTS5 table (`leads_search`, rowid = the lead row's rowid) holds the
trigrams of every lead's already case-folded `search_text`; triggers on `leads` keep it in
the same transaction as the row, whichever statement writes it. `detail=none` keeps only
rowids (no positions): a search asks for all of its term's trigrams, a superset of the
matches, and the exact containment test on the folded columns decides (store/sql.py).
`case_sensitive 1`: the text is folded by Python's `str.casefold` already, and the
tokenizer's own ASCII-only folding must not be applied to one side only.

The (org_id, search_text) index stays: terms of one or two characters have no trigram and
still scan it. PostgreSQL is unchanged (its pg_trgm GIN index answers the same terms).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_CREATE = (
    "CREATE VIRTUAL TABLE leads_search USING fts5(search_text, content='leads', "
    "content_rowid='rowid', tokenize='trigram case_sensitive 1', detail=none, columnsize=0)"
)
# An external-content index must be told the old text to remove, exactly as it was indexed;
# NULL texts are never indexed, so never removed either.
_TRIGGERS = (
    """CREATE TRIGGER leads_search_insert AFTER INSERT ON leads
    WHEN new.search_text IS NOT NULL BEGIN
        INSERT INTO leads_search (rowid, search_text) VALUES (new.rowid, new.search_text);
    END""",
    """CREATE TRIGGER leads_search_delete AFTER DELETE ON leads
    WHEN old.search_text IS NOT NULL BEGIN
        INSERT INTO leads_search (leads_search, rowid, search_text)
        VALUES ('delete', old.rowid, old.search_text);
    END""",
    """CREATE TRIGGER leads_search_update AFTER UPDATE OF search_text ON leads
    WHEN old.search_text IS NOT new.search_text BEGIN
        INSERT INTO leads_search (leads_search, rowid, search_text)
        SELECT 'delete', old.rowid, old.search_text WHERE old.search_text IS NOT NULL;
        INSERT INTO leads_search (rowid, search_text)
        SELECT new.rowid, new.search_text WHERE new.search_text IS NOT NULL;
    END""",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_CREATE)
    for trigger in _TRIGGERS:
        op.execute(trigger)
    # 'rebuild' would index NULL texts too (as empty documents, harmless); this matches
    # what the triggers do.
    op.execute(
        "INSERT INTO leads_search (rowid, search_text) "
        "SELECT rowid, search_text FROM leads WHERE search_text IS NOT NULL"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in ("leads_search_insert", "leads_search_delete", "leads_search_update"):
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DROP TABLE leads_search")
