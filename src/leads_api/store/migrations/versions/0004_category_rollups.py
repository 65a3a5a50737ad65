"""Count rollups by utm_source, utm_medium, utm_campaign, labelId and website.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "label_id", "website")


def upgrade() -> None:
    for column in COLUMNS:
        table = f"lead_counts_by_{column}"
        op.create_table(
            table,
            sa.Column("org_id", sa.Integer, primary_key=True),
            sa.Column("present", sa.Boolean, primary_key=True),
            sa.Column("value", sa.Text, primary_key=True),
            sa.Column("status", sa.Text, primary_key=True),
            sa.Column("source", sa.Text, primary_key=True),
            sa.Column("n", sa.BigInteger, nullable=False),
        )
        op.execute(
            f"INSERT INTO {table} (org_id, present, value, status, source, n) "
            f"SELECT org_id, {column} IS NOT NULL, COALESCE({column}, ''), status, source, "
            f"COUNT(*) FROM leads "
            f"GROUP BY org_id, {column} IS NOT NULL, COALESCE({column}, ''), status, source"
        )


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_table(f"lead_counts_by_{column}")
