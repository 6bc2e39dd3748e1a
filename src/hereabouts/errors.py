"""Typed errors, split by who is to blame.

Every error hereabouts raises on bad input derives from :class:`HereaboutsError`, so a caller
can catch the whole family in one place. Below it the tree splits the way h11 does:

* :class:`LocalError` — we (the caller, the operator, the configuration) did something wrong:
  a bad config value, an unreadable key file, an API used out of order.
* :class:`RemoteError` — somebody else sent us something we refuse: bad signature, malformed
  JSON, a replay, a TOFU violation. A node counts these by :attr:`reason` and carries on.

Each class carries a short, stable ``reason`` slug. Metrics label rejections with it, so the
slugs are part of the operator-facing contract: rename one only on purpose.
"""

from __future__ import annotations


class HereaboutsError(Exception):
    """Base of every error hereabouts raises on bad input or misuse."""

    reason: str = "error"


# --- local: misuse, configuration, our own files -------------------------------------------


class LocalError(HereaboutsError):
    """Something on this side is wrong: configuration, files, API misuse."""

    reason = "local"


class ConfigError(LocalError):
    """A configuration value is out of range or inconsistent with another one."""

    reason = "config"


class KeyFileError(LocalError):
    """The identity key file cannot be used; it is never silently replaced."""

    reason = "key_file"


class KeyFileCorrupt(KeyFileError):
    """The key file exists but does not hold a valid key."""

    reason = "key_file_corrupt"


class KeyFileInsecure(KeyFileError):
    """The key file is readable or writable by users other than its owner."""

    reason = "key_file_insecure"


class StorageError(LocalError):
    """A store (ledger, keyring) cannot be opened or written."""

    reason = "storage"


# --- remote: input from the network or from other implementations --------------------------


class RemoteError(HereaboutsError):
    """Input from elsewhere was refused. Counted by ``reason``; never fatal to a node."""

    reason = "remote"


class InvalidDID(RemoteError):
    """A DID is malformed, uses another method or multicodec, or has the wrong key length."""

    reason = "invalid_did"


class JsonTooDeep(RemoteError):
    """JSON from elsewhere nests deeper than we parse (see :mod:`hereabouts.jsonlimits`)."""

    reason = "too_deep"


class NotCanonicalizable(RemoteError):
    """A value cannot be written as RFC 8785 canonical JSON (NaN, huge integers, bad types)."""

    reason = "not_canonicalizable"


class EventRejected(RemoteError):
    """Base for every reason a sealed event is refused at the edge."""

    reason = "rejected"


class Oversize(EventRejected):
    """The message is larger than the configured limit."""

    reason = "oversize"


class EventTooDeep(EventRejected, JsonTooDeep):
    """A sealed event nests deeper than any real event does; refused before parsing."""

    reason = "too_deep"


class NotJSON(EventRejected):
    """The message is not well-formed JSON (or not UTF-8)."""

    reason = "not_json"


class MalformedEvent(EventRejected):
    """The JSON has the wrong shape or field types."""

    reason = "malformed"


class NotCanonical(MalformedEvent):
    """A peer event whose bytes are not the canonical JSON of what they decode to (sorted
    keys, no white space, every field present): one signed body must have one reading."""

    reason = "not_canonical"


class DuplicateKey(NotCanonical):
    """A JSON object names the same key twice; parsers disagree on which one wins."""

    reason = "duplicate_key"


class UnknownKind(EventRejected):
    """The event names a kind this implementation does not know."""

    reason = "unknown_kind"


class MissingSignature(EventRejected):
    """The envelope carries no signature."""

    reason = "missing_signature"


class BadSignature(EventRejected):
    """The signature does not verify against the signer's key."""

    reason = "bad_signature"


class EmitterMismatch(EventRejected):
    """The event claims an emitter DID other than the key that signed it."""

    reason = "emitter_mismatch"


class FromTheFuture(EventRejected):
    """The event's timestamp lies further ahead than the allowed clock skew."""

    reason = "future"


class TooOld(EventRejected):
    """The event is older than the retention window, so it can no longer be accepted."""

    reason = "too_old"


class Replayed(EventRejected):
    """The event was accepted before and has since been pruned (its id is tombstoned)."""

    reason = "replayed"


class RateLimited(EventRejected):
    """The emitter sent more events than its rate limit allows."""

    reason = "rate_limited"


class TopicMismatch(EventRejected):
    """The event arrived on a topic meant for another kind of event."""

    reason = "topic_mismatch"


class BadReport(EventRejected):
    """A failure report about its own emitter, or one claiming to have seen its subject
    after it was written (see :mod:`hereabouts.core.suspicion`)."""

    reason = "bad_report"


class BadPulse(RemoteError):
    """A pulse that is malformed, too big, or not signed by the key its topic names (see
    :mod:`hereabouts.peers.pulse`)."""

    reason = "bad_pulse"


class TofuViolation(EventRejected):
    """A name pinned to one key was used with another key and no valid rotation statement."""

    reason = "tofu_violation"
