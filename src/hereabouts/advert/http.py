"""HTTP surface of presence@2: the well-known document and the relay endpoints.

Routes (see ``docs/advert.md``):

* ``GET /.well-known/hn/presence`` — this node's newest *unexpired* document of the default
  alias (``GET /.well-known/hn/presence/<alias>``: of any alias), as canonical JSON, with
  ``Cache-Control: max-age`` no longer than its remaining lifetime (nor than its
  ``ttl_seconds``) and a strong ``ETag``; ``If-None-Match`` gives 304. With nothing to serve:
  404 and a JSON reason naming where the other aliases are served. A stored document that no
  longer verifies is never served.
* ``POST /v1/relay/presence`` — hand this relay a signed document that names it
  (:mod:`hereabouts.advert.relay`). 201 when stored, 200 when already held, 4xx with
  ``{"error": <reason slug>, "detail": ...}`` otherwise: 429 with ``Retry-After`` when the
  client's address or the document's DID used up its quota (the address's push rate is
  checked before the body is read), 503 only when the relay cannot make room within its
  rules or cannot write. The body is bounded while it streams. Every push is counted in
  ``relay_pushes`` by outcome (``stored``, ``unchanged`` or the refusal's reason slug).
* ``GET /v1/relay/{did}/presence`` — a held document, until the earliest of its expiries.

:func:`build_advert_routes` returns plain Starlette routes so the node's server can mount
them beside its own; :func:`create_app` wraps them in an app for standalone use and tests.
The clock is a parameter, so tests move time instead of sleeping.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hereabouts.advert.document import (
    MAX_DOCUMENT_BYTES,
    PresenceInfo,
    check_presence,
    decode_presence,
    encode_presence,
    whole_seconds,
)
from hereabouts.advert.errors import (
    BadAlias,
    PresenceBadDID,
    PresenceBadSignature,
    PresenceOversize,
    PresenceRejected,
    PresenceStale,
    RelayFull,
    RelayNotNamed,
    RelayQuotaExceeded,
)
from hereabouts.advert.fetch import RELAY_PUSH_PATH, WELL_KNOWN_PATH, served_path
from hereabouts.advert.relay import RelayStore
from hereabouts.advert.store import DEFAULT_ALIAS, PresenceStore, check_alias
from hereabouts.advert.timestamps import utc_now
from hereabouts.errors import StorageError

PUSHES = "relay_pushes"
"""Counter of relay pushes, labelled ``outcome``: ``stored``, ``unchanged``, or the reason
slug of the refusal (``relay_address_rate``, ``presence_stale``, ...)."""

#: HTTP status for each refusal; anything else a presence check raises is a plain 400.
STATUS_BY_ERROR: dict[type[PresenceRejected], int] = {
    PresenceOversize: 413,
    PresenceStale: 409,
    RelayNotNamed: 403,
    PresenceBadSignature: 403,
    PresenceBadDID: 400,
    RelayQuotaExceeded: 429,
    RelayFull: 503,
}

JSON_TYPE = "application/json"


def error_response(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": reason, "detail": detail}, status_code=status)


def _status_for(exc: PresenceRejected) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def etag_for(body: bytes) -> str:
    """A strong ETag: the first 128 bits of the body's SHA-256, quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def document_response(
    request: Request, body: bytes, *, now: datetime, until: datetime, ttl: int | None
) -> Response:
    """200 (or 304) with caching headers that never outlive ``until``."""
    max_age = max(0, math.floor((until - now).total_seconds()))
    if ttl is not None:
        max_age = min(max_age, ttl)
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag_for(body)}
    wanted = request.headers.get("if-none-match", "")
    if headers["ETag"] in (tag.strip() for tag in wanted.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON_TYPE, headers=headers)


