"""ad spend keys day-major (<account>:<day>:<campaign>); drop the unused campaign/day index

Ad platforms report a slice of days for every campaign, and every daily sync adds the newest
day for every campaign. With the key campaign-major, each of those rows landed somewhere
else in the unique index; day-major, they append at its end. Nothing queries
``(source, ad_campaign_id, day)``: costs read the whole table, so that index only cost
writes (about 40 % of them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _day_text() -> str:
    # SQLite stores a Date as 'YYYY-MM-DD' text already; PostgreSQL's DATE needs formatting.
    return "to_char(day, 'YYYY-MM-DD')" if op.get_bind().dialect.name == "postgresql" else "day"


def upgrade() -> None:
    with op.batch_alter_table("ad_spend_days", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ad_spend_days_source_ad_campaign_id_day"))
    # No new key can equal an old one: that would need a campaign id that is a date.
    op.execute(
        "UPDATE ad_spend_days SET external_id = "
        f"account_id || ':' || {_day_text()} || ':' || ad_campaign_id"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE ad_spend_days SET external_id = "
        f"account_id || ':' || ad_campaign_id || ':' || {_day_text()}"
    )
    with op.batch_alter_table("ad_spend_days", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ad_spend_days_source_ad_campaign_id_day"),
            ["source", "ad_campaign_id", "day"],
            unique=False,
        )
