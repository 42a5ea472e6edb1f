"""SQLite's query planner statistics, refreshed when the web process starts.

SQLite never gathers statistics by itself: without them it guesses how selective
each index is, and at a million protocols a guess can pick a full scan. Migration
0006 runs a full ``ANALYZE``; each start of the web process runs a bounded one
(``PRAGMA analysis_limit``: about 1,000 rows per index, tens of milliseconds at 1M
protocols), so the statistics follow the data as it grows or retention removes it.
PostgreSQL's autovacuum keeps its own statistics.
"""

from __future__ import annotations

import logging

from sac_ivr.core import Core

log = logging.getLogger(__name__)
ANALYSIS_LIMIT = 1000


async def refresh(core: Core) -> None:
    if core.engine.dialect.name != "sqlite":
        return None
    async with core.engine.begin() as conn:
        await conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        try:
            await conn.exec_driver_sql("ANALYZE")
        finally:
            await conn.exec_driver_sql("PRAGMA analysis_limit=0")
    log.info("SQLite statistics refreshed (ANALYZE, analysis_limit=%d)", ANALYSIS_LIMIT)
    return None
