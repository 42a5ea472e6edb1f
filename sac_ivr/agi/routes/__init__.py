"""AGI routes: one module per route, each with ``async def handle(call, core)``; the
call path's feature (:mod:`sac_ivr.agi.feature`) names them."""
