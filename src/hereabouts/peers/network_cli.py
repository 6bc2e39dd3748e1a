"""``hereabouts network``: create an invited network, invite members, revoke them.

Commands (defaults in brackets):

* ``init [--name N [host name]] [--days D [365]] [--invites K [0]]`` creates the network key
  in ``<home>/network/network.key`` and makes this node the first member. Prints the network
  DID. Refuses if this home already belongs to a network.
* ``invite DID --name N [--days D [365]] [--invites K [0]] [--out FILE]`` prints (or writes)
  a credential for ``DID``: signed by the network key when this home holds it, otherwise by
  this node as a member allowed to invite (spending one of its invitations).
* ``join FILE`` installs a credential issued to this node; the node is then a member of its
  network from the next ``hereabouts up``.
* ``revoke DID [--reason TEXT] [--broker mqtt://host:port]`` (network key only) signs a
  revocation, keeps it, and with ``--broker`` publishes it retained on the plaza so every
  member drops ``DID`` (and whoever it invited). A running ``hereabouts up`` on this home
  publishes every kept revocation at start as well.
* ``show`` prints this node's standing: open, or member of which network, until when.

Every command but ``show`` writes the home, so it holds the home's lock while it runs
(:mod:`hereabouts.home`): beside a ``hereabouts up`` on the same home it refuses in one
line naming that process. Bad input (names peers would refuse, out-of-range numbers, a
malformed DID or broker URL) is refused before anything is signed: one line, exit 2
(through :func:`hereabouts.cli.main`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hereabouts.broker_url import parse_broker_url
from hereabouts.config import argument_type, certificate_file, resolve_home
from hereabouts.errors import InvalidDID, RemoteError
from hereabouts.events import Credential, check_name
from hereabouts.home import HomeLock, identity_of
from hereabouts.identity import (
    Identity,
    load_or_create_identity,
    public_key_from_did,
    save_identity,
)
from hereabouts.peers.membership import (
    NetworkSetupError,
    check_credential,
    decode_credential,
    encode_credential,
    encode_revocation,
    issue_credential,
    revocation_key,
    sign_revocation,
)
from hereabouts.peers.network import (
    NETWORK_KEY_FILE,
    load_credential,
    load_invited,
    load_network_key,
    load_revocations,
    network_dir,
    save_credential,
    save_invited,
    save_revocations,
)

DEFAULT_DAYS = 365
"""A credential's default lifetime: a year, renewed by issuing a new one. Expiry bounds how
long a lost or stolen key stays a member if its revocation never reaches a node."""

PUBLISH_TIMEOUT_S = 15.0
"""How long ``revoke --broker`` waits to connect and have the broker take the message."""

_DAY_MS = 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


MAX_DAYS = 3650
"""Longest credential lifetime ``--days`` accepts: ten years. Longer would outlive any key
rotation plan; expiry is what removes a lost key that no revocation reached."""

MAX_INVITES = 10_000
"""Most invitations one credential may carry: the credential format's own bound
(:class:`~hereabouts.events.Credential`), checked here so it is refused before signing."""

MAX_REASON_CHARS = 200
"""Longest ``revoke --reason``: the revocation format's own bound, which members enforce."""


def _home(args: argparse.Namespace) -> tuple[Path, Identity]:
    """The home and its identity, for a command already holding the home lock."""
    home = resolve_home(getattr(args, "home", None))
    identity, created = load_or_create_identity(home)
    if created:
        print(f"created a new identity for this node ({identity.did})", file=sys.stderr)
    return home, identity


def _holding_home(command: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """``command`` run while it holds the home's lock (it writes the home)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with HomeLock(resolve_home(getattr(args, "home", None))):
            return command(args)

    return run


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _did(text: str) -> str:
    """An argparse type: a node's ``did:key``."""
    try:
        public_key_from_did(text)
    except InvalidDID as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a node's DID: {exc}") from None
    return text


def _reason(text: str) -> str:
    if len(text) > MAX_REASON_CHARS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_REASON_CHARS} characters, got {len(text)}"
        )
    return text


def _init(args: argparse.Namespace) -> int:
    home, identity = _home(args)
    if load_credential(home) is not None:
        raise NetworkSetupError(
            f"{home} already belongs to a network ({network_dir(home)}); use another --home"
        )
    key_path = network_dir(home) / NETWORK_KEY_FILE
    if key_path.exists():
        raise NetworkSetupError(f"{key_path} exists already; it was left untouched")
    network = Identity.generate()
    network_dir(home).mkdir(parents=True, exist_ok=True, mode=0o700)
    save_identity(network, key_path)
    now = _now_ms()
    own = issue_credential(
        network,
        network=network.did,
        member=identity.did,
        name=_name(args.name),
        issued_at_ms=now,
        expires_at_ms=now + args.days * _DAY_MS,
        invites=args.invites,
    )
    save_credential(home, own)
    print(f"network {network.did}")
    print(f"this node is its first member, as {own.name!r}; the network key is {key_path}")
    print("invite others with: hereabouts network invite <their DID> --name <their name>")
    return 0


