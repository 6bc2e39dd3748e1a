"""Which page origins the browser hub serves, and which origin a connection counts for.

Rules:

* **A connection belongs to its WebSocket ``Origin``.** Browsers send the page's origin on
  every WebSocket handshake and scripts cannot change it, so the hub counts a browser only
  in rooms whose keys derive from that origin (:meth:`OriginPolicy.counting_origin`; the
  hub then checks every watched room key against it). A page on one site cannot make its
  visitors count in another site's rooms.
* **Allowed origins.** :attr:`~hereabouts.config.HubConfig.allowed_origins` lists the page
  origins served. Empty (the default): any origin while the node's HTTP server listens on
  loopback only, none otherwise. ``*``: any origin. Always allowed: the hub's own origin
  (the handshake's ``Origin`` names the host the browser connected to, its ``Host``), so
  the pages the node serves itself (``/demo/site``) work however it is reached. A page
  elsewhere cannot pass for it: a browser sets both headers.
* **Aliases.** :attr:`~hereabouts.config.HubConfig.origin_aliases` lets a page origin count
  in another origin's rooms (a site served under two names). Nothing else does.
* **No ``Origin``, or the opaque ``null``** (a sandboxed frame, a ``file:`` page): refused.
  Programs outside a browser must send the origin whose rooms they count in; they can send
  any, so the origin binds browsers only. Per-address budgets bound the rest.
* The origin is kept with the connection and nowhere else: never logged, never sent, never
  republished. Refusals name their reason only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

from hereabouts.config import HubConfig
from hereabouts.errors import ConfigError, RemoteError
from hereabouts.sites.errors import InvalidOrigin
from hereabouts.sites.rooms import normalize_origin

ANY_ORIGIN: Final = "*"
"""In ``allowed_origins``: every origin."""


class OriginMissing(RemoteError):
    """A handshake without an ``Origin`` header: the hub cannot tell whose rooms it may count."""

    reason = "origin_missing"


class OriginInvalid(RemoteError):
    """An ``Origin`` that names no countable origin (``null``, garbage)."""

    reason = "origin_invalid"


class OriginNotAllowed(RemoteError):
    """An ``Origin`` this hub does not serve."""

    reason = "origin_not_allowed"


class WrongOrigin(RemoteError):
    """A ``watch`` naming a room key that is not the key of that room at this connection's
    origin: a page trying to count in another site's rooms (or a widget whose
    ``data-origin`` is neither its page's origin nor an alias of it)."""

    reason = "wrong_origin"


def is_loopback_host(host: str | None) -> bool:
    """Whether an HTTP server bound to ``host`` is reachable from this machine only."""
    if host is None:
        return False
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _names_host(origin: str, host: str | None) -> bool:
    """Whether the normalised ``origin`` is ``scheme://<host>`` for the ``Host`` header
    ``host`` (port included when not the scheme's default, as both headers write it)."""
    if not host or any(ch in host for ch in "/?#@\\ "):
        return False  # a Host header is an authority: host[:port], nothing more
    try:
        return origin == normalize_origin(f"{origin.split('://', 1)[0]}://{host.strip()}")
    except InvalidOrigin:
        return False


def _normal(origin: str, what: str) -> str:
    try:
        return normalize_origin(origin)
    except InvalidOrigin as exc:
        raise ConfigError(f"{what}: {exc}") from None


class OriginPolicy:
    """Decides, at each handshake, which origin's rooms the connection may count in."""

    def __init__(
        self, *, allowed: Iterable[str] | None, aliases: Mapping[str, str] | None = None
    ) -> None:
        """``allowed``: normalisable origins, or None for any origin; ``aliases``: page
        origin → counted origin. Invalid origins raise :class:`ConfigError`."""
        self._any = allowed is None
        self._allowed = frozenset(
            _normal(origin, "allowed origin") for origin in (allowed or ())
        )
        self._aliases = {
            _normal(page, "origin alias"): _normal(counted, "origin alias")
            for page, counted in (aliases or {}).items()
        }

    @classmethod
    def for_hub(cls, settings: HubConfig, *, listen_host: str | None) -> OriginPolicy:
        """The policy of ``settings``, for a hub whose HTTP server listens on
        ``listen_host`` (None: unknown, treated as reachable from elsewhere)."""
        listed = settings.allowed_origins
        if ANY_ORIGIN in listed:
            allowed: Iterable[str] | None = None
        elif listed:
            allowed = listed
        else:
            allowed = None if is_loopback_host(listen_host) else ()
        return cls(allowed=allowed, aliases=dict(settings.origin_aliases))

    @property
    def any_origin(self) -> bool:
        return self._any

    @property
    def serves_nobody(self) -> bool:
        """True when no origin is allowed but the hub's own (a hub beyond loopback with none
        configured)."""
        return not self._any and not self._allowed

    def counting_origin(self, header: str | None, *, host: str | None = None) -> str:
        """The normalised origin whose rooms a connection with this ``Origin`` header counts
        in; or :class:`OriginMissing`, :class:`OriginInvalid`, :class:`OriginNotAllowed`.
        ``host`` is the handshake's ``Host`` header: an origin naming it is the hub's own."""
        if header is None or not header.strip():
            raise OriginMissing("the handshake carried no Origin")
        try:
            origin = normalize_origin(header)
        except InvalidOrigin:
            raise OriginInvalid("the handshake's Origin names no countable origin") from None
        if not self._any and origin not in self._allowed and not _names_host(origin, host):
            raise OriginNotAllowed("this hub does not serve the handshake's origin")
        return self._aliases.get(origin, origin)

    def describe(self) -> dict[str, object]:
        """For ``/healthz``: how many origins are served, never which."""
        return {
            "any_origin": self._any,
            "allowed_origins": len(self._allowed),
            "aliases": len(self._aliases),
        }
