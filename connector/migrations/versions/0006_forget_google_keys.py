"""Google lead form events no longer keep the advertiser's google_key

The key is a shared secret that verifies a delivery; before this revision the whole body,
key included, was stored. Stored events lose the key here (nothing reads it after intake).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_events = sa.table(
    "webhook_events",
    sa.column("id", sa.Integer()),
    sa.column("provider", sa.String()),
    sa.column("body", sa.Text()),
)


def _without_key(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "google_key" not in data:
        return None
    del data["google_key"]
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True)


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_events.c.id, _events.c.body).where(
            _events.c.provider == "google-ads", _events.c.body.like("%google_key%")
        )
    ).all()
    for row in rows:
        body = _without_key(row.body)
        if body is not None:
            conn.execute(sa.update(_events).where(_events.c.id == row.id).values(body=body))


def downgrade() -> None:
    pass  # a forgotten secret stays forgotten
