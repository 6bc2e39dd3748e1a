"""Per-origin consent: site presence is off for every origin until the visitor grants it.

A thin face over :class:`~hereabouts.sites.store.SiteStore` that also tells the manager
when a consent is revoked, so the visitor leaves that origin's rooms at once rather than
at the next heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable

from hereabouts.sites.rooms import normalize_origin
from hereabouts.sites.store import SiteStore


class Consent:
    """``grant(origin)``, ``revoke(origin)``, ``granted(origin)``; persisted at once."""

    def __init__(self, store: SiteStore, *, on_revoke: Callable[[str], None]) -> None:
        self._store = store
        self._on_revoke = on_revoke

    def grant(self, origin: str) -> None:
        self._store.grant(origin)

    def revoke(self, origin: str) -> None:
        """Forget the consent and leave every room of ``origin`` now (with signed leaves)."""
        normal = normalize_origin(origin)
        self._store.revoke(normal)
        self._on_revoke(normal)

    def granted(self, origin: str) -> bool:
        return self._store.granted(origin)
