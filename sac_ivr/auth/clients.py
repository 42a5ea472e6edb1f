"""Who the HTTP client is, by address: the key of the rate limits and the address
written to the access log.

The connecting address (``request.remote``) is the client, unless it is one of the
reverse proxies the operator lists in ``trusted_proxies``: then ``X-Forwarded-For``
is read from the right, skipping the trusted proxies, and the first other address is
the client (an address a client wrote itself further left is never believed).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web

from sac_ivr.config import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"  # a Unix socket, or a transport already closed
XFF_MAX = 2048  # longest X-Forwarded-For read (a proxy chain is a few addresses)


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` as networks; ConfigError naming the entry that is not one."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {item!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


@functools.lru_cache(maxsize=8)
def _networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(items)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def client_address(request: web.Request, trusted_proxies: Sequence[str] = ()) -> str:
    """The client's address as text (see the module docstring)."""
    remote = _address(request.remote or "")
    if remote is None:
        return UNKNOWN
    networks = _networks(tuple(trusted_proxies))
    if not networks or not _trusted(remote, networks):
        return str(remote)
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))[:XFF_MAX]
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:
            break  # garbage: trust nothing further left
        if not _trusted(address, networks):
            return str(address)
    return str(remote)


def limit_key(address: str) -> str:
    """The rate-limit key of an address: IPv6 clients by their /64 (one household or
    host usually holds a whole /64), IPv4 by the address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
