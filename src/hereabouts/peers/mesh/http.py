"""The mesh's HTTP endpoint: ``POST /v1/mesh/sync`` on the node's own server."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hereabouts.peers.mesh.runtime import Mesh
from hereabouts.peers.mesh.wire import SYNC_PATH


def mesh_routes(mesh: Mesh) -> list[Route]:
    """The sync route. The body is read up to the largest message a node sends and no
    further, so an oversized body costs the sender, not our memory."""

    async def sync(request: Request) -> Response:
        body = bytearray()
        too_big = False
        async for chunk in request.stream():
            body += chunk
            if len(body) > mesh.max_message_bytes:
                too_big = True
                break
        answer = mesh.handle(request.headers, bytes(body), too_big=too_big)
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    return [Route(SYNC_PATH, sync, methods=["POST"])]
