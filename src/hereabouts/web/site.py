"""The browser side of site presence over HTTP: the hub's WebSocket, the widget, a demo page.

Routes (``build_site_routes()``, added to :func:`~hereabouts.web.app.create_app` through
``extra_routes``):

* ``WS /v1/site`` — the hub protocol (:mod:`hereabouts.sites.hub_protocol`), served past
  ASGI by :mod:`hereabouts.web.hub_socket` (:func:`site_upgrades`);
* ``GET /widget.js`` — the drop-in ES module, served with ``Access-Control-Allow-Origin: *``
  because other sites load it as a module script (which is fetched in CORS mode);
* ``GET /demo/site`` — a page embedding the widget, under the dashboard's strict
  Content-Security-Policy (own scripts only; ``connect-src 'self'`` admits the socket).

Every decision on the socket (limits, verification, counting) is the hub's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hereabouts.sites.hub import SiteHub
from hereabouts.sites.workers import HubWorkers
from hereabouts.web.dashboard import STATIC_HEADERS, read_static, serve_static
from hereabouts.web.http_protocol import Adopter
from hereabouts.web.hub_socket import HubSockets

WIDGET_PATH = "/widget.js"
DEMO_PATH = "/demo/site"
SOCKET_PATH = "/v1/site"

_JS = "text/javascript; charset=utf-8"
_WIDGET_HEADERS = {**STATIC_HEADERS, "Access-Control-Allow-Origin": "*"}


def site_upgrades(hub: SiteHub | HubWorkers) -> dict[str, Adopter]:
    """The hub's socket, for :class:`~hereabouts.web.server.HttpServer`'s ``upgrades``:
    connections upgraded at ``/v1/site`` go to :mod:`hereabouts.web.hub_socket` in this
    process, or to the hub's worker processes (:mod:`hereabouts.sites.workers`)."""
    if isinstance(hub, HubWorkers):
        return {SOCKET_PATH: hub.adopt}
    return {SOCKET_PATH: HubSockets(hub).adopt}


def build_site_routes() -> list[BaseRoute]:
    """The widget and the demo page (files read from disk now, once). The socket is not a
    route: see :func:`site_upgrades`."""
    widget = read_static("widget.js")

    async def serve_widget(request: Request) -> Response:
        return Response(widget, media_type=_JS, headers=_WIDGET_HEADERS)

    return [
        Route(WIDGET_PATH, serve_widget, methods=["GET"]),
        Route(
            DEMO_PATH,
            serve_static(read_static("demo-site.html"), "text/html; charset=utf-8"),
            methods=["GET"],
        ),
    ]
