"""Whose address a request has: the TCP peer's, unless a listed proxy forwards another."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hereabouts.config import HttpLimits
from hereabouts.web.server import HttpServer


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.client.host if request.client else "")


APP = Starlette(routes=[Route("/whoami", whoami)])
FORGED = {"X-Forwarded-For": "203.0.113.7"}


async def test_a_forwarded_header_is_ignored_unless_its_sender_is_a_trusted_proxy() -> None:
    async with HttpServer(APP) as server, httpx.AsyncClient() as client:
        assert (await client.get(f"{server.url}/whoami", headers=FORGED)).text == "127.0.0.1"
    trusting = HttpLimits(trusted_proxies=("127.0.0.1",))
    async with HttpServer(APP, limits=trusting) as server, httpx.AsyncClient() as client:
        assert (await client.get(f"{server.url}/whoami", headers=FORGED)).text == "203.0.113.7"


def test_trusted_proxies_come_from_the_environment() -> None:
    limits = HttpLimits.from_env({"HEREABOUTS_HTTP_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16"})
    assert limits.trusted_proxies == ("10.0.0.1", "10.1.0.0/16")
    assert HttpLimits.from_env({}).trusted_proxies == ()
