"""what the connector granted for whom (sync_holding), changes awaiting their
outcome (sync_pending), one writer per group (sync_lock)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "sync_holding",
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("entitlement", sa.String(length=64), nullable=False),
        sa.Column("member", sa.Text(), nullable=False),
        sa.Column("person_id", _ID, nullable=False),
        sa.Column("user_name", sa.String(length=512), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("target", "entitlement", "member"),
    )
    with op.batch_alter_table("sync_holding", schema=None) as batch_op:
        batch_op.create_index("ix_sync_holding_person", ["target", "entitlement", "person_id"], unique=False)
    op.create_table(
        "sync_pending",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("entitlement", sa.String(length=64), nullable=False),
        sa.Column("grp", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("member", sa.Text(), nullable=False),
        sa.Column("person_id", _ID, nullable=True),
        sa.Column("user_name", sa.String(length=512), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.String(length=64), nullable=True),
        sa.Column("journal_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_pending", schema=None) as batch_op:
        batch_op.create_index("ix_sync_pending_run_id", ["run_id"], unique=False)
    op.create_table(
        "sync_lock",
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("grp", sa.String(length=512), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", "grp"),
    )
    # What earlier versions granted: the people whose stored decision entitles them,
    # at the entry cached for them (a claim only: a holding whose member is not in
    # the group changes nothing).
    op.execute(
        sa.text(
            "INSERT INTO sync_holding (target, entitlement, member, person_id, since) "
            "SELECT d.target, s.entitlement, d.member, d.person_id, d.resolved_at "
            "FROM directory_entry d JOIN sync_decision s ON s.person_id = d.person_id "
            "WHERE s.entitled ON CONFLICT DO NOTHING"
        )
    )


def downgrade() -> None:
    op.drop_table("sync_lock")
    with op.batch_alter_table("sync_pending", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_pending_run_id")
    op.drop_table("sync_pending")
    with op.batch_alter_table("sync_holding", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_holding_person")
    op.drop_table("sync_holding")
