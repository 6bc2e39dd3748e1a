"""SelfProbe: the hub's proof, for ``/healthz``, that it can still do its whole job.

A connected socket says little: a hub can be connected while its broker drops its
publications, its reader is stuck, or its crypto library is broken. So every probe
interval the hub walks the path a browser's heartbeat takes, with a payload of its own:

1. **key generation** — a fresh Ed25519 key, exactly as a visitor makes one per epoch;
2. **signing** — the key signs a random nonce under its own domain tag;
3. **publish to self** — the signed probe goes to the plaza on a topic only this hub
   subscribes to (``hereabouts/v1/probe/<probe-id>``);
4. **message processing** — the hub's plaza reader hands it back here, where the
   signature is verified and the round trip timed.

The probe topic is outside ``hereabouts/v1/site/``, so no site participant ever reads it,
and it names nothing but a random probe id. The probe never carries a DID anyone counts.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Final

from hereabouts.errors import HereaboutsError
from hereabouts.identity import Identity, verify
from hereabouts.transports.topics import probe_topic

PROBE_TAG: Final = b"hereabouts/v1/probe\x00"
"""Domain tag of probe signatures: a probe signature can never pass as an event's."""

STALE_AFTER_INTERVALS: Final = 3
"""Probes that may go unanswered (or unsent) before the hub reports itself unhealthy:
one lost probe under a broker hiccup is not an outage; three intervals are."""


@dataclass(slots=True)
class _Pending:
    nonce: bytes
    did: str
    sent_ms: int


class SelfProbe:
    """Builds probes and checks the ones that come back; holds what ``/healthz`` reports.

    Clock-free: every method takes the time (Unix ms) from its caller.
    """

    def __init__(self, *, interval_ms: int, started_ms: int) -> None:
        self.interval_ms = interval_ms
        self.probe_id = secrets.token_hex(8)
        self.topic = probe_topic(self.probe_id)
        self._started_ms = started_ms
        self._pending: _Pending | None = None
        self.sent = 0
        self.answered = 0
        self.last_ok_ms: int | None = None
        self.last_round_trip_ms: int | None = None
        self.last_error: str | None = None
        self.key_generation_ok: bool | None = None

    def make(self, now_ms: int) -> bytes | None:
        """A new signed probe to publish, or None (with ``last_error``) if keys fail."""
        try:
            key = Identity.generate()
            nonce = secrets.token_bytes(16)
            signature = key.sign(PROBE_TAG + nonce)
        except Exception as exc:  # a broken crypto library is exactly what we look for
            self.key_generation_ok = False
            self.last_error = f"key generation failed: {type(exc).__name__}"
            return None
        self.key_generation_ok = True
        self._pending = _Pending(nonce=nonce, did=key.did, sent_ms=now_ms)
        self.sent += 1
        return b".".join(
            base64.urlsafe_b64encode(part) for part in (key.did.encode(), nonce, signature)
        )

    def received(self, payload: bytes, now_ms: int) -> bool:
        """Check a probe that came back; True when it is our latest and its signature holds."""
        pending = self._pending
        try:
            did_b64, nonce_b64, sig_b64 = payload.split(b".")
            did = base64.urlsafe_b64decode(did_b64).decode()
            nonce = base64.urlsafe_b64decode(nonce_b64)
            signature = base64.urlsafe_b64decode(sig_b64)
        except (ValueError, UnicodeDecodeError):
            self.last_error = "a malformed probe came back"
            return False
        if pending is None or nonce != pending.nonce or did != pending.did:
            return False  # an older probe, late: the newer one will answer
        try:
            verify(did, PROBE_TAG + nonce, signature)
        except HereaboutsError:
            self.last_error = "a probe came back with a bad signature"
            return False
        self._pending = None
        self.answered += 1
        self.last_ok_ms = now_ms
        self.last_round_trip_ms = now_ms - pending.sent_ms
        self.last_error = None
        return True

    def healthy(self, now_ms: int) -> bool:
        """A probe came back within the last few intervals (or the hub is just starting)."""
        window = STALE_AFTER_INTERVALS * self.interval_ms
        since = self.last_ok_ms if self.last_ok_ms is not None else self._started_ms
        return now_ms - since <= window

    def report(self, now_ms: int) -> dict[str, object]:
        """The ``probe`` section of ``/healthz``."""
        return {
            "ok": self.healthy(now_ms),
            "interval_ms": self.interval_ms,
            "sent": self.sent,
            "answered": self.answered,
            "last_ok_age_ms": None if self.last_ok_ms is None else now_ms - self.last_ok_ms,
            "last_round_trip_ms": self.last_round_trip_ms,
            "key_generation_ok": self.key_generation_ok,
            "last_error": self.last_error,
        }
