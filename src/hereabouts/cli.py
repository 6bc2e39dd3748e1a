"""The ``hereabouts`` command line.

Each command group registers itself with :func:`build_parser`; a command returns its exit
code. Errors from bad input or configuration (:class:`~hereabouts.errors.HereaboutsError`)
are printed as one clear line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hereabouts import __version__
from hereabouts.advert.cli import register as register_advert
from hereabouts.config import resolve_home
from hereabouts.errors import HereaboutsError
from hereabouts.identity import key_file_path, load_or_create_identity
from hereabouts.peers.network_cli import register as register_network
from hereabouts.up import register as register_up
from hereabouts.web.cli import register as register_status


def _keys_show(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    identity, created = load_or_create_identity(home)
    if created:
        print(f"created a new identity in {key_file_path(home)}", file=sys.stderr)
    print(identity.did)
    return 0


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers() returns


def home_option() -> argparse.ArgumentParser:
    """A parent parser giving a command the shared ``--home`` option."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--home",
        default=argparse.SUPPRESS,
        help="home directory (default: $HEREABOUTS_HOME, else ~/.hereabouts)",
    )
    return parent


def _add_keys(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="this node's identity")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    show = keys_commands.add_parser(
        "show",
        parents=[home_option()],
        help="print this node's DID, creating the identity on first use",
    )
    show.set_defaults(func=_keys_show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hereabouts",
        description="Signed, private presence for peer networks and websites.",
    )
    parser.add_argument("--version", action="version", version=f"hereabouts {__version__}")
    parser.add_argument(
        "--home",
        help="home directory (default: $HEREABOUTS_HOME, else ~/.hereabouts)",
    )  # also accepted after the command; the later one wins
    commands = parser.add_subparsers(dest="command", required=True)
    _add_keys(commands)
    register_up(commands, home_option())
    register_status(commands)
    register_advert(commands)
    register_network(commands, home_option())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except HereaboutsError as exc:
        print(f"hereabouts: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
