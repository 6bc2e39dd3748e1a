"""Invited networks: credentials signed by a network key, and the rules for believing them.

A network is *open* (any key may join, under the bounds of :mod:`hereabouts.core.keys`) or
*invited*: every event a member sends carries its :class:`~hereabouts.events.Credential`
(so a heartbeat or a howdy introduces it as well as its hey_there), and nodes refuse
events without a credential from keys they do not know as members before checking any
signature, so an outsider's plain events cost a dictionary look-up.

Credentials:

* **Issued by the network key** (``issuer == network``): names one member key and the name
  it goes by, a validity window, and how many further members it may invite (``invites``).
* **Issued by a member** allowed to invite: ``issuer`` is that member, ``parent`` is its own
  credential (issued by the network key), and ``slot`` is which of its ``invites`` this one
  spends. Invitees cannot invite in turn, and expire no later than their inviter, so the
  network key bounds the membership: at most the sum of the quotas it handed out.
* **Signed** over ``CREDENTIAL_TAG ‖`` the RFC 8785 form of every field but ``sig`` (the
  parent included whole), so any implementation rebuilds the bytes from the values.
* **Names are bound** by the credential: every event of a member must carry the name its
  credential gives it (:class:`NameNotBound` otherwise). First use binds nothing.
* **Slots are first come per node.** An inviter that signs two credentials for one slot has
  cheated; each node keeps the first it sees and refuses the other (``invite_quota``), and
  counts the equivocation so the owner can revoke the inviter.

Revocations are statements signed by the network key (:class:`~hereabouts.events.Credential`
has no other authority). Revoking an inviter revokes its invitees. Nodes learn them from
retained messages on ``hereabouts/v1/network/revoked/<hash>`` and keep them
(:mod:`hereabouts.peers.network`).
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Final, TypeVar

import msgspec
from msgspec import Meta, Struct

from hereabouts.errors import BadSignature, EventRejected, InvalidDID, JsonTooDeep, LocalError
from hereabouts.events import AnyEvent, Credential, Did, Millis, Signature
from hereabouts.identity import Identity, signature_from_base64, verify
from hereabouts.jsonlimits import check_depth

CREDENTIAL_TAG: Final = b"hereabouts/v1/credential\n"
REVOCATION_TAG: Final = b"hereabouts/v1/revocation\n"

VERIFIED_CACHE: Final = 4_096
"""Credentials remembered as verified (by the hash of their signed bytes): every member's
hey_there repeats its credential, and a howdy carries ten of them."""

ISSUE_SKEW_MS: Final = 5 * 60_000
"""How far in the future a credential's ``issued_at_ms`` may lie: the issuer's clock may be
ahead of ours; an hour-old signature from the future would be a mistake or a trick."""

_canonical = msgspec.json.Encoder(order="sorted")
_credential_decoder = msgspec.json.Decoder(Credential)


class Revocation(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The network key's statement that ``member`` (and whoever it invited) is out."""

    network: Did
    member: Did
    at_ms: Millis
    reason: Annotated[str, Meta(max_length=200)] = ""
    sig: Signature


_revocation_decoder = msgspec.json.Decoder(Revocation)


# --- errors: every refusal has a reason --------------------------------------------------


class NotAMember(EventRejected):
    """An invited network refused an event from a key that presented no valid credential."""

    reason = "not_a_member"


class BadCredential(EventRejected):
    """A credential whose signatures or chain do not hold."""

    reason = "bad_credential"


class CredentialTooDeep(BadCredential, JsonTooDeep):
    """A credential or revocation nesting deeper than any real one does."""

    reason = "too_deep"


class CredentialExpired(EventRejected):
    """A credential outside its validity window."""

    reason = "credential_expired"


class Revoked(EventRejected):
    """A member the network key has revoked (or whose inviter it revoked)."""

    reason = "revoked"


class NameNotBound(EventRejected):
    """A member's event under a name other than the one its credential binds."""

    reason = "name_not_bound"


class InviteOverQuota(EventRejected):
    """A credential spending an invitation its inviter does not have, or already spent."""

    reason = "invite_quota"


class NetworkSetupError(LocalError):
    """This node's own network files are missing, damaged or inconsistent."""

    reason = "network_setup"


# --- signing -------------------------------------------------------------------------------


def _statement(tag: bytes, value: Struct) -> bytes:
    fields = msgspec.structs.asdict(value)
    del fields["sig"]
    return tag + _canonical.encode(fields)


def _sign(identity: Identity, message: bytes) -> str:
    return base64.b64encode(identity.sign(message)).decode("ascii")


def _check(did: str, message: bytes, sig: str, error: type[EventRejected], what: str) -> None:
    try:
        verify(did, message, signature_from_base64(sig))
    except (BadSignature, InvalidDID):
        raise error(f"{what} does not verify") from None


