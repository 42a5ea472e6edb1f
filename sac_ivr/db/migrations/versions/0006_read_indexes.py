"""reads at scale: indexes for the reports and the listings

- ``protocols (issued_at, subject, department, status, due_at, resolved_at)``
  (replaces ``protocols (issued_at)``): the requests opened in a period, grouped
  from the index alone; the listings' newest-first order as before;
- ``protocols (resolved_at, issued_at, status)``: requests answered in a period;
- ``protocols (due_at, id, agent, status) WHERE status IN (pending…)``: the
  requests not yet answered, soonest due first, counted and grouped by agent from
  the index alone;
- ``protocols (issued_at, id, due_at, status) WHERE status IN (pending…)``: the
  protocols listing's overdue / due-soon filters, newest first, without sorting
  every overdue request;
- ``protocol_events (at, actor, from_status, to_status, protocol_id, kind) WHERE
  kind = 'status'``: the status changes of a period, from the index alone (a third
  of the timeline; smaller than ``(kind, at)`` over every entry, and covering);
- ``calls (agent_name, started_at)`` (replaces ``calls (agent_name)``) and
  ``calls (agent_interface, started_at, agent_name)``: an agent's calls (by member
  name or interface), counted from the indexes alone and paged newest first.

On PostgreSQL the indexes are built with ``CREATE INDEX CONCURRENTLY`` in alembic's
``autocommit_block`` (outside the migration's transaction), so issuing numbers and
the call log go on while they are built; a build that fails leaves an INVALID index
to drop by hand before running the upgrade again. Measured on the 2-core bench
machine (PostgreSQL 15, 128 MB shared_buffers; BENCHMARKS.md, "Reads at scale"):
the whole upgrade takes 46-57 s at 5M protocols (44M timeline entries, 5M calls) and
13-17 s at 1M. On SQLite the indexes are built in the migration's usual way (writers
wait meanwhile: 15 s at 1M protocols), then ``ANALYZE`` gives the query planner the
statistics it needs to choose them (SQLite gathers none by itself).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of protocols.tables.PENDING_WHERE at this revision.
PENDING_WHERE = "status IN ('open', 'forwarded', 'in_progress', 'waiting_customer')"

INDEXES = (
    (
        "ix_protocols_issued_at_cover",
        "protocols",
        "issued_at, subject, department, status, due_at, resolved_at",
        None,
    ),
    ("ix_protocols_resolved_at", "protocols", "resolved_at, issued_at, status", None),
    ("ix_protocols_pending_due", "protocols", "due_at, id, agent, status", PENDING_WHERE),
    ("ix_protocols_pending_issued", "protocols", "issued_at, id, due_at, status", PENDING_WHERE),
    (
        "ix_protocol_events_status_at",
        "protocol_events",
        "at, actor, from_status, to_status, protocol_id, kind",
        "kind = 'status'",
    ),
    ("ix_calls_agent_name_started_at", "calls", "agent_name, started_at", None),
    (
        "ix_calls_agent_interface_started_at",
        "calls",
        "agent_interface, started_at, agent_name",
        None,
    ),
)


# Prefixes of the new ones.
REPLACED = ("ix_calls_agent_name", "ix_protocols_issued_at")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        with op.get_context().autocommit_block():
            for name, table, columns, where in INDEXES:
                op.execute(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({columns})"
                    + (f" WHERE {where}" if where else "")
                )
            for name in REPLACED:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute("ANALYZE protocols, protocol_events, calls")
        return
    for name, table, columns, where in INDEXES:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"
            + (f" WHERE {where}" if where else "")
        )
    for name in REPLACED:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute("ANALYZE")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_calls_agent_name ON calls (agent_name)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_protocols_issued_at ON protocols (issued_at)")
    for name, *_ in reversed(INDEXES):
        op.execute(f"DROP INDEX IF EXISTS {name}")
