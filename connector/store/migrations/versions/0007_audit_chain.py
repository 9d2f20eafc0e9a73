"""the audit chain: each audit entry's place (seq), the previous entry's hash and its
own; the chain head every append locks; existing entries chained in id order; and
the bypasses of the append-only rule refused (SQLite REPLACE, PostgreSQL TRUNCATE)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from connector.store.chain import GENESIS, entry_hash

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SLICE = 2000  # entries read and chained at a time (bounded memory on a large trail)

# The table as this revision knows it (not the models', which may grow later).
_audit = sa.table(
    "audit_log",
    sa.column("id", sa.BigInteger()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("run_id", sa.Integer()),
    sa.column("journal_seq", sa.BigInteger()),
    sa.column("person_id", sa.String()),
    sa.column("user_name", sa.String()),
    sa.column("entitlement", sa.String()),
    sa.column("target", sa.String()),
    sa.column("member", sa.Text()),
    sa.column("action", sa.String()),
    sa.column("reasons", sa.JSON()),
    sa.column("evidence", sa.String()),
    sa.column("result", sa.String()),
    sa.column("detail", sa.Text()),
    sa.column("actor", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)

_REFUSED = "audit_log is append-only"
# SQLite fires DELETE triggers on the rows a REPLACE removes only under PRAGMA
# recursive_triggers, which a client chooses; a BEFORE INSERT trigger fires for every
# client. An entry never replaces another one, by id or by place in the chain.
_SQLITE_NO_REPLACE = (
    "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
    "WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id OR seq = NEW.seq) "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END"
)


def _sqlite_append_only() -> list[str]:
    return [
        f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END"
        for verb in ("UPDATE", "DELETE")
    ] + [_SQLITE_NO_REPLACE]


def _chain_existing(conn) -> tuple[int, str]:
    """Chain the entries already there, oldest id first. :returns: the head (seq, hash)."""
    seq, prev, after = 0, GENESIS, None
    columns = [c for c in _audit.c if c.name not in ("seq", "prev_hash", "hash")]
    while True:
        stmt = sa.select(*columns).order_by(_audit.c.id).limit(_SLICE)
        if after is not None:
            stmt = stmt.where(_audit.c.id > after)
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        if not rows:
            return seq, prev
        chained = []
        for row in rows:
            seq += 1
            row["seq"], row["prev_hash"] = seq, prev
            prev = entry_hash(row)
            chained.append({"key": row["id"], "seq": seq, "prev_hash": row["prev_hash"], "hash": prev})
        conn.execute(
            _audit.update()
            .where(_audit.c.id == sa.bindparam("key"))
            .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"), hash=sa.bindparam("hash")),
            chained,
        )
        after = rows[-1]["id"]


def upgrade() -> None:
    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    # Plain ADD COLUMN first (nullable): the existing entries are chained below.
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Chaining the old entries is the one UPDATE this table ever sees: the refusal is
    # lifted for it and restored in the same transaction.
    if postgresql:
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
    seq, last = _chain_existing(conn)
    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, :seq, :hash)").bindparams(seq=seq, hash=last)
    )
    if postgresql:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        for name in ("seq", "prev_hash", "hash"):
            op.alter_column("audit_log", name, nullable=False)
        op.create_index("ux_audit_log_seq", "audit_log", ["seq"], unique=True)
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION walkin_audit_append_only()"
        )
        return
    # SQLite cannot make a column NOT NULL in place: the table is rebuilt, which drops
    # its triggers; all of them are created again right after, in this transaction.
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        for name, kind in (("seq", sa.BigInteger()), ("prev_hash", sa.String(64)), ("hash", sa.String(64))):
            batch_op.alter_column(name, existing_type=kind, nullable=False)
        batch_op.create_index("ux_audit_log_seq", ["seq"], unique=True)
    for statement in _sqlite_append_only():
        op.execute(statement)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.drop_index("ux_audit_log_seq", "audit_log")
        for name in ("hash", "prev_hash", "seq"):
            op.drop_column("audit_log", name)
    else:
        with op.batch_alter_table("audit_log", schema=None) as batch_op:
            batch_op.drop_index("ux_audit_log_seq")
            for name in ("hash", "prev_hash", "seq"):
                batch_op.drop_column(name)
        for statement in _sqlite_append_only()[:2]:
            op.execute(statement)
    op.drop_table("audit_chain_head")
