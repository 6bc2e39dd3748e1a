"""Refusals of the mesh's sync endpoint, each counted by its ``reason``."""

from __future__ import annotations

from hereabouts.errors import RemoteError


class SyncRefused(RemoteError):
    """A sync request or reply we do not take. ``status`` is the HTTP answer."""

    reason = "sync_refused"
    status = 400


class SyncMalformed(SyncRefused):
    """The body is not a sync message: not JSON, unknown fields, a bad digest."""

    reason = "sync_malformed"


class SyncOversize(SyncRefused):
    """The body is larger than a sync message may be."""

    reason = "sync_oversize"
    status = 413


class SyncUnsigned(SyncRefused):
    """The request lacks the caller's signature headers, or they are malformed."""

    reason = "sync_unsigned"
    status = 401


class SyncBadSignature(SyncRefused):
    """The request's signature does not verify against the DID it names."""

    reason = "sync_bad_signature"
    status = 401


class SyncStale(SyncRefused):
    """The request is dated too far from our clock (a replay, or a badly set clock)."""

    reason = "sync_stale"
    status = 401


class SyncThrottled(SyncRefused):
    """The caller exceeds its request or byte budget."""

    reason = "sync_throttled"
    status = 429


class SyncGraylisted(SyncRefused):
    """The caller sent invalid data recently and is refused for a while."""

    reason = "sync_graylisted"
    status = 403


class SyncFailed(RemoteError):
    """An exchange we started failed: the peer is unreachable, slow, or answered badly."""

    reason = "sync_failed"
