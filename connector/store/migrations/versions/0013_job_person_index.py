"""an index of the sync jobs by person: a "sync now" page finds the job covering its request

Done jobs stay in the table; without it, each refresh of the page (every 2 s while
it waits) read all of them.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sync_job_person", "sync_job", ["person_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_sync_job_person", table_name="sync_job")