def issue_credential(
    issuer: Identity,
    *,
    network: str,
    member: str,
    name: str,
    issued_at_ms: int,
    expires_at_ms: int,
    invites: int = 0,
    slot: int | None = None,
    parent: Credential | None = None,
) -> Credential:
    """A credential signed by ``issuer`` (the network key, or an inviting member whose own
    credential is ``parent``)."""
    unsigned = Credential(
        network=network,
        member=member,
        name=name,
        issuer=issuer.did,
        issued_at_ms=issued_at_ms,
        expires_at_ms=expires_at_ms,
        invites=invites,
        slot=slot,
        parent=parent,
        sig="A" * 86 + "==",
    )
    msgspec.json.decode(msgspec.json.encode(unsigned), type=Credential)  # validate fields
    sig = _sign(issuer, _statement(CREDENTIAL_TAG, unsigned))
    return msgspec.structs.replace(unsigned, sig=sig)


def sign_revocation(
    authority: Identity, *, member: str, at_ms: int, reason: str = ""
) -> Revocation:
    """The network key's statement that ``member`` is out."""
    unsigned = Revocation(
        network=authority.did, member=member, at_ms=at_ms, reason=reason, sig="A" * 86 + "=="
    )
    return msgspec.structs.replace(
        unsigned, sig=_sign(authority, _statement(REVOCATION_TAG, unsigned))
    )


def encode_credential(credential: Credential) -> bytes:
    return _canonical.encode(credential)


def decode_credential(data: bytes) -> Credential:
    return _decode(_credential_decoder, data, "credential")


def encode_revocation(revocation: Revocation) -> bytes:
    return _canonical.encode(revocation)


def decode_revocation(data: bytes) -> Revocation:
    return _decode(_revocation_decoder, data, "revocation")


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T:
    """Decode a credential or revocation; its ``parent`` type is recursive, so msgspec would
    recurse as deep as the input nests: the depth is checked first."""
    try:
        check_depth(data)
    except JsonTooDeep as exc:
        raise CredentialTooDeep(f"not a {what}: {exc}") from None
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadCredential(f"not a {what}: {exc}") from None


def revocation_key(member: str) -> str:
    """The topic suffix of a member's revocation: a hash, since DIDs hold ``:``."""
    return hashlib.sha256(member.encode()).hexdigest()[:32]


# --- checking --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A member as its credential describes it."""

    did: str
    name: str
    expires_at_ms: int
    inviter: str | None
    slot: int | None
    invites: int


def check_credential(credential: Credential, *, network: str, now_ms: int) -> MemberInfo:
    """Verify ``credential`` for ``network`` at ``now_ms`` (signatures, chain, validity);
    revocations and slots are :class:`Membership`'s business."""
    if credential.network != network:
        raise NotAMember("the credential is for another network")
    _check_window(credential, now_ms)
    if credential.issuer == network:
        if credential.parent is not None or credential.slot is not None:
            raise BadCredential("a credential from the network key has no parent and no slot")
        _check(network, _statement(CREDENTIAL_TAG, credential), credential.sig, BadCredential,
               "the credential's signature")
        return MemberInfo(credential.member, credential.name, credential.expires_at_ms,
                          None, None, credential.invites)
    parent = credential.parent
    if parent is None or credential.slot is None:
        raise BadCredential("a member's invitation carries its inviter's credential and a slot")
    if parent.issuer != network or parent.network != network or parent.parent is not None:
        raise BadCredential("an inviter's own credential must come from the network key")
    if parent.member != credential.issuer:
        raise BadCredential("the invitation is not signed by the member its parent names")
    if credential.slot >= parent.invites:
        raise InviteOverQuota(f"slot {credential.slot} of an inviter with {parent.invites}")
    if credential.invites:
        raise BadCredential("an invited member cannot invite in turn")
    if credential.expires_at_ms > parent.expires_at_ms:
        raise BadCredential("an invitation outlives its inviter's credential")
    _check_window(parent, now_ms)
    _check(network, _statement(CREDENTIAL_TAG, parent), parent.sig, BadCredential,
           "the inviter's credential")
    _check(credential.issuer, _statement(CREDENTIAL_TAG, credential), credential.sig,
           BadCredential, "the invitation's signature")
    return MemberInfo(credential.member, credential.name, credential.expires_at_ms,
                      credential.issuer, credential.slot, 0)


def _check_window(credential: Credential, now_ms: int) -> None:
    if credential.issued_at_ms > now_ms + ISSUE_SKEW_MS:
        raise CredentialExpired("the credential is not valid yet")
    if credential.expires_at_ms <= now_ms:
        raise CredentialExpired("the credential has expired")


def check_revocation(revocation: Revocation, *, network: str) -> None:
    if revocation.network != network:
        raise BadCredential("the revocation is for another network")
    _check(network, _statement(REVOCATION_TAG, revocation), revocation.sig, BadCredential,
           "the revocation's signature")


