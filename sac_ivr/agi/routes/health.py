"""Route ``health``: a monitoring probe over AGI itself.

Touches nothing on the channel but two variables: ``SAC_RESULT`` (OK when the
database answers) and ``SAC_HEALTH`` (a short reason).
"""

from __future__ import annotations

from sqlalchemy import text

from sac_ivr.agi import channel_vars
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.core import Core


async def handle(call: AgiCall, core: Core) -> None:
    try:
        async with core.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        await call.set_variable("SAC_HEALTH", f"database: {type(exc).__name__}")
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    await call.set_variable("SAC_HEALTH", "ok")
    await call.set_variable(channel_vars.RESULT, "OK")
