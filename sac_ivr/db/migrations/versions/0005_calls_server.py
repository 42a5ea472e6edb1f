"""calls: the Asterisk server of each call (unique per server and linkedid), and who
follows each server's AMI

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sac_ivr.db.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UtcDateTime = sac_ivr.db.base.UtcDateTime


def upgrade() -> None:
    # Rows written before several servers existed were all on the one server,
    # named "default" (ami_servers empty).
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("server", sa.String(length=64), nullable=False, server_default="default")
        )
        batch_op.drop_constraint("uq_calls_linkedid", type_="unique")
        batch_op.create_unique_constraint("uq_calls_server_linkedid", ["server", "linkedid"])
    op.create_table(
        "ami_followers",
        sa.Column("server", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("alive_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server", name=op.f("pk_ami_followers")),
    )


def downgrade() -> None:
    op.drop_table("ami_followers")
    # Back to one server: the rows of any other server would break linkedid's
    # uniqueness; they are dropped (the downgrade loses them, as it must).
    op.execute(sa.text("DELETE FROM calls WHERE server <> 'default'"))
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint("uq_calls_server_linkedid", type_="unique")
        batch_op.create_unique_constraint("uq_calls_linkedid", ["linkedid"])
        batch_op.drop_column("server")
