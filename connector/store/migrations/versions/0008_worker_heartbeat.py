"""the worker's heartbeat (``/readyz`` and the metrics tell a stopped worker by
it), and an index for the newest run of an entitlement, target, kind and status
(the metrics' last successful run and group size)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeat",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_worker_heartbeat_beat_at", "worker_heartbeat", ["beat_at"])
    op.create_index("ix_sync_run_outcome", "sync_run", ["entitlement", "target", "kind", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_sync_run_outcome", "sync_run")
    op.drop_index("ix_worker_heartbeat_beat_at", "worker_heartbeat")
    op.drop_table("worker_heartbeat")
