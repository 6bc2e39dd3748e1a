"""Whose address a connection has: the TCP peer's, unless a trusted proxy forwards another.

uvicorn applies this to every ASGI request (``proxy_headers`` with the addresses of
:attr:`~hereabouts.config.HttpLimits.trusted_proxies`). The site hub's sockets are taken
over before ASGI (:mod:`hereabouts.web.hub_socket`), so they get the same answer here:
``X-Forwarded-For`` is read only when the TCP peer is a listed proxy, from the right, and
the first address that is not itself a listed proxy is the client's. Per-address budgets
depend on it: believing the header from anyone would let every client pick its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TypeAlias

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies whose forwarding headers are believed (addresses or networks)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks: list[Network] = [
            ipaddress.ip_network(entry.strip(), strict=False) for entry in entries
        ]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, peer: str | None, forwarded_for: Iterable[bytes]) -> str | None:
        """The client's address, given the TCP ``peer`` and every ``X-Forwarded-For``
        header value in order."""
        if peer is None or not self.trusts(peer):
            return peer
        hops = [
            _host(hop.strip())
            for value in forwarded_for
            for hop in value.decode("latin-1").split(",")
            if hop.strip()
        ]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


def _host(hop: str) -> str:
    """``hop`` without a port (``1.2.3.4:80``, ``[::1]:80``)."""
    if hop.startswith("[") and "]" in hop:
        return hop[1 : hop.index("]")]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop
