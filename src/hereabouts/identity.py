"""Ed25519 identities written as ``did:key`` DIDs, and the key file that holds a node's own.

Rules this module keeps:

* An identity *is* its key. A ``did:key`` embeds the public key, so any signature can be
  checked against any DID without a lookup.
* ``did:key`` for Ed25519 is ``did:key:z`` + base58btc(0xed 0x01 ‖ 32-byte public key); the
  two bytes are the unsigned-varint multicodec prefix for ``ed25519-pub``. Anything else
  (another method, another multicodec, another length, a bad base58 character) is an
  :class:`~hereabouts.errors.InvalidDID`.
* The key file is written atomically (temporary file, fsync, rename) with mode 0600. A key
  file that is corrupt or readable by others is an error the operator must look at; it is
  never silently replaced, because replacing it would silently change the node's identity.
"""

from __future__ import annotations

import base64
import binascii
import json
import stat
from functools import lru_cache
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.signing

from hereabouts.errors import BadSignature, InvalidDID, KeyFileCorrupt, KeyFileInsecure
from hereabouts.files import write_atomically

DID_KEY_PREFIX = "did:key:"
ED25519_PUB_MULTICODEC = b"\xed\x01"
PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64
KEY_FILE_NAME = "identity.key"

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}

#: Longest DID we will even try to decode. An Ed25519 did:key is 56 characters; anything far
#: longer is junk, and refusing early keeps base58 decoding (quadratic) cheap on hostile input.
MAX_DID_LENGTH = 128


