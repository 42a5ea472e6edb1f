"""AGI routes: one module per route; the module's name is the route's name.

Each module has ``async def handle(call, core)``. To add a route, write the
module and list it in ROUTE_MODULES.
"""

from sac_ivr.agi.routes import announce, health, protocol, subject

ROUTE_MODULES = (protocol, announce, subject, health)