async def read_bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) before reading past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PresenceOversize(f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PresenceOversize(f"request body over {limit} bytes")
    return bytes(body)


#: Most other aliases named in a 404's detail; the rest are summarised as "and N more".
MAX_ALIASES_NAMED = 8


class _OwnPresence:
    """Serves the node's own newest document of an alias; remembers the last check of each
    alias that had one to serve, so a steady stream of fetches costs no signature checks."""

    def __init__(self, store: PresenceStore, alias: str, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.alias = alias
        self.clock = clock
        # Keys are aliases with a stored document (directories we wrote), so this is as
        # bounded as what the node itself published; unknown names never enter it.
        self._checked: dict[str, tuple[bytes, PresenceInfo]] = {}

    async def handle(self, request: Request) -> Response:
        return self._serve(request, self.alias)

    async def handle_alias(self, request: Request) -> Response:
        try:
            alias = check_alias(request.path_params["alias"])
        except BadAlias:
            return error_response(404, "no_presence", "no such alias")
        return self._serve(request, alias)

    def _nothing(self, alias: str, why: str) -> Response:
        others = [a for a in self.store.aliases() if a != alias]
        if others:
            named = ", ".join(served_path(a, self.alias) for a in others[:MAX_ALIASES_NAMED])
            if len(others) > MAX_ALIASES_NAMED:
                named += f" and {len(others) - MAX_ALIASES_NAMED} more"
            why += f"; this node also serves {named}"
        return error_response(404, "no_presence", why)

    def _serve(self, request: Request, alias: str) -> Response:
        now = self.clock()
        doc = self.store.latest_unexpired(alias, now)
        if doc is None:
            return self._nothing(alias, f"no unexpired presence document for alias {alias!r}")
        try:
            body = encode_presence(doc)
            checked = self._checked.get(alias)
            if checked is not None and checked[0] == body:
                info = checked[1]
            else:
                info = check_presence(doc, now=now)
                self._checked[alias] = (body, info)
        except PresenceRejected as exc:
            return error_response(404, "no_presence", f"stored document is invalid: {exc}")
        if info.expires_at <= now:
            return self._nothing(alias, f"no unexpired presence document for alias {alias!r}")
        return document_response(
            request, body, now=now, until=info.expires_at, ttl=info.ttl_seconds
        )


class _RelayEndpoints:
    def __init__(
        self, relay: RelayStore, clock: Callable[[], datetime], max_body_bytes: int
    ) -> None:
        self.relay = relay
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        relay.counters.describe(PUSHES, "Pushes to the presence relay, by outcome.", "outcome")

    async def push(self, request: Request) -> Response:
        client = request.client.host if request.client is not None else None
        counters = self.relay.counters
        try:
            self.relay.admit(client, self.clock())
            raw = await read_bounded_body(request, self.max_body_bytes)
            doc = decode_presence(raw, max_bytes=self.max_body_bytes)
            stored = self.relay.accept(doc, self.clock(), client=client)
        except PresenceRejected as exc:
            counters.add(PUSHES, exc.reason)
            response = error_response(_status_for(exc), exc.reason, str(exc))
            if isinstance(exc, RelayQuotaExceeded):
                response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
            return response
        except StorageError as exc:
            counters.add(PUSHES, exc.reason)
            return error_response(503, exc.reason, "the relay cannot store documents now")
        counters.add(PUSHES, "stored" if stored else "unchanged")
        return JSONResponse(
            {"stored": stored, "id": doc.get("id")}, status_code=201 if stored else 200
        )

    async def get(self, request: Request) -> Response:
        did = request.path_params["did"]
        now = self.clock()
        held = self.relay.get(did, now)
        if held is None:
            return error_response(404, "no_presence", f"no presence held for {did}")
        return document_response(
            request,
            encode_presence(held.doc),
            now=now,
            until=held.serve_until,
            ttl=whole_seconds(held.doc.get("ttl_seconds")),  # 600.0 caps as 600 does
        )


def build_advert_routes(
    *,
    store: PresenceStore | None = None,
    alias: str = DEFAULT_ALIAS,
    relay: RelayStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    max_body_bytes: int = MAX_DOCUMENT_BYTES,
) -> list[Route]:
    """The presence@2 routes: the well-known document when ``store`` is given, the relay
    endpoints when ``relay`` is given. ``max_body_bytes`` bounds relay pushes (default: the
    document size limit, 16 KiB)."""
    routes: list[Route] = []
    if store is not None:
        own = _OwnPresence(store, alias, clock)
        routes.append(Route(WELL_KNOWN_PATH, own.handle, methods=["GET"]))
        routes.append(Route(WELL_KNOWN_PATH + "/{alias}", own.handle_alias, methods=["GET"]))
    if relay is not None:
        endpoints = _RelayEndpoints(relay, clock, max_body_bytes)
        routes.append(Route(RELAY_PUSH_PATH, endpoints.push, methods=["POST"]))
        routes.append(Route("/v1/relay/{did}/presence", endpoints.get, methods=["GET"]))
    return routes


def create_app(
    *,
    store: PresenceStore | None = None,
    alias: str = DEFAULT_ALIAS,
    relay: RelayStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    max_body_bytes: int = MAX_DOCUMENT_BYTES,
) -> Starlette:
    """A Starlette app serving only the presence@2 routes."""
    return Starlette(
        routes=build_advert_routes(
            store=store, alias=alias, relay=relay, clock=clock, max_body_bytes=max_body_bytes
        )
    )
