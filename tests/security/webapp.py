"""Shared pieces of the web app's security tests: the API against the session's real
Mosquitto and Redis, sign-in through the real link, and an SSE reader that reports the
end of a stream as an event of its own."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from floorwalker.config import StoreConfig
from handheld.auth import COOKIE, issue_token
from recommender.keys import Keys

DEADLINE_S = 5.0
#: Stands for "the server ended the stream" in :class:`StreamReader`'s queue.
ENDED = {"event": "<ended>"}


def signin_link(client: redis.Redis, prefix: str, config: StoreConfig, associate: str, **kw: Any) -> str:
    """A fresh sign-in link's path and query, as `floorwalker token issue` prints it."""
    issued = issue_token(client, Keys(config.store, prefix), config, associate, **kw)
    return f"/signin?token={issued.token}"


def sign_in(api: TestClient, link: str) -> str:
    """Open the link in ``api`` (a browser); returns the cookie the browser now holds."""
    resp = api.get(link, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    cookie = api.cookies.get(COOKIE)
    assert cookie, resp.headers
    return str(cookie)


class StreamReader:
    """Reads an SSE response on a thread; the end of the stream arrives as :data:`ENDED`."""

    def __init__(self, resp: httpx.Response) -> None:
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self._resp = resp
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event: dict[str, str] = {}
        try:
            for line in self._resp.iter_lines():
                if not line:
                    if event:
                        self.events.put(event)
                    event = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(":")
                    event[key] = value.removeprefix(" ")
        except Exception:  # the test closed it, or the transport did: an end either way
            pass
        self.events.put(ENDED)

    def next(self, timeout: float = DEADLINE_S) -> dict[str, str]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no SSE event (nor the end of the stream) within {timeout} s")

    def until(
        self, pred: Callable[[dict[str, str]], bool], timeout: float = DEADLINE_S
    ) -> list[dict[str, str]]:
        """Events up to and including the first that ``pred`` accepts."""
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no matching SSE event within {timeout} s; saw {seen}")
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                pytest.fail(f"no matching SSE event within {timeout} s; saw {seen}")
            seen.append(e)
            if pred(e):
                return seen
            if e is ENDED:
                pytest.fail(f"the stream ended before a matching event; saw {seen}")
