"""Change notifications (PostgreSQL only): every insert, update or delete of an execution row
notifies `stigmer_execution_changed` with its id, so the watches of every replica hear each write
when its transaction commits (store/changes.py listens). SQLite is one process: nothing to add."""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The channel is store/changes.py's CHANNEL, written out: a migration must not change when the
# code does.
_FUNCTION = """
CREATE OR REPLACE FUNCTION stigmer_notify_execution_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('stigmer_execution_changed', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
_TRIGGER = """
CREATE TRIGGER executions_notify_changed
AFTER INSERT OR UPDATE OR DELETE ON executions
FOR EACH ROW EXECUTE FUNCTION stigmer_notify_execution_changed()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS executions_notify_changed ON executions")
    op.execute("DROP FUNCTION IF EXISTS stigmer_notify_execution_changed()")
