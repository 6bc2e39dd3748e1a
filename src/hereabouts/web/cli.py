"""``hereabouts status``: ask a running node who is here, and print it.

``hereabouts status [--url URL] [--json] [--watch [--interval S]] [--color WHEN]``

* the table (:mod:`hereabouts.web.table`) by default, ONLINE first, then by name; in colour
  on a terminal, plain when piped or when ``NO_COLOR`` is set (``--color always|never``
  decides instead);
* ``--json``: the node's ``/v1/peers`` answer exactly as sent, one document per line;
* ``--watch``: ask again every ``--interval`` seconds until Ctrl-C.

A node that does not answer is a normal situation, not a crash: it prints one line and
exits 1; a node slow to answer gets a spinner on a terminal (:mod:`hereabouts.progress`).
Bad options are refused by their argparse types, one line, exit 2. This module imports only
httpx, so the command starts fast.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, TextIO

import httpx

from hereabouts.progress import Spinner
from hereabouts.web.table import render_status

DEFAULT_URL: Final = "http://127.0.0.1:8765"
"""Where ``hereabouts up`` serves by default."""

DEFAULT_TIMEOUT_S: Final = 5.0
"""A node on the same machine answers in milliseconds; 5 s allows a busy or remote one."""

DEFAULT_INTERVAL_S: Final = 2.0
"""``--watch`` refresh period: live enough to follow a restart, light on the node."""

MAX_INTERVAL_S: Final = 86_400.0
"""Longest ``--interval``: a day. Longer is no longer watching."""

NO_COLOR_ENV: Final = "NO_COLOR"
"""Set to anything non-empty, it turns colour off unless ``--color always`` (no-color.org)."""

_CLEAR: Final = "\x1b[H\x1b[2J"


class NodeUnreachable(Exception):
    """The node could not be asked, or did not answer as a hereabouts node does."""


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a node's address, or None when it can."""
    if not url.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:
        return f"is not a valid URL ({exc})"
    return None if host else "has no host"


def fetch_peers(client: httpx.Client, url: str) -> tuple[str, dict[str, Any]]:
    """``GET <url>/v1/peers``: the body as sent and as parsed."""
    try:
        response = client.get(f"{url}/v1/peers")
    except httpx.TransportError:
        raise NodeUnreachable(
            f"no hereabouts node answers at {url} — is `hereabouts up` running?"
        ) from None
    if response.status_code != 200:
        raise NodeUnreachable(
            f"{url} answered HTTP {response.status_code} to /v1/peers; is it a hereabouts node?"
        )
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("peers"), list):
        raise NodeUnreachable(f"{url} did not answer /v1/peers with a hereabouts peer list")
    return response.text, document


def use_colour(
    when: str, stream: TextIO | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Whether to colour: ``always``, ``never``, or ``auto``: on a terminal without
    ``NO_COLOR`` (and not ``TERM=dumb``)."""
    if when != "auto":
        return when == "always"
    source = os.environ if env is None else env
    if source.get(NO_COLOR_ENV):
        return False
    target = sys.stdout if stream is None else stream
    try:
        tty = target.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and source.get("TERM", "") != "dumb"


def _report(raw: str, document: dict[str, Any], args: argparse.Namespace) -> str:
    if args.json:
        return raw.strip()
    now_ms = time.time_ns() // 1_000_000
    return "\n".join(render_status(document, now_ms=now_ms, colour=args.colour))


def _url(text: str) -> str:
    """An argparse type: a node's http(s) address."""
    problem = url_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return text


def _interval(text: str) -> float:
    """An argparse type: seconds between updates, more than 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_INTERVAL_S:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {MAX_INTERVAL_S:g} seconds, got {text!r}"
        )
    return value


def _status(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    args.colour = use_colour(args.color)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Peer names can be any script; a terminal that cannot show one must not crash us.
        sys.stdout.reconfigure(errors="backslashreplace")
    # trust_env=False: a proxy from the environment must not sit between us and a local node.
    with httpx.Client(timeout=DEFAULT_TIMEOUT_S, trust_env=False) as client:
        try:
            with Spinner(f"asking {url}"):
                raw, document = fetch_peers(client, url)
        except NodeUnreachable as exc:
            print(exc, file=sys.stderr)
            return 1
        if not args.watch:
            print(_report(raw, document, args))
            return 0
        return _watch(client, url, args, raw, document)


def _watch(
    client: httpx.Client, url: str, args: argparse.Namespace, raw: str, document: dict[str, Any]
) -> int:
    redraw = sys.stdout.isatty() and not args.json
    try:
        while True:
            text = _report(raw, document, args)
            if redraw:
                stamp = time.strftime("%H:%M:%S")
                text = f"{_CLEAR}{text}\n\n{stamp}  every {args.interval:g}s, Ctrl-C to stop"
            elif not args.json:
                text += "\n"  # a blank line between successive tables
            print(text, flush=True)
            outage = False
            while True:
                time.sleep(args.interval)
                try:
                    raw, document = fetch_peers(client, url)
                    break
                except NodeUnreachable as exc:
                    # Keep watching: a node restarting is exactly what one watches for.
                    if not outage:
                        print(exc, file=sys.stderr, flush=True)
                        outage = True
    except KeyboardInterrupt:
        return 0


def register(commands: Any) -> None:
    """Add the ``status`` command to the top-level sub-parsers."""
    status = commands.add_parser(
        "status", help="show who a running node sees (its /v1/peers)",
        description="Ask a running hereabouts node who is here.",
    )
    status.add_argument("--url", type=_url, default=DEFAULT_URL, metavar="URL",
                        help=f"the node's HTTP address (default: {DEFAULT_URL})")
    status.add_argument("--json", action="store_true",
                        help="print the node's JSON answer as sent")
    status.add_argument("--watch", action="store_true",
                        help="ask again every --interval seconds until Ctrl-C")
    status.add_argument("--interval", type=_interval, default=DEFAULT_INTERVAL_S, metavar="S",
                        help=f"seconds between --watch updates (default: {DEFAULT_INTERVAL_S:g})")
    status.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        metavar="WHEN",
                        help="colour the table: auto (on a terminal, unless NO_COLOR is set), "
                        "always or never (default: auto)")
    status.set_defaults(func=_status)
