"""The live dashboard: one HTML page, one script, one stylesheet, an icon, no build step.

The files live in ``static/`` beside this module and are read once, when the app is made,
then served from memory with fixed content types (the platform's MIME table varies: some
systems call ``.js`` ``application/javascript``, others ``text/javascript``).

Peer names are untrusted input, so the page is served with a Content-Security-Policy that
allows only this origin's own script and stylesheet: even a markup bug in the script could
not run injected code. The script itself writes peer data with ``textContent`` only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

STATIC_FILES: Final[dict[str, tuple[str, str]]] = {
    # URL path: (file in static/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    # Browsers ask for /favicon.ico on every page that names no icon (the demo page, JSON).
    "/favicon.ico": ("favicon.ico", "image/x-icon"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}

DEMO_ROOMS: Final = ("lobby", "docs")
"""The rooms of the demo page (``data-rooms`` in ``static/demo-site.html``): the dashboard
names them when it sees them at its own origin; other rooms are known by key only."""

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

STATIC_HEADERS: Final = {
    # Revalidate every time: a node upgrade must not leave an old script running.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
}


def read_static(name: str) -> bytes:
    """A file of ``static/``, from the installed package."""
    return files("hereabouts.web").joinpath("static", name).read_bytes()


def serve_static(body: bytes, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    # A function, not a callable object: Starlette treats objects as raw ASGI apps.
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type=media_type, headers=STATIC_HEADERS)

    return endpoint


def dashboard_routes() -> list[BaseRoute]:
    """Routes serving the dashboard's files (read from disk now, once)."""
    return [
        Route(path, serve_static(read_static(name), media_type), methods=["GET"])
        for path, (name, media_type) in STATIC_FILES.items()
    ]
