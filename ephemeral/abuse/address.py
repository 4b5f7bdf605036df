"""The client's address: the peer, or behind trusted proxies the rightmost untrusted hop."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiohttp import web

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNIX = "unix"  # how trusted_proxies names a peer on a unix socket (no address of its own)


@dataclass(frozen=True)
class Trusted:
    networks: tuple[Network, ...]
    unix: bool

    def covers(self, ip: Address | None) -> bool:
        """None is a peer on a unix socket."""
        if ip is None:
            return self.unix
        return any(ip in net for net in self.networks)


def parse_trusted(value: str) -> Trusted:
    """Comma-separated addresses or networks (`10.0.0.0/8`, `::1`), and `unix`."""
    networks: list[Network] = []
    unix = False
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item == UNIX:
            unix = True
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an address or a network") from None
    return Trusted(tuple(networks), unix)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, `v4:port` or `[v6]:port`; None if it is not one."""
    candidate = text.strip()
    if candidate.startswith("[") and "]" in candidate:
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def partition(ip: Address | None) -> str:
    """The rate-limit key of an address: IPv6 is kept to its /64, what one subscriber gets."""
    if ip is None:
        return UNIX
    if isinstance(ip, ipaddress.IPv6Address):
        return f"{ipaddress.IPv6Network((ip, 64), strict=False).network_address}/64"
    return str(ip)


def client_ip(request: web.BaseRequest, trusted: Trusted) -> Address | None:
    """X-Forwarded-For counts only when the peer is a trusted proxy; walk it from the right,
    stopping at the first hop that is not a trusted proxy (hops left of it are the client's
    word, and a client can write anything there)."""
    peer = parse_address(request.remote) if request.remote else None
    if not trusted.covers(peer):
        return peer
    hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
    client = peer
    for hop in reversed([h for h in hops if h.strip()]):
        ip = parse_address(hop)
        if ip is None:
            break  # garbage: the last hop we could trust is the best we know
        client = ip
        if not trusted.covers(ip):
            break
    return client


def client_address(request: web.BaseRequest, trusted: Trusted) -> str:
    """The partition key of the request's client for per-address limits."""
    return partition(client_ip(request, trusted))
