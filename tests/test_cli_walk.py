"""The whole command line walked with bad values: every mistake is one line, never a traceback.

Every command and every option of ``hereabouts`` gets values a user could plausibly type
wrong (and values the wire would refuse), each run as a real process. Each must exit
non-zero with exactly one line on stderr and no ``Traceback`` anywhere. A second test walks
the parser itself, so an option added without a bad value here fails the suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hereabouts.cli import build_parser
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(280)

DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
ROOT = "sha256:" + "0" * 64
WORKERS = 2
"""Two processes at a time: the suite shares its machine's two cores."""

CASE_TIMEOUT_S = 30.0
"""A refusal takes well under a second; a case still running after this has started."""


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    """The exit status expected, when it matters (None: any failure)."""

    def __str__(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{env} hereabouts {' '.join(self.args)}".strip()


def cases(places: Places) -> Iterator[Case]:
    afile, nowhere, junk, home = places.afile, places.nowhere, places.junk, places.home
    bad_homes = (("--home", afile), ("--home", f"{afile}/under"), ("--home", ""))

    # The command itself.
    for args in ((), ("bogus",), ("--bogus",), ("--home", "", "keys", "show"), ("keys",),
                 ("keys", "bogus"), ("keys", "show", "extra"), ("advert",), ("network",)):
        yield Case(args, exit_code=2)
    for bad in bad_homes:
        yield Case(("keys", "show", *bad), exit_code=2)
    yield Case(("keys", "show"), env={"HEREABOUTS_HOME": afile}, exit_code=2)

    # up: every value must be refused before anything starts.
    up = ("up", "--fast", "--home", home)
    port = ("--broker-port", str(free_port()))
    for name in ("", "x" * 65, " leading", "trailing ", "tab\there", "bidi\u202eover", "nul\x01"):
        yield Case((*up, *port, "--name", name), exit_code=2)
    for url in ("mqtt://127.0.0.1:abc", "mqtt://127.0.0.1:99999", "mqtt://[::1", "mqtt://",
                "http://127.0.0.1:1883", "127.0.0.1:1883", "mqtt://:p@127.0.0.1:1883",
                "mqtt://127.0.0.1:0", "mqtt://127.0.0.1:1883/path", "", "mqtt://a:1,,b:2",
                "mqtt://127.0.0.1?protocol=4", "mqtts://127.0.0.1?tls=1", "ws://127.0.0.1",
                "mqtt://127.0.0.1:1883,127.0.0.1:x", "mqtt://::1:1883"):
        yield Case((*up, "--broker", url), exit_code=2)
    for value in ("0", "65536", "-1", "abc", ""):
        yield Case((*up, "--broker-port", value), exit_code=2)
    yield Case((*up, "--broker", "mqtt://127.0.0.1:1883", "--broker-port", "1884"), exit_code=2)
    for value in ("abc", "127.0.0.1", ":99999", "127.0.0.1:-1", "127.0.0.1:", "",
                  "256.256.256.256:8080", "no-such-host.invalid:8080"):
        yield Case((*up, *port, "--http", value), exit_code=2)
    for value in ("-1", "x", "1.5", "51"):
        yield Case((*up, *port, "--peers", value), exit_code=2)
    for value in ("0", "65", "-1", "x", "1.5", ""):
        yield Case((*up, *port, "--workers", value), exit_code=2)
    for seed in ("ftp://127.0.0.1:1", "http://", "127.0.0.1:8765", "http://127.0.0.1:abc",
                 "http://127.0.0.1:8765/v1/mesh/sync", ""):
        yield Case((*up, *port, "--mesh-seed", seed), exit_code=2)
        yield Case((*up, *port, "--mesh-url", seed), exit_code=2)
    yield Case((*up, "--no-plaza", "--broker", "mqtt://127.0.0.1:1883"), exit_code=2)
    for ca in (nowhere, junk, str(places.root)):
        yield Case((*up, *port, "--mesh", "--mesh-ca", ca), exit_code=2)
    yield Case((*up, "--no-plaza", *port), exit_code=2)
    tls = ("--broker", "mqtts://127.0.0.1:8883")
    for flag in ("--broker-ca", "--broker-cert", "--broker-key"):
        for bad_file in (nowhere, str(places.root)):
            yield Case((*up, *tls, flag, bad_file), exit_code=2)
    for flag in ("--broker-ca", "--broker-cert"):
        yield Case((*up, *tls, flag, junk), exit_code=2)
    yield Case((*up, "--broker", "mqtt://127.0.0.1:1883", "--broker-key", junk), exit_code=2)
    yield Case((*up, *tls, "--broker-key", junk), exit_code=2)  # no --broker-cert
    yield Case((*up, *port, "--broker-key", junk), exit_code=2)  # no broker at all
    yield Case((*up, "--broker", "mqtt://127.0.0.1:1", *tls), exit_code=2)  # mqtt and mqtts
    yield Case((*up, "--broker", "mqtt://u@a:1", "--broker", "mqtt://v@b:1"), exit_code=2)
    yield Case((*up, "--broker", "mqtt://127.0.0.1:1883"),
               env={"HEREABOUTS_BROKER_PASSWORD": "pw"}, exit_code=2)  # a password, no user
    for flag in ("--stealth", "--fast", "--no-sites", "--ghost-hard-off", "--verbose", "--mesh",
                 "--no-plaza", "--no-pulses"):
        yield Case((*up, *port, f"{flag}=yes"), exit_code=2)
    for bad in bad_homes:
        yield Case(("up", "--fast", *port, *bad), exit_code=2)
    yield Case(("up", "--fast", *port), env={"HEREABOUTS_HOME": afile}, exit_code=2)
    for variable, value in (("HEREABOUTS_HTTP_MAX_CONNECTIONS", "many"),
                            ("HEREABOUTS_HTTP_HEADER_TIMEOUT", "-3"),
                            ("HEREABOUTS_RELAY_TTL", "soon"),
                            ("PRESENCE_HUB_POW_BITS", "99"),
                            ("PRESENCE_DID_DURATION", "0")):
        yield Case((*up, *port), env={variable: value}, exit_code=2)
    yield Case((*up, *port, "--bogus"), exit_code=2)

    # status
    for url in ("", "ftp://127.0.0.1", "http://", "http://127.0.0.1:1:1", "127.0.0.1:8765"):
        yield Case(("status", "--url", url), exit_code=2)
    yield Case(("status", "--url", f"http://127.0.0.1:{free_port()}"), exit_code=1)
    for value in ("0", "-1", "x", "nan", "inf", ""):
        yield Case(("status", "--watch", "--interval", value), exit_code=2)
    for flag in ("--json", "--watch"):
        yield Case(("status", f"{flag}=yes"), exit_code=2)
    for value in ("rainbow", ""):
        yield Case(("status", "--color", value), exit_code=2)

    # advert
    publish = ("advert", "publish", "--home", home, "--endpoint", "api=https://example.org/api")
    with_root = (*publish, "--merkle-root", ROOT)
    for alias in ("../up", "", ".hidden", "x" * 65):
        yield Case((*with_root, "--alias", alias), exit_code=2)
    for endpoint in ("noequals", "=https://x.org", "api=", "api=ftp://example.org",
                     "api=https://exa mple.org"):
        yield Case(("advert", "publish", "--home", home, "--merkle-root", ROOT,
                    "--endpoint", endpoint))
    for relay in ("x", "notadid=https://relay.example", f"{DID}=", f"{DID}=ftp://relay"):
        yield Case((*with_root, "--relay", relay))
    for ttl in ("0", "-5", "x", "99999999", ""):
        yield Case((*with_root, "--ttl", ttl), exit_code=2)
    yield Case((*publish, "--index", nowhere), exit_code=2)
    for root in ("bad", "sha256:zz", "sha256:" + "0" * 63, ""):
        yield Case((*publish, "--merkle-root", root), exit_code=2)
    for when in ("yesterday", "2025-01-01T00:00:00", "2025-13-01T00:00:00Z", ""):
        yield Case((*with_root, "--issued-at", when), exit_code=2)
    for bad in bad_homes:
        yield Case((*with_root[:2], *with_root[4:], *bad), exit_code=2)
    for target in ("ftp://example.org/presence", "gopher://x", nowhere, str(places.root),
                   f"http://127.0.0.1:{free_port()}/.well-known/hn/presence", ""):
        yield Case(("advert", "verify", target))
    yield Case(("advert", "verify", junk), exit_code=1)
    for when in ("yesterday", "2025-01-01T00:00:00", ""):
        yield Case(("advert", "verify", junk, "--at", when), exit_code=2)
    yield Case(("advert", "verify"), exit_code=2)
    for bad in bad_homes:
        yield Case(("advert", "verify", junk, *bad))
    for alias in ("../up", "", "missing"):
        yield Case(("advert", "show", "--home", home, "--alias", alias), exit_code=2)
    for bad in bad_homes:
        yield Case(("advert", "show", *bad), exit_code=2)

    # network
    for name in ("", "x" * 65, " leading"):
        yield Case(("network", "init", "--home", home, "--name", name), exit_code=2)
    for days in ("0", "3651", "x", ""):
        yield Case(("network", "init", "--home", home, "--days", days), exit_code=2)
    for invites in ("-1", "10001", "x"):
        yield Case(("network", "init", "--home", home, "--invites", invites), exit_code=2)
    for bad in bad_homes:
        yield Case(("network", "init", *bad), exit_code=2)
    invite = ("network", "invite", "--home", home)
    yield Case(invite, exit_code=2)
    yield Case((*invite, "notadid", "--name", "beta"), exit_code=2)
    yield Case((*invite, DID), exit_code=2)
    yield Case((*invite, DID, "--name", ""), exit_code=2)
    yield Case((*invite, DID, "--name", "beta", "--days", "0"), exit_code=2)
    yield Case((*invite, DID, "--name", "beta", "--invites", "99999"), exit_code=2)
    yield Case((*invite, DID, "--name", "beta", "--out", f"{nowhere}/x.json"), exit_code=2)
    for path in (nowhere, junk, str(places.root)):
        yield Case(("network", "join", "--home", home, path), exit_code=2)
    revoke = ("network", "revoke", "--home", home)
    yield Case((*revoke, "notadid"), exit_code=2)
    yield Case((*revoke, DID, "--reason", "r" * 201), exit_code=2)
    yield Case((*revoke, DID, "--broker", "ftp://x"), exit_code=2)
    yield Case((*revoke, DID, "--broker", "mqtts://127.0.0.1:1", "--broker-ca", nowhere),
               exit_code=2)
    yield Case((*revoke, DID), exit_code=2)  # this home holds no network key
    for bad in bad_homes:
        yield Case(("network", "show", *bad), exit_code=2)
    yield Case(("network", "show", "--bogus"), exit_code=2)

    # simulate: every refusal comes before the run.
    yield Case(("simulate",), exit_code=2)
    for scenario in ("no-such-scenario", nowhere, junk, str(places.root), ""):
        yield Case(("simulate", scenario), exit_code=2)
    for value in ("0", "1", "-1", "x", "1.5", "100001", ""):
        yield Case(("simulate", "fleet-start", "--nodes", value), exit_code=2)
    for value in ("-1", "x", "1e3", ""):
        yield Case(("simulate", "fleet-start", "--seed", value), exit_code=2)
    for out in (afile, f"{afile}/under", ""):
        yield Case(("simulate", "fleet-start", "--out", out), exit_code=2)
    yield Case(("simulate", "--list=yes"), exit_code=2)


@dataclass(frozen=True)
class Places:
    root: Path
    home: str
    afile: str
    junk: str
    nowhere: str


@pytest.fixture
def places(tmp_path: Path) -> Places:
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    junk = tmp_path / "junk.json"
    junk.write_text("{this is not json\n")
    home = tmp_path / "home"
    # The home has its key already, as after a first run: a refusal is then the only line
    # (creating a key is announced on stderr too, and is not a mistake).
    assert run(Case(("keys", "show", "--home", str(home))))[1].returncode == 0
    return Places(
        root=tmp_path, home=str(home), afile=str(afile), junk=str(junk),
        nowhere=str(tmp_path / "nowhere"),
    )


def run(case: Case) -> tuple[Case, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("HEREABOUTS_HOME", None)
    env.update(case.env)
    command = [sys.executable, "-m", "hereabouts.cli", *case.args]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=CASE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as late:  # run() has killed it: it started instead
        result = subprocess.CompletedProcess(
            command, 0, _text(late.stdout), _text(late.stderr) + "\n(still running: killed)"
        )
    return case, result


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def test_every_bad_value_is_one_line_and_a_failing_exit(places: Places) -> None:
    walk = list(cases(places))
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(run, walk))
    problems = []
    for case, result in results:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        trouble = []
        if result.returncode == 0:
            trouble.append("exit 0")
        elif case.exit_code is not None and result.returncode != case.exit_code:
            trouble.append(f"exit {result.returncode}, not {case.exit_code}")
        if len(lines) != 1:
            trouble.append(f"{len(lines)} lines on stderr")
        if "Traceback" in result.stdout + result.stderr:
            trouble.append("a traceback")
        if trouble:
            problems.append(f"{case}: {', '.join(trouble)}\n    {result.stderr[-600:]!r}")
    assert not problems, f"{len(problems)} of {len(walk)} cases:\n" + "\n".join(problems)


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], argparse.ArgumentParser]
]:
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not commands:
        yield path, parser
    for action in commands:
        for name, sub in action.choices.items():
            yield from leaves(sub, (*path, name))


