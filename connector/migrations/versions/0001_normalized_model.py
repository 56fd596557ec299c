"""normalized model, cursors and run history

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:54:20.234595
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.dbtypes

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ad_campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=255), nullable=True),
        sa.Column("currency", sa.String(length=255), nullable=True),
        sa.Column("timezone", sa.String(length=255), nullable=True),
        sa.Column("modified_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_campaigns")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_ad_campaigns_source_external_id")
        ),
    )
    op.create_table(
        "ad_spend_days",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("ad_campaign_id", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("spend", connector.store.dbtypes.Money(), nullable=False),
        sa.Column("currency", sa.String(length=255), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("conversions", connector.store.dbtypes.Money(), nullable=False),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_spend_days")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_ad_spend_days_source_external_id")
        ),
    )
    with op.batch_alter_table("ad_spend_days", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ad_spend_days_source_ad_campaign_id_day"),
            ["source", "ad_campaign_id", "day"],
            unique=False,
        )

    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("period", sa.String(length=255), nullable=False),
        sa.Column("amount", connector.store.dbtypes.Money(), nullable=False),
        sa.Column("currency", sa.String(length=255), nullable=False),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_budgets_source_external_id")),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("parent_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=255), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("budgeted_cost", connector.store.dbtypes.Money(), nullable=True),
        sa.Column("actual_cost", connector.store.dbtypes.Money(), nullable=True),
        sa.Column("currency", sa.String(length=255), nullable=True),
        sa.Column("owner_id", sa.String(length=255), nullable=True),
        sa.Column("owner_name", sa.String(length=255), nullable=True),
        sa.Column("department", sa.String(length=255), nullable=True),
        sa.Column("budget_category", sa.String(length=255), nullable=True),
        sa.Column("ad_campaign_ref", sa.String(length=255), nullable=True),
        sa.Column("created_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("modified_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_campaigns_source_external_id")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaigns_ad_campaign_ref"), ["ad_campaign_ref"], unique=False
        )

    op.create_table(
        "contact_roles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("opportunity_id", sa.String(length=255), nullable=False),
        sa.Column("person_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=255), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("modified_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_roles")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_contact_roles_source_external_id")
        ),
    )
    with op.batch_alter_table("contact_roles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_roles_source_opportunity_id"),
            ["source", "opportunity_id"],
            unique=False,
        )

    op.create_table(
        "expenses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("campaign_source", sa.String(length=255), nullable=False),
        sa.Column("campaign_id", sa.String(length=255), nullable=False),
        sa.Column("incurred_on", sa.Date(), nullable=False),
        sa.Column("amount", connector.store.dbtypes.Money(), nullable=False),
        sa.Column("currency", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expenses")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_expenses_source_external_id")),
    )
    with op.batch_alter_table("expenses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_expenses_campaign_source_campaign_id"),
            ["campaign_source", "campaign_id"],
            unique=False,
        )

    op.create_table(
        "fx_rates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("currency", sa.String(length=255), nullable=False),
        sa.Column("base_currency", sa.String(length=255), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("rate", connector.store.dbtypes.Money(), nullable=False),
        sa.Column("quote", sa.String(length=255), nullable=False),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_rates")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_fx_rates_source_external_id")),
    )
    op.create_table(
        "opportunities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("account_id", sa.String(length=255), nullable=True),
        sa.Column("account_name", sa.String(length=255), nullable=True),
        sa.Column("amount", connector.store.dbtypes.Money(), nullable=True),
        sa.Column("currency", sa.String(length=255), nullable=True),
        sa.Column("stage", sa.String(length=255), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("created_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("primary_campaign_id", sa.String(length=255), nullable=True),
        sa.Column("modified_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunities")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_opportunities_source_external_id")
        ),
    )
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("kind", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("company", sa.String(length=255), nullable=True),
        sa.Column("created_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=255), nullable=False),
        sa.Column("lead_source", sa.String(length=255), nullable=True),
        sa.Column("mql_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("sql_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("converted_contact_id", sa.String(length=255), nullable=True),
        sa.Column("converted_opportunity_id", sa.String(length=255), nullable=True),
        sa.Column("converted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("modified_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_persons_source_external_id")),
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_persons_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_persons_source_converted_contact_id"),
            ["source", "converted_contact_id"],
            unique=False,
        )

    op.create_table(
        "sync_cursors",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("updated_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "stream", "partition", name=op.f("pk_sync_cursors")),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column("started_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_table(
        "touchpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("person_source", sa.String(length=255), nullable=False),
        sa.Column("person_id", sa.String(length=255), nullable=False),
        sa.Column("campaign_source", sa.String(length=255), nullable=False),
        sa.Column("campaign_id", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=255), nullable=False),
        sa.Column("responded", sa.Boolean(), nullable=False),
        sa.Column("modified_at", connector.store.dbtypes.UTCDateTime(), nullable=True),
        sa.Column("synced_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touchpoints")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_touchpoints_source_external_id")
        ),
    )
    with op.batch_alter_table("touchpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_touchpoints_campaign_source_campaign_id"),
            ["campaign_source", "campaign_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_touchpoints_person_source_person_id"),
            ["person_source", "person_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("touchpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_touchpoints_person_source_person_id"))
        batch_op.drop_index(batch_op.f("ix_touchpoints_campaign_source_campaign_id"))

    op.drop_table("touchpoints")
    op.drop_table("sync_runs")
    op.drop_table("sync_cursors")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_persons_source_converted_contact_id"))
        batch_op.drop_index(batch_op.f("ix_persons_email"))

    op.drop_table("persons")
    op.drop_table("opportunities")
    op.drop_table("fx_rates")
    with op.batch_alter_table("expenses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expenses_campaign_source_campaign_id"))

    op.drop_table("expenses")
    with op.batch_alter_table("contact_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_roles_source_opportunity_id"))

    op.drop_table("contact_roles")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_ad_campaign_ref"))

    op.drop_table("campaigns")
    op.drop_table("budgets")
    with op.batch_alter_table("ad_spend_days", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ad_spend_days_source_ad_campaign_id_day"))

    op.drop_table("ad_spend_days")
    op.drop_table("ad_campaigns")
