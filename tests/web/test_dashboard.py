"""The dashboard's files: served with the right types and a strict CSP, and sound."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import httpx
import pytest

from hereabouts.web.dashboard import DEMO_ROOMS, read_static


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


async def test_page_script_and_stylesheet_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    parser = _Collector()
    parser.feed(page.text)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    sheets = [a for tag, a in parser.tags if tag == "link" and a.get("rel") == "stylesheet"]
    assert [s.get("src") for s in scripts] == ["static/dashboard.js"]
    assert [s.get("href") for s in sheets] == ["static/dashboard.css"]

    script = await client.get("/static/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "EventSource" in script.text
    sheet = await client.get("/static/dashboard.css")
    assert sheet.headers["content-type"] == "text/css; charset=utf-8"


def test_page_is_accessible_and_self_contained() -> None:
    html = read_static("index.html").decode()
    parser = _Collector()
    parser.feed(html)
    tags = {tag for tag, _ in parser.tags}
    assert {"table", "caption", "thead", "tbody", "th"} <= tags
    assert all(a.get("scope") == "col" for tag, a in parser.tags if tag == "th")
    live = [a for _, a in parser.tags if a.get("id") == "counts"]
    assert live and live[0].get("aria-live") == "polite"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external resources"
    assert "<script>" not in html, "no inline script (the CSP forbids it)"


def test_script_never_writes_markup() -> None:
    script = read_static("dashboard.js").decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_script_parses() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    path = read_static("dashboard.js")
    result = subprocess.run(
        [node, "--check", "-"], input=path, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode()


async def test_every_page_has_an_icon(client: httpx.AsyncClient) -> None:
    """Browsers ask for /favicon.ico whenever a page names no icon; it was a 404."""
    ico = await client.get("/favicon.ico")
    assert ico.status_code == 200
    assert ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    svg = await client.get("/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    for page in ("index.html", "demo-site.html"):
        parser = _Collector()
        parser.feed(read_static(page).decode())
        icons = [a for tag, a in parser.tags if tag == "link" and a.get("rel") == "icon"]
        assert [a.get("href", "").rsplit("/", 1)[-1] for a in icons] == ["favicon.svg"]


def test_the_demo_rooms_the_dashboard_names_are_the_demo_pages() -> None:
    parser = _Collector()
    parser.feed(read_static("demo-site.html").decode())
    widget = [a for tag, a in parser.tags if tag == "script" and a.get("src") == "/widget.js"]
    assert [tuple(str(a.get("data-rooms")).split(",")) for a in widget] == [DEMO_ROOMS]


def test_the_dashboard_has_a_place_for_each_panel() -> None:
    parser = _Collector()
    parser.feed(read_static("index.html").decode())
    ids = {a.get("id") for _, a in parser.tags}
    assert {"peer-rows", "log", "health", "rejections", "rooms", "axis"} <= ids
