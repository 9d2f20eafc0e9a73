"""the notices' outbox: each reminder or notice once per (kind, whom, occasion,
entitlement), drained by the workers

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
    op.create_table(
        "notice_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("about", sa.String(length=128), nullable=False),
        sa.Column("occasion", sa.String(length=64), nullable=False),
        sa.Column("entitlement", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recipients", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=256), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.UniqueConstraint("kind", "about", "occasion", "entitlement", name="uq_notice_once"),
    )
    op.create_index("ix_notice_due", "notice_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_notice_outbox_sent_at", "notice_outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_notice_outbox_sent_at", table_name="notice_outbox")
    op.drop_index("ix_notice_due", table_name="notice_outbox")
    op.drop_table("notice_outbox")
