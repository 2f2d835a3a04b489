"""systemd's notify protocol (sd_notify) without libsystemd: one datagram to $NOTIFY_SOCKET.

A service with ``Type=notify`` says ``READY=1`` once it serves; with ``WatchdogSec=`` it
says ``WATCHDOG=1`` at least every half of that interval, from its main loop, so a hung
loop (not just a dead process) gets it restarted. Outside systemd (no ``NOTIFY_SOCKET``)
every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``); True if a socket was there to send to."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    # A leading "@" names a socket in the abstract namespace.
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("could not notify systemd at %s (%s)", path, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """The watchdog interval systemd set for this process (``WatchdogSec=``), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Watchdog:
    """Pets systemd's watchdog from a loop: :meth:`pet` is cheap to call every iteration
    and sends at most once per half interval."""

    def __init__(self, now: float | None = None) -> None:
        interval = watchdog_interval_s()
        self.every_s = interval / 2 if interval else None
        self._next = now if now is not None else time.monotonic()

    def pet(self, now: float | None = None) -> None:
        if self.every_s is None:
            return
        t = now if now is not None else time.monotonic()
        if t >= self._next:
            notify("WATCHDOG=1")
            self._next = t + self.every_s
