"""Each lead's change position, for the change feed: (org_id, change_seq, id).

Leads that exist already get position 0, so a feed read from the beginning returns them
first, in id order; every write from now on stamps the organization's next data version.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "leads", sa.Column("change_seq", sa.BigInteger, nullable=False, server_default="0")
    )
    op.create_index("ix_leads_org_change", "leads", ["org_id", "change_seq", "id"])


def downgrade() -> None:
    op.drop_index("ix_leads_org_change", table_name="leads")
    op.drop_column("leads", "change_seq")
