"""groups kept in the store itself, for the embedded target (evaluation and the demo)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embedded_member",
        sa.Column("group", sa.String(length=128), primary_key=True),
        sa.Column("member", sa.String(length=64), primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("embedded_member")
