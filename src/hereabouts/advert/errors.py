"""Why a presence@2 document, proof or relay request was refused, one class per reason.

Every class derives from :class:`hereabouts.errors.RemoteError` when the document came from
somebody else (a peer, a relay client, a file we were asked to check) and from
:class:`hereabouts.errors.LocalError` when the caller of this package is to blame (a bad alias,
a document we were asked to sign that is not signable, a missing file). The ``reason`` slugs
label metrics and JSON error bodies, so they are part of the operator-facing contract.
"""

from __future__ import annotations

from hereabouts.errors import LocalError, RemoteError

# --- remote: a document or request we refuse --------------------------------------------------


class PresenceRejected(RemoteError):
    """Base of every reason a presence@2 document is refused."""

    reason = "presence_rejected"


class PresenceMalformed(PresenceRejected):
    """A field is missing, unknown, of the wrong type or in the wrong format."""

    reason = "presence_malformed"


class PresenceOversize(PresenceRejected):
    """The document (or the request body carrying it) is larger than the limit."""

    reason = "presence_oversize"


class PresenceBadDID(PresenceRejected):
    """The document's DID is not a usable did:key and no key was supplied for it."""

    reason = "presence_bad_did"


class PresenceBadSignature(PresenceRejected):
    """The signature is not valid base64 or does not verify against the DID's key."""

    reason = "presence_bad_signature"


class PresenceIdMismatch(PresenceRejected):
    """``id`` is not ``presence:<did>:<issued_at>`` for the document's own fields."""

    reason = "presence_id_mismatch"


class PresenceExpired(PresenceRejected):
    """``expires_at`` has passed."""

    reason = "presence_expired"


class PresenceFromTheFuture(PresenceRejected):
    """``issued_at`` lies further ahead of our clock than the allowed skew."""

    reason = "presence_future"


class PresenceBadLifetime(PresenceRejected):
    """``expires_at`` is not after ``issued_at``, or the lifetime is longer than allowed."""

    reason = "presence_bad_lifetime"


class PresenceBadEndpoint(PresenceRejected):
    """An endpoint name or URL is unacceptable (only absolute http and https URLs are)."""

    reason = "presence_bad_endpoint"


class PresenceBadRelay(PresenceRejected):
    """A ``relays`` entry is not a well-formed ``relay@1`` descriptor."""

    reason = "presence_bad_relay"


class PresenceBadProof(PresenceRejected):
    """The ``proof`` field is not a well-formed consistency proof, or it does not verify."""

    reason = "presence_bad_proof"


class PresenceStale(PresenceRejected):
    """A document for the same DID with the same or a later ``issued_at`` is already held."""

    reason = "presence_stale"


class RelayNotNamed(PresenceRejected):
    """The document's ``relays`` does not name this relay (or its delegation has expired)."""

    reason = "relay_not_named"


class RelayFull(PresenceRejected):
    """The relay cannot make room for another document within its rules; try again later."""

    reason = "relay_full"


class RelayQuotaExceeded(PresenceRejected):
    """A client address or a DID used up its share of the relay; retry after
    :attr:`retry_after_s` seconds."""

    reason = "relay_quota"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RelayAddressRateLimited(RelayQuotaExceeded):
    """The client address pushed more documents than its rate allows."""

    reason = "relay_address_rate"


class RelayAddressFull(RelayQuotaExceeded):
    """The client address holds as many live documents as one address may."""

    reason = "relay_address_full"


class RelayDidRateLimited(RelayQuotaExceeded):
    """The DID replaced its document here more often than its rate allows."""

    reason = "relay_did_rate"


class PresenceFetchFailed(PresenceRejected):
    """A document could not be fetched (network error or a non-200 answer)."""

    reason = "presence_fetch_failed"


# --- local: the caller of this package is to blame ---------------------------------------------


class AdvertUsageError(LocalError):
    """An argument given to the advert commands or API is unusable."""

    reason = "advert_usage"


class BadAlias(AdvertUsageError):
    """An alias is empty, too long, or could escape the presence directory."""

    reason = "advert_bad_alias"


class NotSignable(AdvertUsageError):
    """A document handed to :func:`sign_presence` would not verify once signed."""

    reason = "advert_not_signable"


class PresenceExists(AdvertUsageError):
    """A document of this alias was already issued in the same second."""

    reason = "advert_exists"
