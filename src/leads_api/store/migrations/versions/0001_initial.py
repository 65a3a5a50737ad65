"""Organizations, API keys, leads and idempotency keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OrderedText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

TEXT_COLUMNS = (
    "name", "email", "phone", "note", "custom", "loss_reason", "conversion_name",
    "website", "path", "gclid", "ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid",
    "twclid", "rdt_cid", "sccid", "li_fat_id", "utm_source", "utm_medium", "utm_campaign",
)
CONSENT_COLUMNS = ("ad_storage", "ad_user_data", "analytics_storage", "ad_personalization")
GOOGLE_ADS_COLUMNS = (
    "google_ads_campaign_id", "google_ads_campaign_name", "google_ads_ad_group_id",
    "google_ads_ad_group_name", "google_ads_ad_id", "label_id", "selected_conversion_event_id",
)


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("allow_bulk_updates", sa.Boolean, nullable=False),
        sa.Column("leads_limit", sa.Integer, nullable=True),
        sa.Column("attribution_days", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("read_only", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_api_keys_org", "api_keys", ["org_id"])
    op.create_table(
        "leads",
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("id", OrderedText, primary_key=True),
        *(sa.Column(c, OrderedText, nullable=True) for c in TEXT_COLUMNS[:3]),
        sa.Column("status", OrderedText, nullable=False),
        sa.Column("value_cents", sa.BigInteger, nullable=True),
        *(sa.Column(c, OrderedText, nullable=True) for c in TEXT_COLUMNS[3:7]),
        sa.Column("source", OrderedText, nullable=False),
        *(sa.Column(c, OrderedText, nullable=True) for c in TEXT_COLUMNS[7:]),
        *(sa.Column(c, sa.Boolean, nullable=True) for c in CONSENT_COLUMNS),
        *(sa.Column(c, OrderedText, nullable=True) for c in GOOGLE_ADS_COLUMNS),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("qualified_at", sa.BigInteger, nullable=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("name_fold", OrderedText, nullable=True),
        sa.Column("email_fold", OrderedText, nullable=True),
        sa.Column("phone_fold", OrderedText, nullable=True),
        sa.Column("phone_digits", sa.Text, nullable=True),
    )
    for name, columns in (
        ("ix_leads_org_created", ["org_id", "created_at", "id"]),
        ("ix_leads_org_updated", ["org_id", "updated_at", "id"]),
        ("ix_leads_org_qualified", ["org_id", "qualified_at", "id"]),
        ("ix_leads_org_status_created", ["org_id", "status", "created_at", "id"]),
        ("ix_leads_org_source_created", ["org_id", "source", "created_at", "id"]),
        ("ix_leads_org_value", ["org_id", "value_cents", "id"]),
        ("ix_leads_org_email_fold", ["org_id", "email_fold"]),
        ("ix_leads_org_phone", ["org_id", "phone"]),
    ):
        op.create_index(name, "leads", columns)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_leads_org_value_desc ON leads "
            "(org_id, value_cents DESC NULLS LAST, id DESC)"
        )
    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("body_hash", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("leads")
    op.drop_table("api_keys")
    op.drop_table("organizations")
