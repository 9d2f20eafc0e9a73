"""the administrator's levers and reports: approval records, admin API tokens,
decision changes (a person's history), what each stored decision rests on
(role, location, who must act, the approval and chain of a grant), the actor of
an audit entry, and release requests of held runs

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.String(length=64)
_TEXT = sa.String(length=512)


def upgrade() -> None:
    # Stored decisions are a cache (sync/decisions.py): emptied, the next run decides
    # everyone again and fills the new columns, rather than reports reading nulls.
    op.execute("DELETE FROM sync_decision")
    # Plain ADD COLUMN, never a batch rebuild: rebuilding audit_log on SQLite would
    # drop the triggers that keep it append-only.
    for column in (
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("role", _TEXT, nullable=True),
        sa.Column("location", _TEXT, nullable=True),
        sa.Column("waiting_on", sa.String(length=16), nullable=True),
        sa.Column("approver", _TEXT, nullable=True),
        sa.Column("approved_on", sa.String(length=10), nullable=True),
        sa.Column("chain", sa.Text(), nullable=True),
    ):
        op.add_column("sync_decision", column)
    op.create_index("ix_sync_decision_entitled", "sync_decision", ["entitlement", "entitled", "valid_through"])
    op.create_index("ix_sync_decision_waiting", "sync_decision", ["entitlement", "waiting_on", "location"])
    op.add_column("audit_log", sa.Column("actor", sa.String(length=256), nullable=True))
    op.add_column("sync_run", sa.Column("release_requested_by", sa.String(length=256), nullable=True))
    op.add_column("sync_run", sa.Column("release_requested_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("access_override", sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("access_override", sa.Column("ended_by", sa.String(length=256), nullable=True))
    op.add_column("access_override", sa.Column("end_reason", sa.Text(), nullable=True))
    op.create_table(
        "approval_record",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", _ID, nullable=False),
        sa.Column("entitlement", sa.String(length=64), nullable=False),
        sa.Column("location", _TEXT, nullable=False),
        sa.Column("approved_on", sa.String(length=10), nullable=False),
        sa.Column("approver", _TEXT, nullable=False),
        sa.Column("approver_id", _ID, nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=256), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approval_record_person", "approval_record", ["person_id"])
    op.create_table(
        "admin_token",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("approver", _TEXT, nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest", name="uq_admin_token_digest"),
    )
    op.create_table(
        "decision_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_on", sa.String(length=10), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("person_id", _ID, nullable=False),
        sa.Column("entitlement", sa.String(length=64), nullable=False),
        sa.Column("entitled", sa.Boolean(), nullable=False),
        sa.Column("by_override", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("valid_through", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_decision_change_person", "decision_change", ["person_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_decision_change_person", "decision_change")
    op.drop_table("decision_change")
    op.drop_table("admin_token")
    op.drop_index("ix_approval_record_person", "approval_record")
    op.drop_table("approval_record")
    op.drop_index("ix_sync_decision_waiting", "sync_decision")
    op.drop_index("ix_sync_decision_entitled", "sync_decision")
    for name in ("ended_at", "ended_by", "end_reason"):
        op.drop_column("access_override", name)
    for name in ("release_requested_by", "release_requested_at"):
        op.drop_column("sync_run", name)
    op.drop_column("audit_log", "actor")
    for name in ("active", "role", "location", "waiting_on", "approver", "approved_on", "chain"):
        op.drop_column("sync_decision", name)
