"""Hub workers telling each other which signatures they have checked.

Workers share counts through the plaza, as separate hubs do: a heartbeat a browser sends
to worker A is verified there, republished, and read back by worker B, which counts the
same room for its own browsers. B would check the same signature again, and the whole
point of a second worker (one signature check per heartbeat per core) would be lost: in
a room watched on every worker each worker verifies every heartbeat.

So each worker sends the ids (SHA-256 of the signed body, :func:`hereabouts.wire.event_id`)
of the events it verified to every sibling over a socket pair the parent made for the two
of them, and a sibling adds them to its process's
:data:`~hereabouts.sites.manager.verified_ids`, which every reader already consults before
checking a signature. The plaza copy is then opened with every other check (envelope,
canonical bytes, epoch, clock, room, replays) and only the signature check is skipped.

Why this is safe: an id names the exact body bytes whose signature has verified, and the
sockets are private to processes of one ``hereabouts up``. Why it is cheap: ids of one
event-loop turn travel in one datagram, sent before the turn's plaza writes, so a sibling
usually has them before the plaza copy arrives; when it has not, it checks the signature
itself, as a separate hub would. Nothing waits for a sibling: a full socket drops hints.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Final

from hereabouts.metrics import Counters
from hereabouts.sites.manager import verified_ids

COUNTER: Final = "site_hub_sibling_ids"

ID_BYTES: Final = 32
"""A SHA-256 digest: what travels for one event id (its hexadecimal form is twice that)."""

MAX_IDS_PER_DATAGRAM: Final = 2048
"""Ids per datagram at most (64 KiB); a loop turn with more sends several."""


class SiblingHints:
    """The sockets to this worker's siblings: ids out, ids in."""

    def __init__(self, counters: Counters) -> None:
        """Ids sent, received and dropped (a sibling not reading) are counted in
        ``counters`` as ``site_hub_sibling_ids{direction}``."""
        self._peers: dict[int, socket.socket] = {}
        self._pending: list[bytes] = []
        self._scheduled = False
        self._counters = counters
        counters.describe(
            COUNTER, "Ids of checked signatures shared between hub workers", "direction"
        )

    def link(self, index: int, peer: socket.socket) -> None:
        """Use ``peer`` for the sibling ``index`` (a restarted sibling's replaces the old)."""
        self.unlink(index)
        peer.setblocking(False)
        self._peers[index] = peer
        asyncio.get_running_loop().add_reader(peer, self._read, index, peer)

    def unlink(self, index: int) -> None:
        old = self._peers.pop(index, None)
        if old is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(old)
            old.close()

    def close(self) -> None:
        for index in list(self._peers):
            self.unlink(index)

    def verified(self, event_id: str) -> None:
        """An event this worker verified: tell the siblings at the end of this loop turn."""
        if not self._peers:
            return
        self._pending.append(bytes.fromhex(event_id))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_IDS_PER_DATAGRAM):
            datagram = b"".join(pending[start : start + MAX_IDS_PER_DATAGRAM])
            for index, peer in list(self._peers.items()):
                try:
                    peer.send(datagram)
                    self._counters.add(COUNTER, "sent", len(datagram) // ID_BYTES)
                except BlockingIOError:  # it will check these signatures itself
                    self._counters.add(COUNTER, "dropped", len(datagram) // ID_BYTES)
                except OSError:
                    self.unlink(index)  # the sibling is gone; its restart brings a new pair

    def _read(self, index: int, peer: socket.socket) -> None:
        while True:
            try:
                datagram = peer.recv(MAX_IDS_PER_DATAGRAM * ID_BYTES)
            except BlockingIOError:
                return
            except OSError:
                datagram = b""
            if not datagram:
                if self._peers.get(index) is peer:
                    self.unlink(index)
                return
            usable = len(datagram) - len(datagram) % ID_BYTES
            for start in range(0, usable, ID_BYTES):
                verified_ids.add(datagram[start : start + ID_BYTES].hex())
            self._counters.add(COUNTER, "received", usable // ID_BYTES)
