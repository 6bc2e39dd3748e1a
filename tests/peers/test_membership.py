"""Invited networks: credentials, invitations with quotas, revocations, names bound."""

from __future__ import annotations

import msgspec
import pytest
import rfc8785

from hereabouts.config import TrustConfig
from hereabouts.core.keys import KeyBook
from hereabouts.core.projection import Projection
from hereabouts.events import Credential
from hereabouts.identity import Identity
from hereabouts.ledger import MemoryLedger
from hereabouts.peers.ingest import Accepted, Ingestor, Rejected
from hereabouts.peers.membership import (
    CREDENTIAL_TAG,
    BadCredential,
    CredentialExpired,
    InviteOverQuota,
    Membership,
    NotAMember,
    check_credential,
    decode_credential,
    decode_revocation,
    encode_credential,
    issue_credential,
    sign_revocation,
)
from tests.signers import MINUTE, T0, Peer

NETWORK = Identity.from_seed(b"\x07" * 32)
DAY = 24 * 60 * MINUTE


def credential(
    peer: Peer,
    *,
    issuer: Identity = NETWORK,
    invites: int = 0,
    slot: int | None = None,
    parent: Credential | None = None,
    name: str | None = None,
    expires: int = T0 + 30 * DAY,
) -> Credential:
    return issue_credential(
        issuer,
        network=NETWORK.did,
        member=peer.did,
        name=name or peer.name,
        issued_at_ms=T0 - DAY,
        expires_at_ms=expires,
        invites=invites,
        slot=slot,
        parent=parent,
    )


def edge(membership: Membership) -> Ingestor:
    return Ingestor(
        ledger=MemoryLedger(),
        projection=Projection(),
        keys=KeyBook(TrustConfig(), silence_ms=5 * MINUTE, max_howdys=10),
        membership=membership,
    )


def hello(peer: Peer, cred: Credential | None, at: int = T0) -> bytes:
    return peer.sealed(peer.hey_there_event(at, credential=cred))


ALICE, BOB, CAROL, MALLORY = (Peer(n, seed=s) for n, s in [("alice", 1), ("bob", 2),
                                                          ("carol", 3), ("mallory", 66)])


def test_the_signed_bytes_are_rfc8785_of_every_field_but_the_signature() -> None:
    cred = credential(ALICE, invites=2)
    fields = msgspec.to_builtins(cred)
    del fields["sig"]
    from hereabouts.peers.membership import _statement

    assert _statement(CREDENTIAL_TAG, cred) == CREDENTIAL_TAG + rfc8785.dumps(fields)
    assert decode_credential(encode_credential(cred)) == cred


def test_a_network_credential_checks_and_a_tampered_one_does_not() -> None:
    cred = credential(ALICE)
    info = check_credential(cred, network=NETWORK.did, now_ms=T0)
    assert (info.did, info.name, info.inviter) == (ALICE.did, "alice", None)
    for tampered in (
        msgspec.structs.replace(cred, name="mallory"),
        msgspec.structs.replace(cred, member=MALLORY.did),
        msgspec.structs.replace(cred, invites=5),
    ):
        with pytest.raises(BadCredential):
            check_credential(tampered, network=NETWORK.did, now_ms=T0)
    with pytest.raises(CredentialExpired):
        check_credential(cred, network=NETWORK.did, now_ms=T0 + 31 * DAY)
    with pytest.raises(NotAMember):
        check_credential(cred, network=Identity.generate().did, now_ms=T0)


def test_a_member_may_invite_within_its_quota_and_no_further() -> None:
    inviter = credential(ALICE, invites=1)
    invited = credential(BOB, issuer=ALICE.identity, slot=0, parent=inviter,
                         expires=T0 + 10 * DAY)
    info = check_credential(invited, network=NETWORK.did, now_ms=T0)
    assert (info.inviter, info.slot) == (ALICE.did, 0)
    over = credential(CAROL, issuer=ALICE.identity, slot=1, parent=inviter,
                      expires=T0 + 10 * DAY)
    with pytest.raises(InviteOverQuota):
        check_credential(over, network=NETWORK.did, now_ms=T0)
    no_rights = credential(ALICE)  # invites=0
    with pytest.raises(InviteOverQuota):
        check_credential(
            credential(CAROL, issuer=ALICE.identity, slot=0, parent=no_rights,
                       expires=T0 + 10 * DAY),
            network=NETWORK.did, now_ms=T0,
        )
    chain = credential(CAROL, issuer=BOB.identity, slot=0, parent=invited, expires=T0 + DAY)
    with pytest.raises(BadCredential):  # invitees cannot invite in turn
        check_credential(chain, network=NETWORK.did, now_ms=T0)


