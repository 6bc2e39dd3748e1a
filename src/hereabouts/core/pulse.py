"""Pulses, sans-I/O: who has stopped beating, and whether we are cut off ourselves.

The broker notices a crash at once (the socket closes and it publishes the ``lost`` will),
but a process that hangs with its socket open, or a link that is cut, only when the
connection's keepalive expires: tens of seconds. Pulses close that gap. Every plaza node
publishes a small signed beat on its own pulse topic every interval (at most once, QoS 0),
and every node watches the beats it receives:

* **A peer is quiet** when none of its pulses has reached us for ``missed`` of the
  intervals it announced. A quiet peer reads as MISSING in our view only (it is our own
  first-hand observation, never evidence we pass on), until its next pulse arrives.
* **We are cut off** when our own pulses stop coming back to us through the broker for
  ``missed`` of our intervals: then the silence of everyone else says nothing about them,
  so nobody is judged quiet while we are cut off, and the runtime says so.
* **After being cut off**, a peer we did not hear during it gets a grace: none beyond the
  usual if our connection held (the broker was slow, or our link flickered), and
  :data:`RECONNECT_GRACE_MS` more if we had to reconnect, since whatever cut us off (a
  broker restart) may have cut it off too, and it reconnects at its own pace.
* **Flapping is held back.** A peer that pulses again after being quiet cannot be judged
  quiet again for :data:`FLAP_HOLD_MS`: a key that pulses on and off cannot make every
  node's view flicker.
* **Stalls are ours, not theirs.** If this process itself was not running for a while
  (a SIGSTOP, a swap storm), a tick comes late; the pulses that arrived meanwhile still
  wait in our socket. Silence is therefore only counted from the moment we were running
  again (``awake_since``), so resuming never makes everyone look quiet.
* **Replays lose.** A pulse counts only if it is newer than the last one taken from its
  sender's boot (a higher sequence number); the runtime passes only pulses of the boot the
  projection holds for the sender, checked and verified.

Everything takes ``now_ms`` in; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

TICK_MS: Final = 250
"""How often the runtime calls :meth:`PulseWatch.tick`: a quarter of the default interval,
so a silence is judged within a quarter second of its deadline."""

STALL_MS: Final = 1_000
"""A tick this much later than the previous one means this process was not running (four
missed ticks); silence is counted afresh from then."""

MIN_EVERY_MS: Final = 500
"""The shortest interval a pulse is judged by: a peer announcing less is judged as if it
announced this (two a second is plenty, and a key cannot flip statuses faster)."""

FLAP_HOLD_MS: Final = 10_000
"""After a quiet peer pulses again, how long before it can be judged quiet again: bounds
how often one key can change every node's view (and a real hang right after a resume is
then seen within this plus three intervals)."""

RECONNECT_GRACE_MS: Final = 30_000
"""Extra time a peer we did not hear while we were cut off gets to pulse again, when we had
to reconnect: the reconnect backoff's ceiling (30 s), over which a fleet cut off by a
broker restart comes back."""

MAX_EVERY_MS: Final = 600_000
"""The longest interval a pulse may announce. Past it the peer is not watched closely at
all; the plaza's silence threshold still applies."""

MAX_TRACKED: Final = 100_000
"""Peers watched at most; the runtime only passes pulses from keys it already knows, which
the key book bounds far lower. Past this, new senders are not watched."""


def pulse_every_ms(interval_ms: int, peers: int, max_received_per_s: float) -> int:
    """Our interval, given how many plaza peers pulse: ``interval_ms`` while the plaza is
    small, stretched so that each node receives at most ``max_received_per_s`` pulses."""
    stretched = math.ceil(1000 * (peers + 1) / max_received_per_s)
    return min(MAX_EVERY_MS, max(interval_ms, stretched))


@dataclass(slots=True)
class _Beat:
    boot: str
    seq: int
    heard_ms: int  # when its latest pulse came (or, after a grace, from when to count)
    quiet_after_ms: int
    quiet: bool = False
    hold_until_ms: int = 0  # not judged quiet before this (FLAP_HOLD_MS)


@dataclass(frozen=True, slots=True)
class PulseChanges:
    """What one :meth:`PulseWatch.tick` found."""

    quiet: list[str] = field(default_factory=list)
    """Peers whose pulses stopped: MISSING in our view until they pulse again."""
    cut_off: bool | None = None
    """True: we just found ourselves cut off; False: our pulses came back; None: no change."""


