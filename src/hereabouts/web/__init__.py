"""Surfaces of a node over HTTP: the peers API, the live stream and dashboard, health and
metrics (:mod:`~hereabouts.web.app`), the in-process uvicorn server
(:mod:`~hereabouts.web.server`) and ``hereabouts status`` (:mod:`~hereabouts.web.cli`).

Names are exported lazily so that ``hereabouts status``, which needs only httpx, does not pay
for importing Starlette and uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hereabouts.web.app import NodeView, create_app
    from hereabouts.web.server import HttpServer

__all__ = ["HttpServer", "NodeView", "create_app"]


def __getattr__(name: str) -> Any:
    if name in ("NodeView", "create_app"):
        from hereabouts.web import app

        return getattr(app, name)
    if name == "HttpServer":
        from hereabouts.web import server

        return server.HttpServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
