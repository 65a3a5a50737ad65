"""Count rollups: exact per-organization totals kept in the same transaction as the writes.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CLICK_COLUMNS = (
    "gclid", "ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid", "twclid", "rdt_cid",
    "sccid", "li_fat_id",
)
# Floor division that truncating `/` gets wrong for instants before 1970.
DAY = "((created_at - ((created_at % 86400000) + 86400000) % 86400000) / 86400000)"
BUCKET = "(CASE WHEN value_cents IS NULL THEN -1 ELSE value_cents / 10000 END)"
MASK = " + ".join(
    f"(CASE WHEN {c} IS NULL THEN 0 ELSE {1 << i} END)" for i, c in enumerate(CLICK_COLUMNS)
)


def _group_columns() -> list[sa.Column[str]]:
    return [sa.Column("status", sa.Text, primary_key=True),
            sa.Column("source", sa.Text, primary_key=True)]


def upgrade() -> None:
    op.create_table(
        "lead_counts",
        sa.Column("org_id", sa.Integer, primary_key=True),
        *_group_columns(),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "lead_counts_by_day",
        sa.Column("org_id", sa.Integer, primary_key=True),
        sa.Column("day", sa.Integer, primary_key=True),
        *_group_columns(),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "lead_counts_by_value",
        sa.Column("org_id", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        *_group_columns(),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "lead_counts_by_clicks",
        sa.Column("org_id", sa.Integer, primary_key=True),
        sa.Column("mask", sa.Integer, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO lead_counts (org_id, status, source, n) "
        "SELECT org_id, status, source, COUNT(*) FROM leads GROUP BY org_id, status, source"
    )
    op.execute(
        f"INSERT INTO lead_counts_by_day (org_id, day, status, source, n) "
        f"SELECT org_id, {DAY}, status, source, COUNT(*) FROM leads "
        f"GROUP BY org_id, {DAY}, status, source"
    )
    op.execute(
        f"INSERT INTO lead_counts_by_value (org_id, bucket, status, source, n) "
        f"SELECT org_id, {BUCKET}, status, source, COUNT(*) FROM leads "
        f"GROUP BY org_id, {BUCKET}, status, source"
    )
    op.execute(
        f"INSERT INTO lead_counts_by_clicks (org_id, mask, n) "
        f"SELECT org_id, {MASK}, COUNT(*) FROM leads GROUP BY org_id, {MASK}"
    )


def downgrade() -> None:
    for table in ("lead_counts_by_clicks", "lead_counts_by_value", "lead_counts_by_day",
                  "lead_counts"):
        op.drop_table(table)
