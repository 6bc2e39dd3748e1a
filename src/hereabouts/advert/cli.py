"""``hereabouts advert``: publish, verify and show presence@2 documents.

Commands (defaults in brackets):

* ``publish --alias A [default] --endpoint NAME=URL ... [--relay DID=URL[@TIME]] ...
  [--ttl SECONDS [600]] [--index PATH | --merkle-root ROOT [the empty index]]
  [--issued-at TIME [now]]`` signs with this node's identity and writes
  ``<home>/presence/<alias>/<stamp>.json``.
* ``verify PATH|URL [--at TIME [now]]`` exits 0 with a summary when the document is valid,
  1 with the reason when it is not.
* ``show [--alias A]`` prints the alias's newest valid document, or one line per alias;
  every newer document it had to leave out gets one line on stderr saying why.

Bad input prints one line and exits 2 (through :func:`hereabouts.cli.main`); this module
turns file and argument problems into :class:`~hereabouts.advert.errors.AdvertUsageError`
so no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from hereabouts.advert.document import (
    DEFAULT_LIFETIME_S,
    MAX_FUTURE_SKEW_S,
    MAX_LIFETIME_S,
    PresenceInfo,
    check_presence,
    check_untimed,
)
from hereabouts.advert.errors import AdvertUsageError, PresenceRejected
from hereabouts.advert.fetch import fetch_presence, is_url, read_presence_file, served_path
from hereabouts.advert.index import load_index
from hereabouts.advert.merkle import MerkleTree, parse_root
from hereabouts.advert.publish import next_issue_time, publish_presence
from hereabouts.advert.store import DEFAULT_ALIAS, PresenceStore, check_alias
from hereabouts.advert.timestamps import format_time, parse_time, utc_now
from hereabouts.config import resolve_home
from hereabouts.errors import StorageError
from hereabouts.home import identity_of
from hereabouts.identity import key_file_path

_TIME_TAIL = re.compile(r"@(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2}))\Z")


def parse_cli_time(text: str) -> datetime:
    """An RFC 3339 time from the command line; offsets other than Z are accepted here."""
    try:
        return parse_time(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AdvertUsageError(f"{text!r} is not a time like 2025-01-01T11:50:00Z") from None
    if moment.tzinfo is None:
        raise AdvertUsageError(f"{text!r} has no timezone; add Z for UTC")
    return moment


def parse_endpoint(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise AdvertUsageError(f"--endpoint {text!r} is not NAME=URL")
    return name, url


def parse_relay(text: str) -> dict[str, str]:
    """``DID=URL`` or ``DID=URL@TIME``; the DID ends at the first ``=``."""
    host, sep, rest = text.partition("=")
    if not sep or not host or not rest:
        raise AdvertUsageError(f"--relay {text!r} is not DID=URL[@TIME]")
    entry = {"host": host, "url": rest}
    match = _TIME_TAIL.search(rest)
    if match:
        entry["url"] = rest[: match.start()]
        entry["expires_at"] = format_time(parse_cli_time(match.group(1)))
    return entry


def _identity(args: argparse.Namespace) -> Any:
    home = resolve_home(getattr(args, "home", None))
    # Publishing may run beside a hereabouts up on this home (it serves what is written);
    # only creating the key takes the home's lock (hereabouts.home).
    identity, created = identity_of(home)
    if created:
        print(f"created a new identity in {key_file_path(home)}", file=sys.stderr)
    return identity, home


def _publish(args: argparse.Namespace) -> int:
    alias = check_alias(args.alias)
    endpoints: dict[str, str] = {}
    for text in args.endpoint or []:
        name, url = parse_endpoint(text)
        if name in endpoints:
            raise AdvertUsageError(f"endpoint {name!r} given twice")
        endpoints[name] = url
    relays = [parse_relay(text) for text in args.relay or []]
    if not 0 < args.ttl <= MAX_LIFETIME_S:
        raise AdvertUsageError(f"--ttl must be between 1 and {MAX_LIFETIME_S} seconds")
    explicit_time = parse_cli_time(args.issued_at) if args.issued_at is not None else None
    merkle_root = args.merkle_root.lower() if args.merkle_root is not None else None
    if merkle_root is not None:
        try:
            parse_root(merkle_root)
        except ValueError as exc:
            raise AdvertUsageError(f"--merkle-root: {exc}") from None
    index = load_index(args.index) if args.index else None
    empty = index is None and merkle_root is None
    if empty:
        # A node that gave no index publishes nothing yet: its index is the empty one, and
        # a later --index links to it with a consistency proof (the index only grew).
        index = MerkleTree()
    identity, home = _identity(args)
    store = PresenceStore(home)
    issued_at = explicit_time or next_issue_time(store.latest(alias), utc_now())
    published = publish_presence(
        identity=identity,
        store=store,
        alias=alias,
        endpoints=endpoints,
        issued_at=issued_at,
        relays=relays,
        lifetime_s=args.ttl,
        ttl_seconds=args.ttl,
        index=index,
        merkle_root=merkle_root,
    )
    print(f"published {published.path}")
    print(f"  id          {published.doc['id']}")
    print(f"  merkle_root {published.doc['merkle_root']}")
    print(f"  expires_at  {published.doc['expires_at']}")
    print(f"  served at   {served_path(alias)} by `hereabouts up` on this home")
    if empty:
        print("  no --index or --merkle-root: merkle_root is the empty index's root; "
              "pass --index PATH to advertise an index")
    else:
        print(f"  {published.note}")
    return 0



def _summary(doc: dict[str, Any], info: Any) -> list[str]:
    lines = [
        f"valid presence@2 document {doc['id']}",
        f"  did         {info.did}",
        f"  issued_at   {doc['issued_at']}",
        f"  expires_at  {doc['expires_at']}",
        f"  merkle_root {info.merkle_root}",
    ]
    for name, url in sorted(info.endpoints.items()):
        lines.append(f"  endpoint    {name} = {url}")
    for relay in info.relays:
        until = f" until {format_time(relay.expires_at)}" if relay.expires_at else ""
        lines.append(f"  relay       {relay.host} at {relay.url}{until}")
    if info.proof is not None:
        lines.append(
            f"  proof       index grew from {info.proof.old_size} to {info.proof.new_size} "
            f"leaves (from sha256:{info.proof.old_root.hex()})"
        )
    return lines


_SCHEME = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")


def _verify(args: argparse.Namespace) -> int:
    at = parse_cli_time(args.at) if args.at is not None else None
    if _SCHEME.match(args.target) and not is_url(args.target):
        raise AdvertUsageError(
            f"cannot fetch {args.target}: only http:// and https:// URLs, or a file path"
        )
    try:
        doc = fetch_presence(args.target) if is_url(args.target) else read_presence_file(
            args.target
        )
        info = check_presence(doc, now=at)
    except PresenceRejected as exc:
        print(f"invalid ({exc.reason}): {exc}", file=sys.stderr)
        return 1
    print("\n".join(_summary(doc, info)))
    return 0


def newest_valid(
    store: PresenceStore, alias: str
) -> tuple[dict[str, Any] | None, PresenceInfo | None, list[str]]:
    """The alias's newest document that passes every check but the clock's, its contents,
    and one line for each newer file left out (its path and why)."""
    skipped: list[str] = []
    for path in reversed(store.paths(alias)):
        try:
            doc = store.load(path)
            info = check_untimed(doc)
        except (StorageError, PresenceRejected) as exc:
            skipped.append(f"skipped {path} ({exc.reason}): {exc}")
            continue
        return doc, info, skipped
    return None, None, skipped


def time_state(info: PresenceInfo, now: datetime) -> str:
    if now >= info.expires_at:
        return "expired"
    if info.issued_at > now + timedelta(seconds=MAX_FUTURE_SKEW_S):
        return "not yet valid"
    return "valid"


def _report(skipped: list[str]) -> None:
    for line in skipped:
        print(line, file=sys.stderr)


def _show(args: argparse.Namespace) -> int:
    home = resolve_home(getattr(args, "home", None))
    store = PresenceStore(home)
    now = utc_now()
    if args.alias is not None:
        alias = check_alias(args.alias)
        doc, _, skipped = newest_valid(store, alias)
        _report(skipped)
        if doc is None:
            what = f"no valid presence document for alias {alias!r}" if skipped else (
                f"no presence documents for alias {alias!r}")
            raise AdvertUsageError(what)
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    aliases = store.aliases()
    if not aliases:
        print(f"no presence documents under {store.root}")
        return 0
    for alias in aliases:
        doc, info, skipped = newest_valid(store, alias)
        _report(skipped)
        if doc is None or info is None:
            continue
        print(f"{alias}\t{doc['issued_at']}\t{doc['expires_at']}\t{time_state(info, now)}")
    return 0


def register(commands: Any) -> None:
    """Add the ``advert`` command group to the top-level sub-parsers."""
    from hereabouts.cli import command_group, home_option  # not at import: cli imports us

    advert = commands.add_parser("advert", help="presence@2 documents (WAN presence)")
    sub = command_group(advert, "advert_command")

    publish = sub.add_parser(
        "publish", parents=[home_option()], help="sign and store a new presence document"
    )
    publish.add_argument("--alias", default=DEFAULT_ALIAS,
                         help=f"which face of this node (default: {DEFAULT_ALIAS})")
    publish.add_argument("--endpoint", action="append", metavar="NAME=URL",
                         help="a reachable endpoint (http or https); repeat for more")
    publish.add_argument("--relay", action="append", metavar="DID=URL[@TIME]",
                         help="a relay allowed to serve this document, optionally until TIME")
    publish.add_argument("--ttl", type=int, default=DEFAULT_LIFETIME_S,
                         help="lifetime and ttl_seconds, in seconds "
                         f"(default: {DEFAULT_LIFETIME_S})")
    source = publish.add_mutually_exclusive_group()
    source.add_argument("--index", metavar="PATH",
                        help="a directory (files by path and hash) or a file (one entry a line)"
                        "; without --index or --merkle-root, the empty index")
    source.add_argument("--merkle-root", metavar="ROOT",
                        help="an externally computed root, sha256:<64 hex>")
    publish.add_argument("--issued-at", metavar="TIME",
                         help="issue time, RFC 3339 (default: now, or a second after the "
                         "previous issue if that is later)")
    publish.set_defaults(func=_publish)

    verify = sub.add_parser(
        "verify", parents=[home_option()], help="check a presence document from a file or URL"
    )
    verify.add_argument("target", metavar="PATH|URL")
    verify.add_argument("--at", metavar="TIME", help="verify as of this time (default: now)")
    verify.set_defaults(func=_verify)

    show = sub.add_parser("show", parents=[home_option()], help="show published documents")
    show.add_argument("--alias", help="print this alias's newest document as JSON")
    show.set_defaults(func=_show)
