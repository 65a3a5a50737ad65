"""Each lead's rendered object, stored with it (`lead_json`, store/schema.py).

The column is added empty, an instant change on both databases. The objects are rendered at
the end of the upgrade, once the schema is the newest (migrations/env.py): rendering here
would read the lead's columns as this code knows them, which a later revision may not have
made yet. A later revision that changes the lead object empties the column again.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leads", sa.Column("lead_json", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("lead_json")
