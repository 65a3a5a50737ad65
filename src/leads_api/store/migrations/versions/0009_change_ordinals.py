"""Each lead's ordinal within the write that last stamped it: the feed's order becomes
(org_id, change_seq, change_ord), the order rows were written in, instead of (.., id).

An import stamps all its leads with one position, and ids are random: following
(change_seq, id) read the table in random order (0.8-6 s a page of 1,000 on a cold page
cache). Existing leads get their rank by id within their position (0, 1, ...), so the new
order of every existing position is its old order: a token made before this revision,
(seq, id), still names the same place (store/feed.py translates it).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column(
        "leads", sa.Column("change_ord", sa.BigInteger, nullable=False, server_default="0")
    )
    # One organization at a time, and only the rows whose rank is not the default 0 (a
    # position that stamped one lead, as every create and PATCH does, needs no update). The
    # ranks are read in the old index's order, (org_id, change_seq, id).
    orgs = [row[0] for row in bind.execute(sa.text("SELECT id FROM organizations ORDER BY id"))]
    backfill = sa.text(
        "UPDATE leads SET change_ord = ranked.ord FROM ("
        " SELECT id, row_number() OVER (PARTITION BY change_seq ORDER BY id) - 1 AS ord"
        " FROM leads WHERE org_id = :org"
        ") AS ranked WHERE leads.id = ranked.id AND ranked.ord > 0"
    )
    for org_id in orgs:
        bind.execute(backfill, {"org": org_id})
    op.drop_index("ix_leads_org_change", table_name="leads")
    op.create_index("ix_leads_org_change", "leads", ["org_id", "change_seq", "change_ord"])


def downgrade() -> None:
    op.drop_index("ix_leads_org_change", table_name="leads")
    op.create_index("ix_leads_org_change", "leads", ["org_id", "change_seq", "id"])
    op.drop_column("leads", "change_ord")
