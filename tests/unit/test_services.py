"""The services runner's pure parts: binaries, ports, rendered configs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from broker_config import MOSQUITTO_TEMPLATE, REDIS_TEMPLATE
from floorwalker.errors import ConfigError, ServiceStartError
from floorwalker.services import Services, find_binary, port_is_free


def test_missing_binary_says_which_package_to_install() -> None:
    with pytest.raises(ServiceStartError) as err:
        find_binary("floorwalker-no-such-server")
    assert "apt-get install -y floorwalker-no-such-server" in str(err.value)


def test_busy_port_is_detected() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not port_is_free(s.getsockname()[1])


@pytest.mark.parametrize(("template", "name"), [(MOSQUITTO_TEMPLATE, "mosquitto"), (REDIS_TEMPLATE, "redis")])
def test_configs_render_completely_into_the_run_dir(tmp_path: Path, template: Path, name: str) -> None:
    conf = Services(tmp_path)._render(template, name, 12345)
    text = conf.read_text()
    assert "$" not in text and "12345" in text
    assert str(tmp_path / name) in text  # data and logs stay in our own run directory


def test_endpoints_without_services_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="floorwalker services up"):
        Services(tmp_path).endpoints()


def test_redis_falls_back_to_tcp_when_the_socket_path_is_too_long(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    text = Services(deep)._render(REDIS_TEMPLATE, "redis", 12345).read_text()
    assert "unixsocket" not in text and "port 12345" in text
    assert "unixsocket " in Services(tmp_path)._render(REDIS_TEMPLATE, "redis", 12345).read_text()
