"""alert resolutions before this revision count as announced

From this revision on, a resolution is announced on every channel that received the alert,
recorded as ``resolved_at`` in that channel's ``delivered_to`` entry. Alerts that resolved
earlier are marked as announced here, so the first run after the upgrade does not send a
flood of "resolved" messages about old alerts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.dbtypes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_alerts = sa.table(
    "alerts",
    sa.column("id", sa.Integer()),
    sa.column("state", sa.String()),
    sa.column("resolved_at", connector.store.dbtypes.UTCDateTime()),
    sa.column("delivered_to", sa.JSON()),
)


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_alerts.c.id, _alerts.c.resolved_at, _alerts.c.delivered_to).where(
            _alerts.c.state == "resolved"
        )
    ).all()
    for alert_id, resolved_at, delivered in rows:
        if not delivered:
            continue
        at = resolved_at.isoformat() if resolved_at is not None else "before upgrade"
        marked = {channel: {**entry, "resolved_at": at} for channel, entry in delivered.items()}
        conn.execute(sa.update(_alerts).where(_alerts.c.id == alert_id).values(delivered_to=marked))


def downgrade() -> None:
    # the marks are harmless to older code, which never reads them
    pass