def test_an_inviter_spending_one_slot_twice_gets_one_member_in() -> None:
    inviter = credential(ALICE, invites=1)
    membership = Membership(NETWORK.did)
    node = edge(membership)
    first = credential(BOB, issuer=ALICE.identity, slot=0, parent=inviter, expires=T0 + DAY)
    second = credential(CAROL, issuer=ALICE.identity, slot=0, parent=inviter, expires=T0 + DAY)
    assert isinstance(node.ingest(hello(BOB, first), T0), Accepted)
    outcome = node.ingest(hello(CAROL, second), T0)
    assert isinstance(outcome, Rejected) and outcome.reason == "invite_quota"
    assert membership.equivocations == 1


def test_outsiders_are_refused_before_any_signature_is_checked() -> None:
    node = edge(Membership(NETWORK.did))
    assert node.ingest(MALLORY.hey_there(T0).raw, T0).reason == "not_a_member"  # type: ignore[union-attr]
    assert node.ingest(MALLORY.newspaper(T0).raw, T0).reason == "not_a_member"  # type: ignore[union-attr]
    bad_sig = hello(MALLORY, msgspec.structs.replace(credential(ALICE), member=MALLORY.did,
                                                     name="mallory"))
    assert node.ingest(bad_sig, T0).reason == "bad_credential"  # type: ignore[union-attr]
    assert len(node.projection) == 0


def test_members_are_bound_to_the_name_in_their_credential() -> None:
    node = edge(Membership(NETWORK.did))
    assert isinstance(node.ingest(hello(ALICE, credential(ALICE)), T0), Accepted)
    assert isinstance(node.ingest(ALICE.newspaper(T0 + 1).raw, T0 + 1), Accepted)
    renamed = ALICE.sealed(ALICE.newspaper(T0 + 2, name="bob").event)
    assert node.ingest(renamed, T0 + 2).reason == "name_not_bound"  # type: ignore[union-attr]
    squatter = hello(MALLORY, credential(MALLORY, name="mallory"), T0)
    node.ingest(squatter, T0)
    pretend = MALLORY.sealed(MALLORY.hey_there_event(T0 + 3, name="alice",
                                                     credential=credential(MALLORY)))
    assert node.ingest(pretend, T0 + 3).reason == "name_not_bound"  # type: ignore[union-attr]
    assert node.keys.label(ALICE.did, bound=True).text == "alice"


def test_a_revocation_removes_the_member_and_everyone_it_invited() -> None:
    inviter = credential(ALICE, invites=2)
    membership = Membership(NETWORK.did)
    node = edge(membership)
    node.ingest(hello(ALICE, inviter), T0)
    node.ingest(hello(BOB, credential(BOB, issuer=ALICE.identity, slot=0, parent=inviter,
                                      expires=T0 + DAY)), T0)
    node.ingest(hello(CAROL, credential(CAROL)), T0)
    removed = membership.revoke(sign_revocation(NETWORK, member=ALICE.did, at_ms=T0))
    assert set(removed) == {ALICE.did, BOB.did}
    assert node.ingest(ALICE.newspaper(T0 + 1).raw, T0 + 1).reason == "not_a_member"  # type: ignore[union-attr]
    assert node.ingest(hello(ALICE, inviter, T0 + 2), T0 + 2).reason == "revoked"  # type: ignore[union-attr]
    assert membership.is_member(CAROL.did)
    with pytest.raises(BadCredential):  # only the network key revokes
        membership.revoke(sign_revocation(ALICE.identity, member=CAROL.did, at_ms=T0))


def test_own_status_reports_expiry_and_revocation() -> None:
    own = credential(ALICE, expires=T0 + DAY)
    membership = Membership(NETWORK.did, own=own)
    assert membership.own_status(T0)["ok"] is True
    assert membership.own_status(T0 + DAY)["ok"] is False
    membership.revoke(sign_revocation(NETWORK, member=ALICE.did, at_ms=T0))
    report = membership.own_status(T0)
    assert report["ok"] is False and "revoked" in str(report["error"])


def test_credentials_and_revocations_nested_thousands_deep_are_bad_credentials() -> None:
    """Found by the fuzzer: a ``parent`` chain 1,000 deep raised RecursionError."""
    with pytest.raises(BadCredential):
        decode_credential(b'{"parent":' * 3000 + b"null" + b"}" * 3000)
    with pytest.raises(BadCredential):
        decode_revocation(b'{"reason":' + b"[" * 3000 + b"]" * 3000 + b"}")
    cred = credential(ALICE)
    assert decode_credential(encode_credential(cred)) == cred
