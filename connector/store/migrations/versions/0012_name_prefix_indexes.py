"""on PostgreSQL, indexes that serve a name's prefix (LIKE 'smi%') under any collation

The console's search (sync/lookup.py) and SCIM's ``sw`` filters compare the start of
the lower-cased names. A plain btree index serves LIKE only under the C collation;
``text_pattern_ops`` serves it under any. SQLite's own indexes already do (its LIKE
is case-sensitive here, connector/store/engine.py), so it gets none.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: index → (table, column)
PREFIX_INDEXES = {
    "ix_scim_user_user_name_prefix": ("scim_user", "user_name"),
    "ix_scim_user_display_name_prefix": ("scim_user", "display_name"),
    "ix_scim_user_name_given_prefix": ("scim_user", "name_given"),
    "ix_scim_user_name_family_prefix": ("scim_user", "name_family"),
    "ix_scim_user_employee_number_prefix": ("scim_user", "employee_number"),
    "ix_scim_user_email_value_prefix": ("scim_user_email", "value"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (table, column) in PREFIX_INDEXES.items():
        op.create_index(name, table, [column], postgresql_ops={column: "text_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (table, _column) in PREFIX_INDEXES.items():
        op.drop_index(name, table_name=table)
