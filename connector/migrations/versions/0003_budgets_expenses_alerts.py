"""alert details, delivery errors and firings; the expense decision history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.dbtypes

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("details", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("delivery_errors", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("firings", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_index(batch_op.f("ix_alerts_state"), ["state"], unique=False)

    op.create_table(
        "expense_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("expense_source", sa.String(length=255), nullable=False),
        sa.Column("expense_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("decided_at", connector.store.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("amount", connector.store.dbtypes.Money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expense_decisions")),
    )
    with op.batch_alter_table("expense_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_expense_decisions_expense_source_expense_id"),
            ["expense_source", "expense_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("expense_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expense_decisions_expense_source_expense_id"))
    op.drop_table("expense_decisions")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_state"))
        batch_op.drop_column("firings")
        batch_op.drop_column("delivery_errors")
        batch_op.drop_column("details")
