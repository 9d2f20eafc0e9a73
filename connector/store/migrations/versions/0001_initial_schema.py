"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_journal",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("group_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("change_journal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_journal_user_id"), ["user_id"], unique=False)

    op.create_table(
        "scim_group",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("display_name", sa.String(length=512), nullable=False),
        sa.Column("display", sa.String(length=512), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("display_name"),
        sa.UniqueConstraint("external_id"),
    )
    with op.batch_alter_table("scim_group", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scim_group_last_modified"), ["last_modified"], unique=False)

    op.create_table(
        "scim_user",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("user_name", sa.String(length=512), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("display_name", sa.String(length=512), nullable=True),
        sa.Column("nick_name", sa.String(length=512), nullable=True),
        sa.Column("title", sa.String(length=512), nullable=True),
        sa.Column("user_type", sa.String(length=512), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("name_formatted", sa.String(length=512), nullable=True),
        sa.Column("name_family", sa.String(length=512), nullable=True),
        sa.Column("name_given", sa.String(length=512), nullable=True),
        sa.Column("employee_number", sa.String(length=512), nullable=True),
        sa.Column("department", sa.String(length=512), nullable=True),
        sa.Column("cost_center", sa.String(length=512), nullable=True),
        sa.Column("organization", sa.String(length=512), nullable=True),
        sa.Column("division", sa.String(length=512), nullable=True),
        sa.Column("manager_id", sa.String(length=512), nullable=True),
        sa.Column("job_code", sa.String(length=512), nullable=True),
        sa.Column("location_code", sa.String(length=512), nullable=True),
        sa.Column("assignment_start", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
        sa.UniqueConstraint("user_name"),
    )
    with op.batch_alter_table("scim_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scim_user_active"), ["active"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_display_name"), ["display_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_employee_number"), ["employee_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_job_code"), ["job_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_last_modified"), ["last_modified"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_location_code"), ["location_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_manager_id"), ["manager_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_name_family"), ["name_family"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_name_given"), ["name_given"], unique=False)

    op.create_table(
        "scim_group_member",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("member_type", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["scim_group.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "member_id"),
    )
    with op.batch_alter_table("scim_group_member", schema=None) as batch_op:
        batch_op.create_index("ix_scim_group_member_member", ["member_id"], unique=False)

    op.create_table(
        "scim_user_certification",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("course", sa.String(length=512), nullable=True),
        sa.Column("kind", sa.String(length=512), nullable=True),
        sa.Column("completed_on", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["scim_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scim_user_certification", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scim_user_certification_course"), ["course"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_certification_user_id"), ["user_id"], unique=False)

    op.create_table(
        "scim_user_email",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=True),
        sa.Column("type", sa.String(length=512), nullable=True),
        sa.Column("primary", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["scim_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scim_user_email", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scim_user_email_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_scim_user_email_value"), ["value"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scim_user_email", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_user_email_value"))
        batch_op.drop_index(batch_op.f("ix_scim_user_email_user_id"))

    op.drop_table("scim_user_email")
    with op.batch_alter_table("scim_user_certification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_user_certification_user_id"))
        batch_op.drop_index(batch_op.f("ix_scim_user_certification_course"))

    op.drop_table("scim_user_certification")
    with op.batch_alter_table("scim_group_member", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_group_member_member")

    op.drop_table("scim_group_member")
    with op.batch_alter_table("scim_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_user_name_given"))
        batch_op.drop_index(batch_op.f("ix_scim_user_name_family"))
        batch_op.drop_index(batch_op.f("ix_scim_user_manager_id"))
        batch_op.drop_index(batch_op.f("ix_scim_user_location_code"))
        batch_op.drop_index(batch_op.f("ix_scim_user_last_modified"))
        batch_op.drop_index(batch_op.f("ix_scim_user_job_code"))
        batch_op.drop_index(batch_op.f("ix_scim_user_employee_number"))
        batch_op.drop_index(batch_op.f("ix_scim_user_display_name"))
        batch_op.drop_index(batch_op.f("ix_scim_user_active"))

    op.drop_table("scim_user")
    with op.batch_alter_table("scim_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_group_last_modified"))

    op.drop_table("scim_group")
    with op.batch_alter_table("change_journal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_journal_user_id"))

    op.drop_table("change_journal")
