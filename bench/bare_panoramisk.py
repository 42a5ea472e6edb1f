"""Baseline for bench/agi_calls.py: stock panoramisk, one route that only plays one
file. Run as ``python -m bench.bare_panoramisk PORT``; prints READY when listening."""

from __future__ import annotations

import asyncio
import sys

from panoramisk import fast_agi


async def play_one_file(request: fast_agi.Request) -> None:
    await request.send_command('STREAM FILE sac/protocol-intro ""')


async def main(port: int) -> None:
    app = fast_agi.Application()
    app.add_route("protocol", play_one_file)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=1024)
    print(f"READY agi={server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
