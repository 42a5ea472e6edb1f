"""The Asterisk servers to follow over AMI (setting ``ami_servers``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sac_ivr.calls.tables import DEFAULT_SERVER
from sac_ivr.config import ConfigError, Settings

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class AmiServer:
    name: str  # short and stable: stored with every call of this server
    host: str
    port: int


def ami_servers(settings: Settings) -> list[AmiServer]:
    """``ami_servers`` (``NAME=HOST:PORT`` each), or the one server ``default`` at
    ``ami_host:ami_port``; raises ConfigError naming the setting."""
    if not settings.ami_servers:
        return [AmiServer(DEFAULT_SERVER, settings.ami_host, settings.ami_port)]
    servers: list[AmiServer] = []
    for item in settings.ami_servers:
        name, sep, address = str(item).partition("=")
        name, address = name.strip(), address.strip()
        host, colon, port_text = address.rpartition(":")
        host = host.strip().strip("[]")
        if not sep or not _NAME.match(name) or not colon or not host:
            raise ConfigError(f"ami_servers: {item!r} is not NAME=HOST:PORT")
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"ami_servers: {item!r}: the port is not a number") from None
        if not 0 < port <= 65535:
            raise ConfigError(f"ami_servers: {item!r}: {port} is not a TCP port")
        if any(s.name == name for s in servers):
            raise ConfigError(f"ami_servers: the name {name!r} is given twice")
        servers.append(AmiServer(name, host, port))
    return servers
