"""Filters checked on index entries: the click-ID mask, and filter columns in the order indexes.

A page in some order with filters no index narrows walks the order's index and reads each
row to test it: a rare click-ID pair walked all 600,000 rows of the largest benchmark
organization (bench/RESULTS.md, Q5), a status set by value or a utm_source within a source
read every row it passed. Each order's index now ends with the columns those filters test,
so only the page's rows are read:

- `click_mask`, which click IDs a lead has (bit i for the i-th of the names below, as in the
  click rollup), a generated column the database computes on every write: virtual on SQLite
  (stored in the index only), stored on PostgreSQL (which rewrites the table once, here);
- a new index ix_leads_org_clicks (org_id, click_mask, created_at, id), which finds the
  leads of a few click-ID combinations directly;
- ix_leads_org_created ends with click_mask, ix_leads_org_value (and PostgreSQL's
  ix_leads_org_value_desc) with status and source, ix_leads_org_source_created with
  utm_source.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The click-ID columns as of this revision, in bit order. A later click ID changes the
# expression: a migration of its own drops the column and adds it again.
CLICK_COLUMNS = (
    "gclid", "ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid", "twclid", "rdt_cid",
    "sccid", "li_fat_id", "dclid", "wbraid", "gbraid", "epik",
)
MASK = " + ".join(
    f"(CASE WHEN {c} IS NULL THEN 0 ELSE {1 << i} END)" for i, c in enumerate(CLICK_COLUMNS)
)

INDEXES = {
    "ix_leads_org_created": (
        "org_id, created_at, id", "org_id, created_at, id, click_mask"),
    "ix_leads_org_value": ("org_id, value_cents, id", "org_id, value_cents, id, status, source"),
    "ix_leads_org_source_created": (
        "org_id, source, created_at, id", "org_id, source, created_at, id, utm_source"),
}
POSTGRES_INDEXES = {
    "ix_leads_org_value_desc": (
        "org_id, value_cents DESC NULLS LAST, id DESC",
        "org_id, value_cents DESC NULLS LAST, id DESC, status, source",
    ),
}


def _indexes(postgres: bool) -> dict[str, tuple[str, str]]:
    return {**INDEXES, **POSTGRES_INDEXES} if postgres else INDEXES


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    kind = "STORED" if postgres else "VIRTUAL"
    op.execute(
        f"ALTER TABLE leads ADD COLUMN click_mask INTEGER GENERATED ALWAYS AS ({MASK}) {kind}"
    )
    for name, (_, columns) in _indexes(postgres).items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON leads ({columns})")
    op.execute("CREATE INDEX ix_leads_org_clicks ON leads (org_id, click_mask, created_at, id)")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP INDEX ix_leads_org_clicks")
    for name, (columns, _) in _indexes(postgres).items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON leads ({columns})")
    op.execute("ALTER TABLE leads DROP COLUMN click_mask")