class Membership:
    """An invited network as one node sees it: its members, revocations and slots.

    Sans-I/O: the runtime passes events and times in and stores revocations itself.
    """

    def __init__(
        self,
        network: str,
        *,
        own: Credential | None = None,
        revocations: Iterable[Revocation] = (),
    ) -> None:
        self.network = network
        self.own = own
        self._members: dict[str, MemberInfo] = {}
        self._revoked: dict[str, Revocation] = {}
        self._slots: dict[tuple[str, int], str] = {}
        self._verified: OrderedDict[bytes, MemberInfo] = OrderedDict()
        self.equivocations = 0
        for revocation in revocations:
            self.revoke(revocation)

    # --- events ------------------------------------------------------------------------

    def precheck(self, event: AnyEvent, now_ms: int) -> None:
        """Before the signature check: is this from a member, or does it carry a plausible
        credential? (Checking the credential's signatures waits for :meth:`admit`.)"""
        member = self._members.get(event.did)
        if member is not None and (
            event.credential is None or event.credential.expires_at_ms == member.expires_at_ms
        ):
            if member.expires_at_ms <= now_ms:
                raise CredentialExpired(f"{event.name!r}'s credential has expired")
            if event.name != member.name:
                raise NameNotBound(f"the credential names this key {member.name!r}")
            return
        credential = event.credential
        if credential is None:
            raise NotAMember("this network admits members with a credential only")
        if credential.member != event.did or credential.network != self.network:
            raise NotAMember("the credential is for another key or another network")
        if credential.name != event.name:
            raise NameNotBound(f"the credential names this key {credential.name!r}")
        self._check_revoked(credential)

    def admit(self, event: AnyEvent, now_ms: int) -> MemberInfo:
        """After the signature check: verify the credential an event carries (cached by its
        bytes) and make its key a member, or renew its membership; without a credential,
        the member already known."""
        member = self._members.get(event.did)
        credential = event.credential
        if credential is None or (
            member is not None and credential.expires_at_ms == member.expires_at_ms
        ):
            if member is None:
                raise NotAMember("this network admits members with a credential only")
            return member
        key = hashlib.sha256(encode_credential(credential)).digest()
        info = self._verified.get(key)
        if info is None or info.expires_at_ms <= now_ms:
            info = check_credential(credential, network=self.network, now_ms=now_ms)
            self._verified[key] = info
            if len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        self._check_revoked(credential)
        if info.inviter is not None and info.slot is not None:
            holder = self._slots.setdefault((info.inviter, info.slot), info.did)
            if holder != info.did:
                self.equivocations += 1
                raise InviteOverQuota(
                    f"slot {info.slot} of its inviter is already another member's"
                )
        self._members[info.did] = info
        return info

    def is_member(self, did: str) -> bool:
        return did in self._members

    def member(self, did: str) -> MemberInfo | None:
        return self._members.get(did)

    def __len__(self) -> int:
        return len(self._members)

    # --- revocations -----------------------------------------------------------------------

    def revoke(self, revocation: Revocation) -> list[str]:
        """Take a revocation in (verified here); returns the members it removes."""
        check_revocation(revocation, network=self.network)
        self._revoked[revocation.member] = revocation
        removed = [
            did for did, info in self._members.items()
            if did == revocation.member or info.inviter == revocation.member
        ]
        for did in removed:
            del self._members[did]
        return removed

    def revoked(self, did: str) -> bool:
        return did in self._revoked

    def revocations(self) -> list[Revocation]:
        return list(self._revoked.values())

    def own_status(self, now_ms: int) -> dict[str, object]:
        """This node's standing, for ``/healthz``: ok while its credential is valid."""
        own = self.own
        if own is None:
            return {"ok": False, "mode": "invited", "network": self.network,
                    "error": "this node has no credential for the network"}
        problem = None
        if own.member in self._revoked or (own.issuer in self._revoked):
            problem = "this node's credential has been revoked"
        elif own.expires_at_ms <= now_ms:
            problem = "this node's credential has expired"
        report: dict[str, object] = {
            "ok": problem is None,
            "mode": "invited",
            "network": self.network,
            "name": own.name,
            "expires_in_s": max(0, (own.expires_at_ms - now_ms) // 1000),
            "members": len(self._members),
            "revocations": len(self._revoked),
            "invite_equivocations": self.equivocations,
        }
        if problem:
            report["error"] = problem
        return report

    def _check_revoked(self, credential: Credential) -> None:
        if credential.member in self._revoked:
            raise Revoked("this member has been revoked")
        if credential.parent is not None and credential.issuer in self._revoked:
            raise Revoked("this member's inviter has been revoked")


__all__ = [
    "CREDENTIAL_TAG",
    "REVOCATION_TAG",
    "BadCredential",
    "CredentialExpired",
    "InviteOverQuota",
    "MemberInfo",
    "Membership",
    "NameNotBound",
    "NetworkSetupError",
    "NotAMember",
    "Revocation",
    "Revoked",
    "check_credential",
    "check_revocation",
    "decode_credential",
    "decode_revocation",
    "encode_credential",
    "encode_revocation",
    "issue_credential",
    "revocation_key",
    "sign_revocation",
]
