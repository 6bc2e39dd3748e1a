"""Pulses on the plaza: sign and send ours, check and watch everyone's.

The decisions are :class:`~hereabouts.core.pulse.PulseWatch`'s; this module carries them
out for a node (see :mod:`hereabouts.core.pulse` for why pulses exist):

* **Sending.** Every interval, one QoS 0 publish on ``hereabouts/v1/pulse/<our did>``:
  ``signature || msgpack([boot id, sequence, sent at, interval])``, about 150 bytes with
  the topic. The signature covers a context string and our DID too, so a pulse can be
  neither taken for anything else nor moved to another topic. Nothing is sent while the
  plaza is away (at most once means no queue). Stealth nodes send none.
* **Receiving.** A pulse is looked at only if its topic names a key the projection already
  knows (an unknown key costs a dictionary look-up, not a signature check), then verified;
  it counts only for the boot the projection holds for that key (its latest hey_there),
  and the watch refuses replays within the boot. Our own pulses coming back tell us the
  broker still carries us.
* **Watching.** Four times a second the watch says who went quiet (MISSING in our view
  until their next pulse) and whether we are cut off. Cut off, we log it, ``/healthz`` says
  so (with the time our view was last live), and a second later, if nothing at all has
  arrived for 3 s either (a slow broker still delivers something), we end the connection and
  connect again: a cut link is found by the reconnect's short time-outs and back-off
  (:class:`~hereabouts.transports.mqtt.MqttSettings`) within seconds of its return, where the
  old connection's TCP retries would take tens of seconds. We only do that when this
  connection's pulses had come back at least once, so a broker that never echoes them (an
  access rule forbids the pulse topic) is reported, not reconnected to in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import msgspec

from hereabouts.config import PulseConfig
from hereabouts.core.effects import StatusChanged
from hereabouts.core.projection import Projection
from hereabouts.core.pulse import TICK_MS, PulseWatch, pulse_every_ms
from hereabouts.errors import BadPulse, BadSignature, HereaboutsError, InvalidDID
from hereabouts.identity import SIGNATURE_BYTES, Identity, verify
from hereabouts.metrics import Counters
from hereabouts.transports.base import Message, Transport
from hereabouts.transports.topics import PULSE_ALL, pulse_sender, pulse_topic

log = logging.getLogger(__name__)

CONTEXT: Final = b"hereabouts/pulse/v1\x00"
"""Signed before the DID and the body: a pulse's signature is good for nothing else."""

MAX_PULSE_BYTES: Final = 256
"""A pulse is 64 bytes of signature and about 40 of body; anything much larger is not one,
and is refused before it is decoded."""

RESTART_AFTER_MS: Final = 1_000
"""How long we stay cut off, awake, before ending the connection: long enough for a
backlog of our own pulses to be read after this process stalled, short against the 5 s in
which a cut should be healed."""

MAX_NEW_COUNTED: Final = 200
"""Watched keys that are neither members nor proven counted at most towards stretching our
interval (see :class:`~hereabouts.config.PulseConfig`): admitted fresh keys, however many,
stretch it by at most this many peers' worth."""

SILENT_LINK_MS: Final = 3_000
"""A connection is ended only if nothing at all has arrived on it for this long as well:
a cut link carries nothing, while a broker that is merely slow (overloaded, our pulses
seconds late) still delivers something, and reconnecting to it would only add the load of
our re-announcement and its welcomes."""


class _Body(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    boot: str
    seq: int
    at_ms: int
    every_ms: int


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Body).decode


def seal_pulse(identity: Identity, *, boot: str, seq: int, at_ms: int, every_ms: int) -> bytes:
    """One signed pulse of ``identity``."""
    body = _encode(_Body(boot, seq, at_ms, every_ms))
    return identity.sign(CONTEXT + identity.did.encode() + body) + body


