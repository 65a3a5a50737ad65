"""Search decides on narrow rows: `search_rows`, each lead's folded text and creation time.

A search rechecks every candidate its trigram index gives (the index only narrows), and
counts every match for the exact total. Both read the wide lead rows (about 1.6 KB each,
the stored lead object among them), one page visit per candidate. `search_rows` holds only
what the recheck and the default order need, about a tenth of the size:

- SQLite: keyed by the lead row's rowid (`lead_row`, the rowids the FTS5 index gives), with
  the organization, the lead's id, `created_at` and the folded columns.
- PostgreSQL: keyed by the lead's id, with the same columns and `search_text`, and the
  pg_trgm GIN index (with the organization, btree_gin) moves here from `leads`: nothing else
  reads it.

Triggers on `leads` keep the rows in the writing statement's own transaction, whatever
statement writes (as the FTS5 index's do): nothing in the write path can forget them. An
update touches them only when one of their columns changes (a PATCH never does). On
PostgreSQL an INSERT's rows go in as one set at the end of the statement (a transition
table), not through a function call per row.

Measured at a million leads (600,000 in one organization), 150 of the benchmark's search
terms in a row, page 1 with its total: PostgreSQL 11.4 s -> 2.2 s, SQLite 2.7 s -> 2.2 s.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FOLDED = ("name_fold", "email_fold", "phone_fold", "phone_digits")
SQLITE_COLUMNS = ("org_id", "id", "created_at", *FOLDED)
POSTGRES_COLUMNS = (*SQLITE_COLUMNS, "search_text")

_SQLITE = (
    """CREATE TABLE search_rows (
        lead_row INTEGER PRIMARY KEY, org_id INTEGER NOT NULL, id TEXT NOT NULL,
        created_at BIGINT NOT NULL, name_fold TEXT, email_fold TEXT, phone_fold TEXT,
        phone_digits TEXT)""",
    f"""CREATE TRIGGER search_rows_insert AFTER INSERT ON leads BEGIN
        INSERT INTO search_rows (lead_row, {", ".join(SQLITE_COLUMNS)})
        VALUES (new.rowid, {", ".join(f"new.{c}" for c in SQLITE_COLUMNS)});
    END""",
    """CREATE TRIGGER search_rows_delete AFTER DELETE ON leads BEGIN
        DELETE FROM search_rows WHERE lead_row = old.rowid;
    END""",
    f"""CREATE TRIGGER search_rows_update AFTER UPDATE OF {", ".join(SQLITE_COLUMNS)} ON leads
    WHEN {" OR ".join(f"old.{c} IS NOT new.{c}" for c in SQLITE_COLUMNS)} BEGIN
        UPDATE search_rows SET {", ".join(f"{c} = new.{c}" for c in SQLITE_COLUMNS)}
        WHERE lead_row = old.rowid;
    END""",
    f"""INSERT INTO search_rows (lead_row, {", ".join(SQLITE_COLUMNS)})
    SELECT rowid, {", ".join(SQLITE_COLUMNS)} FROM leads""",
)

_POSTGRES = (
    """CREATE TABLE search_rows (
        id TEXT COLLATE "C" PRIMARY KEY, org_id INTEGER NOT NULL, created_at BIGINT NOT NULL,
        name_fold TEXT COLLATE "C", email_fold TEXT COLLATE "C", phone_fold TEXT COLLATE "C",
        phone_digits TEXT, search_text TEXT)""",
    f"""INSERT INTO search_rows ({", ".join(POSTGRES_COLUMNS)})
    SELECT {", ".join(POSTGRES_COLUMNS)} FROM leads""",
    # The operator class by the schema pg_trgm lives in (migration 0003 installed it).
    'CREATE INDEX ix_search_rows_text ON search_rows USING gin '
    '(org_id, search_text "{trgm}".gin_trgm_ops)',
    "DROP INDEX ix_leads_search",
    # Inserts as a set, once a statement (an import inserts hundreds of leads in one): the
    # rows an INSERT ... ON CONFLICT DO UPDATE updates come to the update trigger instead.
    f"""CREATE FUNCTION search_rows_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO search_rows ({", ".join(POSTGRES_COLUMNS)})
        SELECT {", ".join(POSTGRES_COLUMNS)} FROM inserted;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION search_rows_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            UPDATE search_rows SET {", ".join(f"{c} = NEW.{c}" for c in POSTGRES_COLUMNS)}
            WHERE id = OLD.id;
        ELSE
            DELETE FROM search_rows WHERE id = OLD.id;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER search_rows_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION search_rows_inserted()""",
    f"""CREATE TRIGGER search_rows_update AFTER UPDATE OF {", ".join(POSTGRES_COLUMNS)} ON leads
    FOR EACH ROW WHEN (({", ".join(f"OLD.{c}" for c in POSTGRES_COLUMNS)})
        IS DISTINCT FROM ({", ".join(f"NEW.{c}" for c in POSTGRES_COLUMNS)}))
    EXECUTE FUNCTION search_rows_write()""",
    """CREATE TRIGGER search_rows_delete AFTER DELETE ON leads
    FOR EACH ROW EXECUTE FUNCTION search_rows_write()""",
    "ANALYZE search_rows",
)


def _trgm_schema() -> str:
    """The schema pg_trgm lives in (migration 0003 installed it, or found it elsewhere)."""
    return str(op.get_bind().execute(sa.text(
        "SELECT n.nspname FROM pg_extension e "
        "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
    )).scalar_one())


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        for statement in _SQLITE:
            op.execute(statement)
        return
    trgm = _trgm_schema()
    for statement in _POSTGRES:
        op.execute(statement.replace('"{trgm}"', f'"{trgm}"'))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger in ("search_rows_insert", "search_rows_update", "search_rows_delete"):
        op.execute(f"DROP TRIGGER {trigger}" + (" ON leads" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION search_rows_write()")
        op.execute("DROP FUNCTION search_rows_inserted()")
        op.execute(
            "CREATE INDEX ix_leads_search ON leads USING gin "
            f'(org_id, search_text "{_trgm_schema()}".gin_trgm_ops)'
        )
    op.execute("DROP TABLE search_rows")
