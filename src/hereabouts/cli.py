"""The ``hereabouts`` command line.

Each command group registers itself with :func:`build_parser`; a command returns its exit
code. Every mistake the user can make ends in one line on stderr and a non-zero exit, never
a traceback:

* usage errors (a missing command, an unknown option, a value of the wrong type) are
  argparse's, reworded to say what to type, on one line, exit 2 (:class:`Parser`);
* bad input or configuration found later (:class:`~hereabouts.errors.HereaboutsError`) and
  files that cannot be read or written (``OSError``) are printed as
  ``hereabouts: error: ...``, exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from hereabouts import __version__
from hereabouts.advert.cli import register as register_advert
from hereabouts.config import resolve_home
from hereabouts.errors import HereaboutsError
from hereabouts.home import identity_of
from hereabouts.identity import key_file_path
from hereabouts.peers.network_cli import register as register_network
from hereabouts.sim.cli import register as register_simulate
from hereabouts.up import register as register_up
from hereabouts.web.cli import register as register_status

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers() returns


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that say where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text: str) -> str:
    """``text`` with its lines joined, for messages that must stay on one line."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def command_group(parser: argparse.ArgumentParser, dest: str) -> Commands:
    """Sub-commands of ``parser``; given none, the group says which ones exist."""
    commands = parser.add_subparsers(dest=dest, metavar="COMMAND")

    def missing(args: argparse.Namespace) -> int:
        parser.error(f"which command? {parser.prog} {'|'.join(commands.choices)}")

    parser.set_defaults(func=missing)
    return commands


def home_path(value: str) -> str:
    """``--home``'s type: any path but an empty one (which would silently mean the default)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def home_option() -> argparse.ArgumentParser:
    """A parent parser giving a command the shared ``--home`` option."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--home",
        type=home_path,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="home directory (default: $HEREABOUTS_HOME, else ~/.hereabouts)",
    )
    return parent


def _keys_show(args: argparse.Namespace) -> int:
    home = resolve_home(getattr(args, "home", None))
    identity, created = identity_of(home)
    if created:
        print(f"created a new identity in {key_file_path(home)}", file=sys.stderr)
    print(identity.did)
    return 0


def _add_keys(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="this node's identity")
    show = command_group(keys, "keys_command").add_parser(
        "show",
        parents=[home_option()],
        help="print this node's DID, creating the identity on first use",
    )
    show.set_defaults(func=_keys_show)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hereabouts",
        description="Signed, private presence for peer networks and websites.",
    )
    parser.add_argument("--version", action="version", version=f"hereabouts {__version__}")
    parser.add_argument(
        "--home",
        type=home_path,
        metavar="DIR",
        help="home directory (default: $HEREABOUTS_HOME, else ~/.hereabouts)",
    )  # also accepted after the command; the later one wins
    commands = command_group(parser, "command")
    _add_keys(commands)
    register_up(commands, home_option())
    register_status(commands)
    register_advert(commands)
    register_network(commands, home_option())
    register_simulate(commands)
    return parser


def _os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command, turning every expected failure into one line on stderr."""
    try:
        code: int = func(args)
    except HereaboutsError as exc:
        print(f"hereabouts: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``hereabouts status | head``): nothing more to say, and
        # Python must not complain when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"hereabouts: error: {one_line(_os_error(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Any = args.func
    return run_command(func, args)


if __name__ == "__main__":
    sys.exit(main())