class PulseWatch:
    """One node's view of the pulses it receives, its own included."""

    def __init__(self, *, missed: int, own_every_ms: int, echo: bool = True) -> None:
        """``missed``: intervals without a pulse before silence counts. ``echo``: our own
        pulses come back to us (False for a stealth node, which sends none: then hearing
        anyone at all is what tells it the plaza still reaches it)."""
        self.missed = missed
        self.own_every_ms = own_every_ms
        self._echo = echo
        self._beats: dict[str, _Beat] = {}
        self._own_seq = -1
        self._own_heard_ms: int | None = None
        self._own_quiet_ms = missed * own_every_ms  # set when an echo comes back
        self._reconnected = False
        self._awake_since_ms: int | None = None
        self._last_tick_ms: int | None = None
        self.cut_off_since_ms: int | None = None
        """When we were last found cut off (None while we are not)."""
        self.echoes = 0
        """Own pulses heard back since the last :meth:`reset_echo`."""

    # --- inputs -------------------------------------------------------------------------

    def own(self, seq: int, now_ms: int) -> bool:
        """One of our own pulses came back (True if it was new); may end a cut-off (seen
        at the next tick)."""
        if seq <= self._own_seq:
            return False
        self._own_seq = seq
        self._own_heard_ms = now_ms
        self._own_quiet_ms = self.missed * self.own_every_ms
        self.echoes += 1
        return True

    def set_own_every(self, every_ms: int) -> None:
        """Our interval for the pulse about to be sent. Our silence is judged by the longer
        of it and the one our latest echoed pulse announced: when the interval shrinks
        (peers left), the next pulse still comes at the old one."""
        self._own_quiet_ms = self.missed * max(self.own_every_ms, every_ms)
        self.own_every_ms = every_ms

    def reconnected(self) -> None:
        """Our connection was lost and made again (see :data:`RECONNECT_GRACE_MS`)."""
        self._reconnected = True

    def reset_echo(self) -> None:
        """A new connection: count its echoes afresh (see :attr:`echoes`)."""
        self.echoes = 0

    def heard(
        self, did: str, *, boot: str, seq: int, every_ms: int, now_ms: int
    ) -> tuple[bool, bool]:
        """A verified pulse from ``did``'s current ``boot``: ``(taken, back)``. ``taken``
        is False for a replay or an out-of-order copy (nothing changes); ``back`` is True
        when the peer was quiet and is not any more (it reads as it did before). A pulse of
        another boot than the one held starts afresh: the runtime passes only the current
        boot's."""
        beat = self._beats.get(did)
        if beat is not None and boot == beat.boot and seq <= beat.seq:
            return False, False
        if beat is None and len(self._beats) >= MAX_TRACKED:
            return False, False
        every_ms = min(MAX_EVERY_MS, max(MIN_EVERY_MS, every_ms))
        back = beat is not None and beat.quiet
        hold = now_ms + FLAP_HOLD_MS if back else (0 if beat is None else beat.hold_until_ms)
        self._beats[did] = _Beat(boot, seq, now_ms, self.missed * every_ms, hold_until_ms=hold)
        if not self._echo:
            self._own_heard_ms = now_ms
        return True, back

    def forget(self, did: str) -> bool:
        """Stop watching ``did`` (it said chau, was forgotten, or will start afresh). True
        if it was quiet."""
        beat = self._beats.pop(did, None)
        return beat is not None and beat.quiet

    def tick(self, now_ms: int) -> PulseChanges:
        """Let time pass: who went quiet, and whether we are cut off. O(peers watched)."""
        last = self._last_tick_ms
        self._last_tick_ms = now_ms
        if last is None or now_ms - last > STALL_MS:
            self._awake_since_ms = now_ms  # we were not running: count silence from now
        awake = self._awake_since_ms
        assert awake is not None
        cut_off = self._found_cut_off(now_ms, awake)
        changed: bool | None = None
        if cut_off and self.cut_off_since_ms is None:
            self.cut_off_since_ms = now_ms
            changed = True
        elif not cut_off and self.cut_off_since_ms is not None:
            self._restored(now_ms, self.cut_off_since_ms)
            self.cut_off_since_ms = None
            changed = False
        if cut_off:
            return PulseChanges(cut_off=changed)
        quiet = []
        for did, beat in self._beats.items():
            if (
                not beat.quiet
                and now_ms >= beat.hold_until_ms
                and now_ms - max(beat.heard_ms, awake) > beat.quiet_after_ms
            ):
                beat.quiet = True
                quiet.append(did)
        return PulseChanges(quiet=quiet, cut_off=changed)

    def _restored(self, now_ms: int, cut_off_since_ms: int) -> None:
        """Our pulses came back: peers not heard since before the cut-off count their
        silence from now, plus :data:`RECONNECT_GRACE_MS` if we had to reconnect."""
        grace = RECONNECT_GRACE_MS if self._reconnected else 0
        self._reconnected = False
        for beat in self._beats.values():
            if not beat.quiet and beat.heard_ms < cut_off_since_ms:
                beat.heard_ms = max(beat.heard_ms, now_ms + grace)

    # --- outputs ------------------------------------------------------------------------

    def _found_cut_off(self, now_ms: int, awake_ms: int) -> bool:
        """Our own pulses (or, without an echo, everyone's) stopped reaching us."""
        if not self._echo:
            # No echo (stealth): cut off only when two peers or more were heard and every
            # one of them is past its own deadline; one silent peer is that peer's silence.
            live = [b for b in self._beats.values() if not b.quiet]
            return len(live) >= 2 and all(
                now_ms - max(b.heard_ms, awake_ms) > b.quiet_after_ms for b in live
            )
        heard = self._own_heard_ms
        since = awake_ms if heard is None else max(heard, awake_ms)
        return now_ms - since > self._own_quiet_ms

    def is_quiet(self, did: str) -> bool:
        beat = self._beats.get(did)
        return beat is not None and beat.quiet

    def quiet_peers(self) -> list[str]:
        """Peers that are quiet now."""
        return [did for did, beat in self._beats.items() if beat.quiet]

    def watched(self) -> int:
        """Peers whose pulses we watch (for our own interval)."""
        return len(self._beats)

    def dids(self) -> list[str]:
        """Every peer watched."""
        return list(self._beats)

    @property
    def quiet_after_ms(self) -> int:
        """Our own silence before we call ourselves cut off."""
        return self._own_quiet_ms

    @property
    def cut_off(self) -> bool:
        return self.cut_off_since_ms is not None


__all__ = [
    "FLAP_HOLD_MS",
    "MAX_EVERY_MS",
    "MAX_TRACKED",
    "MIN_EVERY_MS",
    "RECONNECT_GRACE_MS",
    "STALL_MS",
    "TICK_MS",
    "PulseChanges",
    "PulseWatch",
    "pulse_every_ms",
]
