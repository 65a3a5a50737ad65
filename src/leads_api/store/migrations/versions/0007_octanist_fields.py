"""Octanist's current create-lead fields: the dclid, wbraid, gbraid and epik click IDs and
the pixel's sessionId.

The click-ID presence rollup needs no backfill: the new click IDs take the next bits of
its mask, and every lead stored before has them absent, which is a clear bit.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OrderedText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
CLICK_COLUMNS = ("dclid", "wbraid", "gbraid", "epik")


def upgrade() -> None:
    # Nullable columns without a default: an instant change on both databases, whatever
    # the number of leads.
    for column in ("session_id", *CLICK_COLUMNS):
        op.add_column("leads", sa.Column(column, OrderedText, nullable=True))
    op.create_index(
        "ix_leads_org_session",
        "leads",
        ["org_id", "session_id"],
        sqlite_where=sa.text("session_id IS NOT NULL"),
        postgresql_where=sa.text("session_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_leads_org_session", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        for column in (*CLICK_COLUMNS, "session_id"):
            batch.drop_column(column)
