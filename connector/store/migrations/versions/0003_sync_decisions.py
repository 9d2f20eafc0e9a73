"""stored sync decisions; a covering index of user versions; directory_entry
without rowid on SQLite

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_decision",
        sa.Column("entitlement", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("decided_on", sa.String(length=10), nullable=False),
        sa.Column("recheck_on", sa.String(length=10), nullable=True),
        sa.Column("entitled", sa.Boolean(), nullable=False),
        sa.Column("by_override", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("valid_through", sa.String(length=10), nullable=True),
        sa.Column("entitled_since", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("entitlement", "person_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("scim_user", schema=None) as batch_op:
        batch_op.create_index("ix_scim_user_id_version", ["id", "version"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        # Rebuilt as a WITHOUT ROWID table (its rows then live in the key's B-tree).
        with op.batch_alter_table(
            "directory_entry", recreate="always", table_kwargs={"sqlite_with_rowid": False}
        ) as batch_op:
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("directory_entry", recreate="always", table_kwargs={"sqlite_with_rowid": True}):
            pass
    with op.batch_alter_table("scim_user", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_user_id_version")
    op.drop_table("sync_decision")
