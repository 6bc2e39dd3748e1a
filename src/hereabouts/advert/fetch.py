"""Getting documents from elsewhere: a file, a node's well-known URL, a relay; and pushing.

Every read is bounded by :data:`~hereabouts.advert.document.MAX_DOCUMENT_BYTES` while it
streams, so a hostile server cannot make us buffer more than that. What comes back is parsed
but *not* verified: callers verify (:func:`~hereabouts.advert.document.check_presence`), so
the time they verify at is theirs to choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hereabouts.advert.document import MAX_DOCUMENT_BYTES, decode_presence, encode_presence
from hereabouts.advert.errors import AdvertUsageError, PresenceFetchFailed, PresenceOversize
from hereabouts.advert.store import DEFAULT_ALIAS, read_document_file

WELL_KNOWN_PATH = "/.well-known/hn/presence"
RELAY_PUSH_PATH = "/v1/relay/presence"

#: Seconds allowed for connecting and for each read. A presence document is one small
#: response; a server slower than this is as good as unreachable.
DEFAULT_TIMEOUT_S = 5.0


def served_path(alias: str, default: str = DEFAULT_ALIAS) -> str:
    """The path at which a node serves an alias's newest document: the well-known path for
    the default alias, the well-known path and the alias for the others."""
    return WELL_KNOWN_PATH if alias == default else f"{WELL_KNOWN_PATH}/{alias}"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def read_presence_file(path: str | Path) -> dict[str, Any]:
    """Parse a document from a file (bounded, not verified)."""
    where = Path(path)
    try:
        raw = read_document_file(where)
    except OSError as exc:
        raise AdvertUsageError(f"cannot read {where}: {exc.strerror or exc}") from None
    return decode_presence(raw)


def _check_answer(response: httpx.Response, url: str) -> None:
    if response.status_code != 200:
        raise PresenceFetchFailed(f"{url} answered HTTP {response.status_code}")
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
        raise PresenceOversize(f"{url} announces {declared} bytes")


def fetch_presence(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """GET a document (blocking; for the CLI)."""
    body = bytearray()
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client, \
                client.stream("GET", url) as response:
            _check_answer(response, url)
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise PresenceOversize(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise PresenceFetchFailed(f"cannot fetch {url}: {exc}") from None
    return decode_presence(bytes(body))


async def fetch_presence_async(
    client: httpx.AsyncClient, url: str
) -> dict[str, Any]:
    """GET a document with the caller's client (its timeouts apply)."""
    body = bytearray()
    try:
        async with client.stream("GET", url) as response:
            _check_answer(response, url)
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise PresenceOversize(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise PresenceFetchFailed(f"cannot fetch {url}: {exc}") from None
    return decode_presence(bytes(body))


async def push_presence(client: httpx.AsyncClient, relay_url: str, doc: dict[str, Any]) -> int:
    """POST a signed document to a relay; returns the HTTP status (2xx means accepted)."""
    target = relay_url.rstrip("/") + RELAY_PUSH_PATH
    try:
        response = await client.post(
            target, content=encode_presence(doc), headers={"content-type": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise PresenceFetchFailed(f"cannot reach relay {target}: {exc}") from None
    return response.status_code