def b58encode(data: bytes) -> str:
    """Encode bytes as base58btc (Bitcoin alphabet); leading zero bytes become '1'."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Decode base58btc; raises :class:`ValueError` on a character outside the alphabet."""
    n = 0
    for ch in text:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"{ch!r} is not a base58btc character") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def did_from_public_key(public_key: bytes) -> str:
    """Return the ``did:key`` DID of a 32-byte Ed25519 public key."""
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != PUBLIC_KEY_BYTES:
        raise InvalidDID(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    return DID_KEY_PREFIX + "z" + b58encode(ED25519_PUB_MULTICODEC + bytes(public_key))


@lru_cache(maxsize=65536)
def public_key_from_did(did: str) -> bytes:
    """Return the 32-byte Ed25519 public key inside a ``did:key`` DID.

    Cached: a busy node sees the same few thousand DIDs over and over, and base58 decoding
    costs more than the dictionary look-up.
    """
    if not isinstance(did, str):
        raise InvalidDID("a DID is a string")
    if len(did) > MAX_DID_LENGTH:
        raise InvalidDID(f"DID longer than {MAX_DID_LENGTH} characters")
    if not did.startswith("did:"):
        raise InvalidDID("not a DID (it does not start with 'did:')")
    if not did.startswith(DID_KEY_PREFIX):
        method = did.split(":", 2)[1] if did.count(":") >= 2 else ""
        raise InvalidDID(f"DID method {method!r} is not supported; only did:key is")
    multibase = did[len(DID_KEY_PREFIX) :]
    if not multibase.startswith("z"):
        raise InvalidDID("did:key must use base58btc multibase (a leading 'z')")
    try:
        raw = b58decode(multibase[1:])
    except ValueError as exc:
        raise InvalidDID(f"did:key is not valid base58btc: {exc}") from None
    if not raw.startswith(ED25519_PUB_MULTICODEC):
        raise InvalidDID("did:key multicodec is not ed25519-pub (0xed01)")
    key = raw[len(ED25519_PUB_MULTICODEC) :]
    if len(key) != PUBLIC_KEY_BYTES:
        raise InvalidDID(f"did:key holds {len(key)} key bytes; Ed25519 needs {PUBLIC_KEY_BYTES}")
    return key


_SIGNATURE_B64_LENGTH = 88  # 64 bytes in padded base64
# 64 bytes leave 4 unused bits in the last data character, so only characters whose base64
# value is a multiple of 16 may stand there. Insisting on that (the one canonical spelling)
# means no byte of a signed message can change without the message being refused.
_CANONICAL_LAST_CHARS = frozenset("AQgw")


def signature_from_base64(text: str) -> bytes:
    """The 64 bytes of an Ed25519 signature written in padded base64, in its one canonical
    spelling (unused bits zero), or :class:`BadSignature`."""
    if len(text) != _SIGNATURE_B64_LENGTH or not text.endswith("=="):
        raise BadSignature("an Ed25519 signature is 64 bytes (88 base64 characters)")
    if text[85] not in _CANONICAL_LAST_CHARS:
        raise BadSignature("signature is not canonical base64")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise BadSignature("signature is not valid base64") from None


def verify(did: str, data: bytes, signature: bytes) -> None:
    """Check that ``signature`` over ``data`` was made by the key of ``did``.

    Raises :class:`InvalidDID` for a bad DID and :class:`BadSignature` when the signature
    does not verify (libsodium also refuses small-order keys and non-canonical signatures, so
    a valid signature cannot be reshaped into a second valid one).
    """
    if len(signature) != SIGNATURE_BYTES:
        raise BadSignature(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes")
    public_key = public_key_from_did(did)
    try:
        # The binding straight away: VerifyKey.verify adds two wrapper layers and an
        # encoder round trip, a measurable share of the ingest budget.
        nacl.bindings.crypto_sign_open(signature + data, public_key)
    except nacl.exceptions.BadSignatureError:
        raise BadSignature("signature does not verify") from None
    except (nacl.exceptions.ValueError, nacl.exceptions.TypeError) as exc:
        raise BadSignature(f"signature cannot be checked: {exc}") from None


class Identity:
    """An Ed25519 signing key and the DID that names it."""

    __slots__ = ("_did", "_signing_key")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing_key = signing_key
        self._did = did_from_public_key(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> Identity:
        """A new identity from the operating system's secure random source."""
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity whose RFC 8032 private key (seed) is these 32 bytes."""
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        return cls(nacl.signing.SigningKey(bytes(seed)))

    @property
    def did(self) -> str:
        return self._did

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @property
    def seed(self) -> bytes:
        """The 32 secret bytes; handle with care."""
        return bytes(self._signing_key)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte detached Ed25519 signature of ``data``."""
        return self._signing_key.sign(data).signature

    def __repr__(self) -> str:
        return f"Identity({self._did})"


# --- the key file -----------------------------------------------------------------------------


def key_file_path(home: Path) -> Path:
    return home / KEY_FILE_NAME


def load_identity(path: Path) -> Identity:
    """Read an identity from its key file, refusing insecure or corrupt files."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileInsecure(
            f"{path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run 'chmod 600 {path}' if the key is still secret, or move it away to start "
            "with a new identity"
        )
    try:
        record = json.loads(path.read_bytes())
        if record.get("type") != "ed25519-seed":
            raise ValueError("unknown key type")
        seed = base64.b64decode(record["seed"], validate=True)
        identity = Identity.from_seed(seed)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyFileCorrupt(
            f"{path} does not hold a valid hereabouts key ({exc}); it was left untouched"
        ) from None
    if record.get("did") not in (None, identity.did):
        raise KeyFileCorrupt(f"{path} names DID {record['did']} but its seed gives {identity.did}")
    return identity


def save_identity(identity: Identity, path: Path) -> None:
    """Write the key file atomically with mode 0600; never overwrites an existing file."""
    record = {
        "type": "ed25519-seed",
        "did": identity.did,
        "seed": base64.b64encode(identity.seed).decode("ascii"),
    }
    # Never replace: two processes racing to create an identity must not overwrite each
    # other's key; the loser reads the winner's.
    write_atomically(
        path, json.dumps(record, indent=2).encode() + b"\n", mode=0o600, replace=False
    )


def load_or_create_identity(home: Path) -> tuple[Identity, bool]:
    """The node's identity from ``home``, creating one on first use.

    Returns ``(identity, created)``.
    """
    path = key_file_path(home)
    try:
        return load_identity(path), False
    except FileNotFoundError:
        pass
    identity = Identity.generate()
    try:
        save_identity(identity, path)
    except FileExistsError:
        return load_identity(path), False
    return identity, True
