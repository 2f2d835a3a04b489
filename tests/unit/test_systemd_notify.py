"""sd_notify over a real Unix datagram socket, as systemd listens for it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from floorwalker import systemd_notify
from floorwalker.systemd_notify import Watchdog


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_reaches_the_socket(listener: socket.socket) -> None:
    assert systemd_notify.notify("READY=1")
    assert listener.recv(64) == b"READY=1"


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"fw-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd_notify.notify("STOPPING=1")
        assert sock.recv(64) == b"STOPPING=1"


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd_notify.notify("READY=1")


def test_watchdog_pets_at_half_the_interval(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")  # WatchdogSec=20
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = Watchdog(now=100.0)
    assert dog.every_s == 10.0
    dog.pet(now=100.0)
    assert listener.recv(64) == b"WATCHDOG=1"
    dog.pet(now=105.0)  # too soon: nothing sent
    dog.pet(now=110.0)
    assert listener.recv(64) == b"WATCHDOG=1"
    listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        listener.recv(64)  # exactly two pets


def test_watchdog_meant_for_another_pid_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd_notify.watchdog_interval_s() is None
    assert Watchdog().every_s is None
