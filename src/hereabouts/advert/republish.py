"""Keeps this node's document fresh: the asyncio driver around the re-publish policy.

The decisions (when) come from :class:`hereabouts.core.advert_schedule.RepublishPolicy`;
the work (what) from :func:`hereabouts.advert.publish.publish_presence`, which links each
new issue to the previous one with a consistency proof when the index only grew. This
module only connects them to a clock and a sleep, both injectable, so tests step through
time with :meth:`Republisher.step` and never sleep.

Usage::

    republisher = Republisher(identity=ident, store=store, endpoints={...},
                              index_source=lambda: load_index(path))
    async with asyncio.TaskGroup() as tg:
        tg.create_task(republisher.run(), name="presence-republisher")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from hereabouts.advert.document import DEFAULT_LIFETIME_S
from hereabouts.advert.merkle import MerkleTree
from hereabouts.advert.publish import Published, publish_presence
from hereabouts.advert.store import DEFAULT_ALIAS, PresenceStore
from hereabouts.advert.timestamps import parse_time, utc_now
from hereabouts.core.advert_schedule import PublishNow, RepublishPolicy
from hereabouts.errors import HereaboutsError
from hereabouts.identity import Identity

log = logging.getLogger(__name__)


class Republisher:
    """Re-publishes one alias's document before it expires."""

    def __init__(
        self,
        *,
        identity: Identity,
        store: PresenceStore,
        endpoints: Mapping[str, str],
        alias: str = DEFAULT_ALIAS,
        relays: Iterable[Mapping[str, str]] = (),
        lifetime_s: int = DEFAULT_LIFETIME_S,
        ttl_seconds: int | None = None,
        index_source: Callable[[], MerkleTree] | None = None,
        merkle_root: str | None = None,
        policy: RepublishPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_publish: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        """``index_source`` is called at each publish so the root follows the index;
        ``merkle_root`` is the alternative for roots computed elsewhere. ``on_publish`` is
        awaited with each new document (e.g. to push it to relays)."""
        self.identity = identity
        self.store = store
        self.alias = alias
        self.endpoints = dict(endpoints)
        self.relays = [dict(r) for r in relays]
        self.lifetime_s = lifetime_s
        self.ttl_seconds = ttl_seconds
        self.index_source = index_source
        self.merkle_root = merkle_root
        self.policy = policy or RepublishPolicy()
        self.clock = clock
        self.on_publish = on_publish

    def _current_times(self) -> tuple[datetime | None, datetime | None]:
        doc = self.store.latest(self.alias)
        if doc is None or doc.get("did") != self.identity.did:
            return None, None
        try:
            return parse_time(doc["issued_at"]), parse_time(doc["expires_at"])
        except (KeyError, ValueError):
            return None, None

    def step(self, now: datetime) -> tuple[Published | None, datetime]:
        """Publish if due at ``now``; returns what was published and when to look again."""
        issued, expires = self._current_times()
        decision = self.policy.decide(now, issued, expires)
        if not isinstance(decision, PublishNow):
            return None, decision.at
        try:
            index = self.index_source() if self.index_source is not None else None
            published = publish_presence(
                identity=self.identity,
                store=self.store,
                alias=self.alias,
                endpoints=self.endpoints,
                issued_at=now,
                relays=self.relays,
                lifetime_s=self.lifetime_s,
                ttl_seconds=self.ttl_seconds,
                index=index,
                merkle_root=None if index is not None else self.merkle_root,
            )
        except (HereaboutsError, OSError) as exc:
            log.warning("presence publish for %s failed: %s", self.alias, exc)
            return None, self.policy.after_failure(now, expires)
        new_issued = parse_time(published.doc["issued_at"])
        new_expires = parse_time(published.doc["expires_at"])
        return published, self.policy.due_at(new_issued, new_expires)

    async def run(
        self, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """Publish and re-publish until cancelled."""
        while True:
            published, wake = self.step(self.clock())
            if published is not None and self.on_publish is not None:
                try:
                    await self.on_publish(published.doc)
                except HereaboutsError as exc:
                    log.warning("presence on_publish hook failed: %s", exc)
            await sleep(max(0.0, (wake - self.clock()).total_seconds()))
