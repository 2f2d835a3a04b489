"""Security headers on every response: a Content-Security-Policy the pages satisfy, no
framing, no MIME sniffing, no referrer.

The pages keep their scripts and styles inline; the policy allows exactly those blocks by
their SHA-256 (computed from the files at start-up, so an edited page stays allowed) and
nothing else inline. A response that sets its own policy (``/docs``) keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The pages served from handheld/static whose inline blocks the policy allows.
PAGES: Final = ("handheld.html", "dashboard.html", "signin.html")
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def inline_hashes(html: str) -> tuple[list[str], list[str]]:
    """The CSP hashes of a page's inline ``<script>`` and ``<style>`` blocks."""
    scripts: list[str] = []
    styles: list[str] = []
    for tag, body in _INLINE.findall(html):
        (scripts if tag == "script" else styles).append(csp_hash(body))
    return scripts, styles


def content_security_policy(pages: Iterable[str]) -> str:
    scripts: list[str] = []
    styles: list[str] = []
    for html in pages:
        s, st = inline_hashes(html)
        scripts += s
        styles += st
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' " + " ".join(sorted(set(scripts))),
            "style-src 'self' " + " ".join(sorted(set(styles))),
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Adds the headers to every HTTP response (pages, JSON, streams, errors)."""

    def __init__(self, app: ASGIApp, page_text: Callable[[str], str]) -> None:
        self.app = app
        csp = content_security_policy(page_text(p) for p in PAGES)
        self._headers: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self._headers if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
