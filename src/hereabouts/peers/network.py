"""An invited network's files in a node's home: its credential, revocations, the network key.

Layout (``<home>/network/``, created with mode 0700):

* ``credential.json`` — this node's credential (canonical JSON). Its presence is what makes
  the node a member of an invited network; without it the node is in an open network.
* ``revocations.json`` — every revocation this node has verified, so a restart does not
  readmit a revoked member before the retained messages arrive again.
* ``network.key`` — the network key, mode 0600, only on the machine that created the network
  (``hereabouts network init``); whoever holds it decides membership.
* ``invited.json`` — slots this node has spent inviting others (for members allowed to).
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from hereabouts.errors import KeyFileError, StorageError
from hereabouts.events import Credential
from hereabouts.files import write_atomically
from hereabouts.identity import Identity, load_identity
from hereabouts.peers.membership import (
    BadCredential,
    Membership,
    NetworkSetupError,
    Revocation,
    check_revocation,
    decode_credential,
    decode_revocation,
    encode_credential,
    encode_revocation,
)

NETWORK_DIR = "network"
CREDENTIAL_FILE = "credential.json"
REVOCATIONS_FILE = "revocations.json"
NETWORK_KEY_FILE = "network.key"
INVITED_FILE = "invited.json"


def network_dir(home: Path) -> Path:
    return Path(home) / NETWORK_DIR


def load_credential(home: Path) -> Credential | None:
    """This node's credential, or None in an open network."""
    path = network_dir(home) / CREDENTIAL_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NetworkSetupError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return decode_credential(data)
    except BadCredential as exc:
        raise NetworkSetupError(f"{path} does not hold a credential: {exc}") from None


def save_credential(home: Path, credential: Credential) -> Path:
    path = network_dir(home) / CREDENTIAL_FILE
    _write(path, encode_credential(credential) + b"\n")
    return path


def load_revocations(home: Path, network: str) -> list[Revocation]:
    """The revocations stored for ``network`` (verified again; unreadable ones skipped)."""
    path = network_dir(home) / REVOCATIONS_FILE
    try:
        items = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise NetworkSetupError(f"cannot read {path}: {exc}") from None
    found = []
    for item in items if isinstance(items, list) else []:
        try:
            revocation = decode_revocation(json.dumps(item).encode())
            check_revocation(revocation, network=network)
        except BadCredential:
            continue
        found.append(revocation)
    return found


def save_revocations(home: Path, revocations: list[Revocation]) -> None:
    path = network_dir(home) / REVOCATIONS_FILE
    body = b"[" + b",".join(encode_revocation(r) for r in revocations) + b"]\n"
    _write(path, body)


def load_membership(home: Path, identity: Identity) -> Membership | None:
    """The invited network this home belongs to, or None (an open network)."""
    credential = load_credential(home)
    if credential is None:
        return None
    if credential.member != identity.did:
        raise NetworkSetupError(
            f"{network_dir(home) / CREDENTIAL_FILE} is for {credential.member}, but this "
            f"node is {identity.did}; install a credential issued to this node"
        )
    return Membership(
        credential.network,
        own=credential,
        revocations=load_revocations(home, credential.network),
    )


def load_network_key(home: Path) -> Identity | None:
    """The network key, if this home created the network."""
    path = network_dir(home) / NETWORK_KEY_FILE
    if not path.exists():
        return None
    try:
        return load_identity(path)
    except KeyFileError as exc:
        raise NetworkSetupError(str(exc)) from None


def load_invited(home: Path) -> dict[str, int]:
    """Slots this node has spent: member DID -> slot."""
    path = network_dir(home) / INVITED_FILE
    try:
        value = msgspec.json.decode(path.read_bytes(), type=dict[str, int])
    except FileNotFoundError:
        return {}
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NetworkSetupError(f"cannot read {path}: {exc}") from None
    return value


def save_invited(home: Path, invited: dict[str, int]) -> None:
    _write(network_dir(home) / INVITED_FILE, msgspec.json.encode(invited) + b"\n")


def _write(path: Path, data: bytes) -> None:
    try:
        write_atomically(path, data, mode=0o600)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