def test_the_walk_covers_every_command_and_option(places: Places) -> None:
    walk = list(cases(places))
    missing = []
    for path, parser in leaves(build_parser()):
        mine = [c.args for c in walk if _command_of(c.args) == path]
        if not mine:
            missing.append(" ".join(path))
            continue
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                continue
            option = action.option_strings[-1]
            if not any(option in a or any(x.startswith(f"{option}=") for x in a) for a in mine):
                missing.append(f"{' '.join(path)} {option}")
    assert not missing, f"no bad values tried for: {missing}"


def _command_of(args: tuple[str, ...]) -> tuple[str, ...]:
    words = [a for a in args if not a.startswith("-")]
    known = {"keys", "show", "up", "status", "advert", "publish", "verify", "network", "init",
             "invite", "join", "revoke", "simulate"}
    path = []
    for word in words:
        if word in known:
            path.append(word)
        else:
            break
    return tuple(path)


WORDING = [
    # A missing sub-command names the ones there are, not argparse's "required: keys_command".
    (("keys",), "which command? hereabouts keys show", "keys_command"),
    # A refused port says the range that is allowed: 0 was refused as "not in 0-65535".
    (("up", "--broker-port", "0"), "is not a port (1-65535)", "0-65535"),
    (("up", "--broker", "mqtt://127.0.0.1:0"), "its port is not in 1-65535", "0-65535"),
    # A URL of the wrong kind is named whole and the reason given ("cannot read ftp:/...").
    (("advert", "verify", "ftp://127.0.0.1/x"), "ftp://127.0.0.1/x: only http:// and https://",
     "ftp:/1"),
]


@pytest.mark.parametrize(("args", "said", "unsaid"), WORDING, ids=[" ".join(w[0]) for w in WORDING])
def test_refusals_say_what_is_wrong_in_the_users_words(
    places: Places, args: tuple[str, ...], said: str, unsaid: str
) -> None:
    """The walk checks the shape of every refusal; these check the words of the ones that
    were misleading before."""
    _, result = run(Case(("--home", places.home, *args)))
    assert result.returncode == 2
    assert said in result.stderr
    assert unsaid not in result.stderr
