"""an index of the holdings in userName order: the members report pages through it

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sync_holding_name", "sync_holding", ["target", "entitlement", "user_name", "person_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_holding_name", table_name="sync_holding")
