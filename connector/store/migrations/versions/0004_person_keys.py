"""users' person keys, folded as the directory compares them, under a unique index;
store_setting records what they were computed from

Revision ID: 0004
Revises: 0003

The column is back-filled from the stored users with the default person key
(userName). Users whose userNames fold to one key (``bjensen`` and ``bjensen ``,
accepted before this revision) are left without one, so none of them resolves to a
directory entry, and one warning per collision names them: the upgrade never fails
on them. A store whose processes configure another ``sync.person_key`` is filled
again with it right after the upgrade (``connector.store.person_keys.align``).
"""

import sqlalchemy as sa
from alembic import op

from connector.store import person_keys

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_setting",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.add_column("scim_user", sa.Column("person_key", sa.String(length=512), nullable=True))
    op.create_index("ux_scim_user_person_key", "scim_user", ["person_key"], unique=True)
    person_keys.align(op.get_bind(), person_keys.key_path(person_keys.DEFAULT))


def downgrade() -> None:
    op.drop_index("ux_scim_user_person_key", table_name="scim_user")
    with op.batch_alter_table("scim_user", schema=None) as batch_op:
        batch_op.drop_column("person_key")
    op.drop_table("store_setting")
