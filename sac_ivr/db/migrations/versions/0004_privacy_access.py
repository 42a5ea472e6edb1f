"""privacy and access: token expiry, one active token per name, panel sessions,
shared keys, the access log, public lookup counts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sac_ivr.db.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UtcDateTime = sac_ivr.db.base.UtcDateTime


def upgrade() -> None:
    # Tokens: an optional expiry; a name is unique among active tokens only, so a
    # revoked token's holder can get a new one under the same name.
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("uq_api_tokens_name", type_="unique")
    op.create_index(
        "uq_api_tokens_active_name",
        "api_tokens",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )

    op.create_table(
        "panel_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_sha256", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_panel_sessions_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_sessions")),
        sa.UniqueConstraint("session_sha256", name=op.f("uq_panel_sessions_session_sha256")),
    )
    op.create_index(
        op.f("ix_panel_sessions_expires_at"), "panel_sessions", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_panel_sessions_token_id"), "panel_sessions", ["token_id"], unique=False
    )

    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )

    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("phone_hash", sa.String(length=32), nullable=True),
        sa.Column("document_hash", sa.String(length=32), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    for column in ("action", "actor", "at", "document_hash", "phone_hash"):
        op.create_index(op.f(f"ix_access_log_{column}"), "access_log", [column], unique=False)

    op.create_table(
        "access_log_protocols",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["access_log.id"],
            name=op.f("fk_access_log_protocols_entry_id_access_log"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", "number", name=op.f("pk_access_log_protocols")),
    )
    op.create_index(
        op.f("ix_access_log_protocols_number"), "access_log_protocols", ["number"], unique=False
    )

    op.create_table(
        "public_lookup_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "outcome", name=op.f("pk_public_lookup_counts")),
    )


def downgrade() -> None:
    op.drop_table("public_lookup_counts")
    op.drop_index(op.f("ix_access_log_protocols_number"), table_name="access_log_protocols")
    op.drop_table("access_log_protocols")
    for column in ("action", "actor", "at", "document_hash", "phone_hash"):
        op.drop_index(op.f(f"ix_access_log_{column}"), table_name="access_log")
    op.drop_table("access_log")
    op.drop_table("app_secrets")
    op.drop_index(op.f("ix_panel_sessions_token_id"), table_name="panel_sessions")
    op.drop_index(op.f("ix_panel_sessions_expires_at"), table_name="panel_sessions")
    op.drop_table("panel_sessions")
    op.drop_index("uq_api_tokens_active_name", table_name="api_tokens")
    # Names were unique among all tokens before: a revoked token that shares its name
    # with a newer one is renamed NAME#ID.
    op.execute(
        "UPDATE api_tokens SET name = substr(name, 1, 50) || '#' || id "
        "WHERE revoked_at IS NOT NULL AND name IN "
        "(SELECT name FROM api_tokens GROUP BY name HAVING count(*) > 1)"
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_api_tokens_name", ["name"])
        batch_op.drop_column("expires_at")
