"""``hereabouts network`` as an operator runs it: init, invite, join, revoke, show."""

from __future__ import annotations

import json
from pathlib import Path

from hereabouts.peers.network import load_credential, load_revocations
from tests.fixtures.mosquitto import free_port
from tests.test_cli import run_cli


def did_of(home: Path) -> str:
    result = run_cli("keys", "show", home=home)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_init_invite_join_show_and_revoke(tmp_path: Path) -> None:
    owner, alice, bob, carol = (tmp_path / n for n in ("owner", "alice", "bob", "carol"))
    init = run_cli("network", "init", "--name", "owner", "--invites", "1", home=owner)
    assert init.returncode == 0, init.stderr
    network = init.stdout.split()[1]
    assert run_cli("network", "init", home=owner).returncode == 2  # once only

    # The network key invites Alice, allowing her one invitation of her own.
    invite = run_cli("network", "invite", did_of(alice), "--name", "alice", "--invites", "1",
                     "--out", str(tmp_path / "alice.json"), home=owner)
    assert invite.returncode == 0, invite.stderr
    joined = run_cli("network", "join", str(tmp_path / "alice.json"), home=alice)
    assert joined.returncode == 0 and "as 'alice'" in joined.stdout
    # Alice invites Bob; her second invitation is refused.
    bob_credential = run_cli("network", "invite", did_of(bob), "--name", "bob", home=alice)
    assert bob_credential.returncode == 0, bob_credential.stderr
    (tmp_path / "bob.json").write_text(bob_credential.stdout)
    assert run_cli("network", "join", str(tmp_path / "bob.json"), home=bob).returncode == 0
    over = run_cli("network", "invite", did_of(carol), "--name", "carol", home=alice)
    assert over.returncode == 2 and "spent all 1" in over.stderr
    assert "Traceback" not in over.stderr

    credential = load_credential(bob)
    assert credential is not None and credential.network == network
    assert credential.parent is not None and json.loads(bob_credential.stdout)["slot"] == 0
    show = run_cli("network", "show", home=bob)
    assert show.returncode == 0 and "as 'bob'" in show.stdout and network in show.stdout

    # A credential for someone else, or a tampered one, is refused in one line.
    wrong = run_cli("network", "join", str(tmp_path / "alice.json"), home=carol)
    assert wrong.returncode == 2 and "this credential is for" in wrong.stderr
    tampered = tmp_path / "tampered.json"
    tampered.write_text(bob_credential.stdout.replace('"name":"bob"', '"name":"root"'))
    assert run_cli("network", "join", str(tampered), home=bob).returncode == 2

    # Only the network key revokes; the revocation is kept in its home.
    assert run_cli("network", "revoke", did_of(bob), home=alice).returncode == 2
    revoke = run_cli("network", "revoke", did_of(alice), "--reason", "left", home=owner)
    assert revoke.returncode == 0, revoke.stderr
    assert [r.member for r in load_revocations(owner, network)] == [did_of(alice)]


def test_open_by_default_and_bad_input_is_one_line(tmp_path: Path) -> None:
    show = run_cli("network", "show", home=tmp_path / "x")
    assert show.returncode == 0 and "open network" in show.stdout
    for args in (
        ("invite", "did:key:zNope", "--name", "x"),
        ("invite", did_of(tmp_path / "y"), "--name", " padded "),
        ("join", str(tmp_path / "missing.json")),
        ("invite", did_of(tmp_path / "y"), "--name", "z"),  # nothing here may invite
    ):
        result = run_cli("network", *args, home=tmp_path / "x")
        assert result.returncode == 2, args
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, args


def test_a_credential_nested_thousands_deep_is_refused_in_one_line(tmp_path: Path) -> None:
    """Found by the fuzzer: ``parent`` inside ``parent`` a thousand times made the credential
    decoder raise RecursionError (a traceback from ``network join``)."""
    deep = tmp_path / "deep.json"
    deep.write_text('{"parent":' * 3000 + "null" + "}" * 3000)
    result = run_cli("network", "join", str(deep), home=tmp_path / "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("hereabouts: error: not a credential")


def test_revoke_on_an_unreachable_broker_says_why_in_one_line(tmp_path: Path) -> None:
    owner = tmp_path / "owner"
    assert run_cli("network", "init", "--name", "owner", home=owner).returncode == 0
    member = did_of(tmp_path / "member")
    broker = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_cli("network", "revoke", member, "--broker", broker, home=owner)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr  # no log lines from the transport
    assert f"could not reach the broker at {broker}" in result.stderr
    assert "nothing listens there: is the broker running? is the port right?" in result.stderr
    assert [r.member for r in load_revocations(owner, load_credential(owner).network)] == [
        member
    ], "kept for the next hereabouts up"