def _name(name: str | None) -> str:
    """``--name`` (checked by its type), else the host name."""
    return name if name is not None else check_name(socket.gethostname() or "node")


def _invite(args: argparse.Namespace) -> int:
    home, identity = _home(args)
    member = args.did  # checked by its argparse type
    now = _now_ms()
    expires = now + args.days * _DAY_MS
    network_key = load_network_key(home)
    if network_key is not None:
        credential = issue_credential(
            network_key,
            network=network_key.did,
            member=member,
            name=_name(args.name),
            issued_at_ms=now,
            expires_at_ms=expires,
            invites=args.invites,
        )
    else:
        credential = _invite_as_member(home, identity, member, args, now, expires)
    text = encode_credential(credential).decode() + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(
            f"wrote {args.out}: give it to the node, which runs: hereabouts network join "
            f"{args.out}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


def _invite_as_member(
    home: Path, identity: Identity, member: str, args: argparse.Namespace, now: int, expires: int
) -> Credential:
    own = load_credential(home)
    if own is None:
        raise NetworkSetupError(
            "this home holds neither the network key nor a credential; nothing can invite"
        )
    if own.parent is not None or own.invites == 0:
        raise NetworkSetupError("this node's credential does not allow it to invite anyone")
    if args.invites:
        raise NetworkSetupError("members cannot grant invitations; only the network key can")
    invited = load_invited(home)
    slot = invited.get(member)
    if slot is None:
        free = sorted(set(range(own.invites)) - set(invited.values()))
        if not free:
            raise NetworkSetupError(f"this node has spent all {own.invites} of its invitations")
        slot = free[0]
    credential = issue_credential(
        identity,
        network=own.network,
        member=member,
        name=_name(args.name),
        issued_at_ms=now,
        expires_at_ms=min(expires, own.expires_at_ms),
        slot=slot,
        parent=own,
    )
    invited[member] = slot
    save_invited(home, invited)
    return credential


def _join(args: argparse.Namespace) -> int:
    home, identity = _home(args)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise NetworkSetupError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    credential = decode_credential(data.strip())
    if credential.member != identity.did:
        raise NetworkSetupError(
            f"this credential is for {credential.member}, but this node is {identity.did}"
        )
    check_credential(credential, network=credential.network, now_ms=_now_ms())
    existing = load_credential(home)
    if existing is not None and existing.network != credential.network:
        raise NetworkSetupError(
            f"this node already belongs to network {existing.network}; use another --home"
        )
    save_credential(home, credential)
    days = (credential.expires_at_ms - _now_ms()) // _DAY_MS
    print(f"joined network {credential.network} as {credential.name!r} for {days} days")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    home, _ = _home(args)
    network_key = load_network_key(home)
    if network_key is None:
        raise NetworkSetupError("only the home holding the network key can revoke members")
    member = args.did  # checked by its argparse type
    revocation = sign_revocation(network_key, member=member, at_ms=_now_ms(), reason=args.reason)
    kept = [r for r in load_revocations(home, network_key.did) if r.member != member]
    save_revocations(home, [*kept, revocation])
    print(f"revoked {member}")
    if args.broker:
        payload = encode_revocation(revocation)
        asyncio.run(_publish(args.broker, revocation_key(member), payload, ca=args.broker_ca))
        shown = parse_broker_url(args.broker).redacted()
        print(f"published on {shown}; members drop it as soon as they read it")
    else:
        print("members learn it when a hereabouts up on this home starts, or use --broker")
    return 0


async def _publish(broker: str, key: str, payload: bytes, *, ca: str | None = None) -> None:
    from hereabouts.peers.node import parse_broker_url as with_password
    from hereabouts.progress import Spinner
    from hereabouts.transports.mqtt import MqttSettings, MqttTransport, likely_cause, plain_error
    from hereabouts.transports.topics import revoked_topic

    url = with_password(broker)
    if ca is not None and not url.tls:
        raise NetworkSetupError("--broker-ca is for TLS; write the broker URL as mqtts://")
    settings = MqttSettings.from_url(url, ca_file=ca)
    broker = url.redacted()
    # quiet: this command says what went wrong itself, in one line.
    transport = MqttTransport(node_name="revoke", settings=settings, quiet=True)
    kept = "the revocation is kept, and a hereabouts up on this home publishes it at start"
    try:
        with Spinner(f"publishing the revocation on {broker}"):
            await transport.connect()
            if not await transport.wait_connected(PUBLISH_TIMEOUT_S):
                error = transport.state.last_error
                raise NetworkSetupError(
                    f"could not reach the broker at {broker} within {PUBLISH_TIMEOUT_S:g}s "
                    f"({plain_error(error)}: "
                    f"{likely_cause(error, timeout_s=settings.timeout_s)}); {kept}"
                )
            await asyncio.wait_for(
                transport.publish(revoked_topic(key), payload, qos=1, retain=True),
                PUBLISH_TIMEOUT_S,
            )
    except TimeoutError:
        raise NetworkSetupError(f"the broker at {broker} did not take it; {kept}") from None
    finally:
        await transport.close()


def _show(args: argparse.Namespace) -> int:
    home = resolve_home(getattr(args, "home", None))
    identity, created = identity_of(home)  # reads; locks only to create the key
    if created:
        print(f"created a new identity for this node ({identity.did})", file=sys.stderr)
    credential = load_credential(home)
    if credential is None:
        print(f"{identity.did}: open network (no credential in {network_dir(home)})")
        return 0
    now = _now_ms()
    try:
        check_credential(credential, network=credential.network, now_ms=now)
        state = f"valid for {(credential.expires_at_ms - now) // _DAY_MS} more days"
    except RemoteError as exc:
        state = f"NOT VALID: {exc}"
    print(f"network   {credential.network}")
    print(f"member    {identity.did} as {credential.name!r}, {state}")
    if credential.invites:
        used = len(load_invited(home))
        print(f"invites   {credential.invites - used} of {credential.invites} left")
    if load_network_key(home) is not None:
        print(f"authority this home holds the network key ({network_dir(home)})")
    revoked = load_revocations(home, credential.network)
    print(f"revoked   {len(revoked)} member(s)")
    return 0


def register(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    home_parent: argparse.ArgumentParser,
) -> None:
    from hereabouts.cli import command_group  # here, not at import: cli imports this module

    network = commands.add_parser(
        "network", help="invited networks: create one, invite and revoke members"
    )
    sub = command_group(network, "network_command")
    days = _bounded(1, MAX_DAYS)
    invites = _bounded(0, MAX_INVITES)
    init = sub.add_parser("init", parents=[home_parent], help="create an invited network")
    init.add_argument(
        "--name",
        type=argument_type(check_name),
        help="this node's name in it (default: the host name)",
    )
    init.add_argument(
        "--days",
        type=days,
        default=DEFAULT_DAYS,
        help=f"credential lifetime, 1-{MAX_DAYS} (default: {DEFAULT_DAYS})",
    )
    init.add_argument(
        "--invites",
        type=invites,
        default=0,
        help=f"members this node may invite, 0-{MAX_INVITES} (default: 0)",
    )
    init.set_defaults(func=_holding_home(_init))
    invite = sub.add_parser("invite", parents=[home_parent], help="issue a member credential")
    invite.add_argument("did", type=_did, help="the new member's DID (its `hereabouts keys show`)")
    invite.add_argument(
        "--name", type=argument_type(check_name), required=True, help="the name the member goes by"
    )
    invite.add_argument(
        "--days",
        type=days,
        default=DEFAULT_DAYS,
        help=f"credential lifetime, 1-{MAX_DAYS} (default: {DEFAULT_DAYS})",
    )
    invite.add_argument(
        "--invites",
        type=invites,
        default=0,
        help="how many members it may invite in turn (network key only)",
    )
    invite.add_argument(
        "--out", metavar="FILE", help="write the credential to this file instead of stdout"
    )
    invite.set_defaults(func=_holding_home(_invite))
    join = sub.add_parser("join", parents=[home_parent], help="install this node's credential")
    join.add_argument("file", help="the credential file an inviter gave you")
    join.set_defaults(func=_holding_home(_join))
    revoke = sub.add_parser("revoke", parents=[home_parent], help="revoke a member")
    revoke.add_argument("did", type=_did, help="the member's DID")
    revoke.add_argument(
        "--reason",
        type=_reason,
        default="",
        help=f"a short note kept with the revocation (at most {MAX_REASON_CHARS} characters)",
    )
    revoke.add_argument(
        "--broker",
        type=argument_type(parse_broker_url),
        metavar="URL",
        help="mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT][,HOST...] to publish the revocation on "
        "(the password may come from HEREABOUTS_BROKER_PASSWORD)",
    )
    revoke.add_argument(
        "--broker-ca",
        type=certificate_file,
        metavar="FILE",
        help="PEM certificate authorities to check an mqtts:// broker against",
    )
    revoke.set_defaults(func=_holding_home(_revoke))
    show = sub.add_parser("show", parents=[home_parent], help="this node's standing")
    show.set_defaults(func=_show)


__all__ = ["register"]
