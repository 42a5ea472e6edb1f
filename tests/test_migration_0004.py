"""Migration 0004 (privacy and access) on a database that already has tokens: they
keep working, a revoked token's name becomes free, and the migrated schema is the
models' (nothing for alembic to autogenerate)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from sac_ivr.auth.services import create_token, identify
from sac_ivr.db.engine import create_engine, make_sessionmaker
from sac_ivr.db.migrate import alembic_config, upgrade_async
from sac_ivr.features import table_metadata


async def test_upgrade_keeps_tokens_and_frees_revoked_names(db_url: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0003")
    engine = create_engine(db_url)
    try:
        sm = make_sessionmaker(engine)
        async with engine.begin() as conn:
            for name, revoked in (("ana", True), ("bia", False)):
                await conn.execute(
                    text(
                        "INSERT INTO api_tokens (name, role, token_sha256, created_at, revoked_at)"
                        " VALUES (:n, 'agent', :h, :c, :r)"
                    ),
                    {
                        "n": name,
                        "h": name * 16,
                        "c": datetime.now(UTC),
                        "r": datetime.now(UTC) if revoked else None,
                    },
                )
        await engine.dispose()
        await upgrade_async(db_url)
        bia = await create_token(sm, "bia2", "agent")
        ana = await create_token(sm, "ana", "agent")  # the revoked "ana" freed its name
        assert (await identify(sm, ana)).name == "ana"
        assert (await identify(sm, bia)).name == "bia2"
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT name FROM api_tokens ORDER BY id"))).all()
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), table_metadata()
                )
            )
        assert [n for (n,) in names] == ["ana", "bia", "bia2", "ana"]
        assert diff == []
    finally:
        await engine.dispose()
    # And back down (the revoked "ana" renamed, names unique again), and up again.
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0003")
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT id, name FROM api_tokens ORDER BY id"))).all()
    finally:
        await engine.dispose()
    assert [n for _, n in names] == [f"ana#{names[0][0]}", "bia", "bia2", "ana"]
    await upgrade_async(db_url)