def open_pulse(did: str, payload: bytes) -> tuple[str, int, int, int]:
    """``(boot, seq, at_ms, every_ms)`` of a pulse published under ``did``'s topic, or
    :class:`~hereabouts.errors.BadPulse`."""
    if len(payload) > MAX_PULSE_BYTES or len(payload) <= SIGNATURE_BYTES:
        raise BadPulse(f"a pulse is {SIGNATURE_BYTES + 1}-{MAX_PULSE_BYTES} bytes")
    signature, body = payload[:SIGNATURE_BYTES], payload[SIGNATURE_BYTES:]
    try:
        verify(did, CONTEXT + did.encode() + body, signature)
        decoded = _decode(body)
    except (BadSignature, InvalidDID) as exc:
        raise BadPulse(f"not signed by {did}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadPulse(f"malformed pulse: {exc}") from None
    return decoded.boot, decoded.seq, decoded.at_ms, decoded.every_ms


class Pulses:
    """A node's pulses (see the module docstring). Call :meth:`take` for every message on a
    pulse topic, run :meth:`run` as a background task."""

    def __init__(
        self,
        config: PulseConfig,
        *,
        identity: Identity,
        boot_id: str,
        transport: Transport,
        projection: Projection,
        counters: Counters,
        clock_ms: Callable[[], int],
        on_changes: Callable[[list[StatusChanged]], None],
        stealth: bool,
        trusted: Callable[[str], bool],
    ) -> None:
        """``trusted(did)``: a member or a proven key. Only :data:`MAX_NEW_COUNTED` of the
        rest count towards stretching our interval, so admitted fresh keys cannot slow
        everyone's detection down."""
        self._config = config
        self._identity = identity
        self._did = identity.did
        self._boot_id = boot_id
        self._transport = transport
        self._projection = projection
        self._counters = counters
        self._clock_ms = clock_ms
        self._on_changes = on_changes
        self._stealth = stealth
        self._trusted = trusted
        self._marked: set[str] = set()  # peers we made quiet in the projection
        self._interval_ms = int(config.interval_s * 1000)
        self.watch = PulseWatch(
            missed=config.missed, own_every_ms=self._interval_ms, echo=not stealth
        )
        self._seq = 0
        self._send_now = asyncio.Event()
        self._inbound = (-1, 0)  # (messages received by the transport, when that changed)
        counters.describe(
            "pulses_in",
            "Pulses received, by outcome (taken, own, replayed, unknown_key, bad_pulse, "
            "other_boot: of a boot other than the key's latest, ours included).",
            "outcome",
        )
        counters.describe(
            "pulses_out", "Pulses this node sent, by outcome (sent, offline).", "outcome"
        )
        counters.describe(
            "pulse_events",
            "What pulses showed, by event (quiet: a peer stopped; back: it resumed; cut_off: "
            "our own stopped coming back; restored; restarted: we reconnected for it).",
            "event",
        )
        transport.on_connect(self._connected)

    def _connected(self, connection: int) -> None:
        self.watch.reset_echo()
        if connection > 1:
            self.watch.reconnected()

    async def subscribe(self) -> None:
        """Ask for every node's pulses (ours included: they tell us we are connected)."""
        await self._transport.subscribe(PULSE_ALL, qos=0)

    # --- receiving ------------------------------------------------------------------------

    def take(self, message: Message) -> None:
        """One message on a pulse topic."""
        did = pulse_sender(message.topic)
        own = did == self._did
        if did is None or not (own or did in self._projection):
            self._counters.add("pulses_in", "unknown_key")
            return
        try:
            boot, seq, _sent_at_ms, every_ms = open_pulse(did, message.payload)
        except BadPulse as exc:
            self._counters.add("pulses_in", exc.reason)
            log.debug("refused a pulse on %s: %s", message.topic, exc)
            return
        now = self._clock_ms()
        if boot != (self._boot_id if own else self._projection.boot_of(did)):
            self._counters.add("pulses_in", "other_boot")
            return
        if own:
            self._counters.add("pulses_in", "own" if self.watch.own(seq, now) else "replayed")
            return
        taken, back = self.watch.heard(did, boot=boot, seq=seq, every_ms=every_ms, now_ms=now)
        self._counters.add("pulses_in", "taken" if taken else "replayed")
        if back:
            self._unmark(did, now)

    def forget(self, did: str) -> None:
        """``did`` said chau, announced itself anew, or was forgotten: stop watching it (a
        new announcement is watched again from its next pulse)."""
        self.watch.forget(did)
        self._unmark(did, self._clock_ms())

    def _unmark(self, did: str, now_ms: int) -> None:
        if did in self._marked:
            self._marked.discard(did)
            self._counters.add("pulse_events", "back")
            self._on_changes(self._projection.set_quiet(did, False, now_ms))

    # --- the background task --------------------------------------------------------------

    def send_soon(self) -> None:
        """Pulse at once, out of turn: we just announced ourselves, and peers watch a key
        only from its first pulse after they know it (a node hanging a moment after its
        hey_there would otherwise go unwatched)."""
        self._send_now.set()

    async def run(self) -> None:
        """Send our pulses and watch everyone's, until cancelled."""
        next_send = 0
        while True:
            now = self._clock_ms()
            if not self._stealth and (now >= next_send or self._send_now.is_set()):
                self._send_now.clear()
                every = self._every_ms()
                await self._send(now, every)
                next_send = now + every
            self._judge(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send_now.wait(), TICK_MS / 1000)

    def _every_ms(self) -> int:
        trusted = sum(1 for did in self.watch.dids() if self._trusted(did))
        counted = trusted + min(self.watch.watched() - trusted, MAX_NEW_COUNTED)
        every = pulse_every_ms(self._interval_ms, counted, self._config.max_received_per_s)
        self.watch.set_own_every(every)
        return every

    async def _send(self, now_ms: int, every_ms: int) -> None:
        if not self._transport.state.connected:
            self._counters.add("pulses_out", "offline")
            return
        self._seq += 1
        payload = seal_pulse(
            self._identity, boot=self._boot_id, seq=self._seq, at_ms=now_ms, every_ms=every_ms
        )
        try:
            await self._transport.publish(pulse_topic(self._did), payload, qos=0)
        except HereaboutsError as exc:  # NotConnected between the check and the send
            self._counters.add("pulses_out", "offline")
            log.debug("pulse not sent: %s", exc)
            return
        self._counters.add("pulses_out", "sent")

    def _judge(self, now_ms: int) -> None:
        changes = self.watch.tick(now_ms)
        for did in changes.quiet:
            if self._projection.transport_of(did) in ("mesh", "hybrid"):
                continue  # its plaza link is not its life: the mesh judges it
            self._counters.add("pulse_events", "quiet")
            self._marked.add(did)
            self._on_changes(self._projection.set_quiet(did, True, now_ms))
        if changes.cut_off is True:
            self._counters.add("pulse_events", "cut_off")
            log.warning(
                "cut off from the plaza: our own pulses have not come back for %.1fs; "
                "peers' statuses are frozen as they were",
                self.watch.quiet_after_ms / 1000,
            )
        elif changes.cut_off is False:
            self._counters.add("pulse_events", "restored")
            log.info("the plaza carries our pulses again")
        since = self.watch.cut_off_since_ms
        silent_ms = self._silent_for_ms(now_ms)  # kept up to date on every tick
        if (
            since is not None
            and not self._stealth
            and self.watch.echoes > 0
            and now_ms - since >= RESTART_AFTER_MS
            and silent_ms >= SILENT_LINK_MS
            and self._transport.state.connected
        ):
            self._counters.add("pulse_events", "restarted")
            self.watch.reset_echo()
            self._transport.restart_connection("our own pulses stopped coming back")

    def _silent_for_ms(self, now_ms: int) -> int:
        """How long nothing at all has arrived on the plaza connection."""
        received = self._transport.counters.messages_in
        if received != self._inbound[0]:
            self._inbound = (received, now_ms)
        return now_ms - self._inbound[1]

    # --- health ---------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        """``/healthz``'s ``pulse`` part: not ok while we are cut off."""
        since = self.watch.cut_off_since_ms
        report: dict[str, object] = {
            "ok": since is None,
            "every_ms": self.watch.own_every_ms,
            "watched": self.watch.watched(),
            "quiet": len(self._marked),
        }
        if since is not None:
            silent_s = (self._clock_ms() - since) / 1000 + self.watch.quiet_after_ms / 1000
            report["cut_off_since_ms"] = since
            report["error"] = (
                f"cut off from the plaza: our own pulses have not come back for {silent_s:.0f}s; "
                "the statuses shown are the last known, not live"
            )
        return report


__all__ = ["CONTEXT", "MAX_NEW_COUNTED", "MAX_PULSE_BYTES", "Pulses", "open_pulse", "seal_pulse"]
