"""The command line: services up/status/down for real, and one clear line for mistakes."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from floorwalker.config import Endpoints
from floorwalker.services import mqtt_answers, redis_answers

pytestmark = pytest.mark.integration


def floorwalker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floorwalker", *args], capture_output=True, text=True, timeout=timeout
    )


def test_services_up_status_down(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "run")
    up = floorwalker("services", "up", "--run-dir", run_dir)
    assert up.returncode == 0, up.stderr
    lines = dict(line.split(None, 1) for line in up.stdout.splitlines()[:2])
    mqtt_port = int(lines["mqtt"].rsplit(":", 1)[1])
    redis_url = lines["redis"]
    assert mqtt_answers("127.0.0.1", mqtt_port) and redis_answers(redis_url)

    status = floorwalker("services", "status", "--run-dir", run_dir)
    assert status.stdout.count(" up (pid") == 2, status.stdout

    down = floorwalker("services", "down", "--run-dir", run_dir)
    assert down.returncode == 0 and down.stdout.count("stopped") == 2, down.stdout
    assert not mqtt_answers("127.0.0.1", mqtt_port) and not redis_answers(redis_url)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]  # nothing after it
    return errors[0]


def test_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_error_line(
            floorwalker("services", "up", "--run-dir", str(tmp_path), "--mqtt-port", str(port))
        )
    assert f"port {port}" in line and "busy" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("store: [unclosed", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("store: s1\nname: S\nzones: []\n", "zones"),
        (
            "store: s1\nname: S\nzones: [{id: a, name: A}]\ngateways: [{id: g, zones: [b]}]\n"
            "associates: [{id: x, display_name: X}]\nfloor_lead: x\n",
            "unknown zone 'b'",
        ),
        (
            "store: s1\nname: S\nzones: [{id: a, name: A}]\ngateways: [{id: g, zones: [a]}]\n"
            "associates: [{id: x, display_name: X}]\nfloor_lead: x\ncolour: red\n",
            "colour",
        ),
    ],
    ids=["bad yaml", "not a mapping", "empty zones", "dangling reference", "unknown key"],
)
def test_broken_store_config_names_file_and_key(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "store.yaml"
    path.write_text(content)
    line = _one_error_line(
        floorwalker(
            "recommender",
            "--store-config",
            str(path),
            "--mqtt-url",
            "mqtt://127.0.0.1:1",
            "--redis-url",
            "redis://127.0.0.1:1/0",
        )
    )
    assert str(path) in line and expected in line


def test_unreachable_redis_and_broker_are_one_line(services: Endpoints) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    line = _one_error_line(
        floorwalker(
            "recommender", "--mqtt-url", services.mqtt_url, "--redis-url", f"redis://127.0.0.1:{dead}/0"
        )
    )
    assert f"redis://127.0.0.1:{dead}/0" in line and "services up" in line
    line = _one_error_line(
        floorwalker(
            "recommender", "--mqtt-url", f"mqtt://127.0.0.1:{dead}", "--redis-url", services.redis_url
        )
    )
    assert f"mqtt://127.0.0.1:{dead}" in line


def test_missing_services_state_says_what_to_do(tmp_path: Path) -> None:
    line = _one_error_line(floorwalker("recommender", "--run-dir", str(tmp_path)))
    assert "services up" in line


@pytest.mark.parametrize(
    "command",
    ["services", "edge", "recommender", "api", "simulate", "demo", "bench", "contract", "report", "crm"],
)
def test_every_command_has_help(command: str) -> None:
    result = floorwalker(command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout, result.stderr


def test_token_issue_prints_a_link_and_stores_only_a_hash(services: Endpoints, prefix: str) -> None:
    import hashlib

    import redis

    args = ["--redis-url", services.redis_url, "--key-prefix", prefix]
    issued = floorwalker("token", "issue", "--associate", "a-amy", *args, "--base-url", "http://shop:9000/")
    assert issued.returncode == 0, issued.stderr
    lines = dict(line.split(None, 1) for line in issued.stdout.splitlines())
    token = lines["token"]
    assert lines["signin"] == f"http://shop:9000/signin?token={token}"
    assert lines["role"].startswith("manager of store demo-store")  # the config's role for a-amy
    client = redis.Redis.from_url(services.redis_url)
    try:
        stored = client.hgetall(f"{prefix}fw:demo-store:token:{hashlib.sha256(token.encode()).hexdigest()}")
        assert stored[b"associate"] == b"a-amy" and stored[b"role"] == b"manager"
        assert not any(token.encode() in k or token.encode() in v for k, v in stored.items())
        revoked = floorwalker("token", "revoke", "--associate", "a-amy", *args)
        assert revoked.stdout.strip() == "revoked 1 link(s) and ended 0 session(s) of a-amy"
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--associate", "a-zed"], "--associate 'a-zed': not an associate of store demo-store"),
        (["--associate", "a-ben", "--role", "boss"], "--role 'boss': expected associate or manager"),
        (["--associate", "a-ben", "--ttl-hours", "0"], "--ttl-hours: must be greater than 0"),
    ],
)
def test_token_issue_mistakes_are_one_line(services: Endpoints, extra: list[str], says: str) -> None:
    line = _one_error_line(floorwalker("token", "issue", "--redis-url", services.redis_url, *extra))
    assert says in line


def test_broken_catalog_stops_the_recommender_with_file_line_and_key(
    services: Endpoints, tmp_path: Path
) -> None:
    from tests.conftest import DEMO_STORE

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("actions:\n  - id: hi\n    kind: greet_vip\n    value: 1\n    caps: {per_visit: 0}\n")
    store = tmp_path / "store.yaml"
    text = DEMO_STORE.read_text().replace("crm: demo_crm.json", f"crm: {DEMO_STORE.parent / 'demo_crm.json'}")
    store.write_text(text + f"catalog: {catalog}\n")
    line = _one_error_line(
        floorwalker(
            "recommender",
            "--store-config",
            str(store),
            "--mqtt-url",
            services.mqtt_url,
            "--redis-url",
            services.redis_url,
            "--key-prefix",
            "clitest/",
            "--no-load-crm",
        )
    )
    assert f"{catalog}:5: actions.0.caps.per_visit" in line


def test_crm_check(tmp_path: Path) -> None:
    from tests.conftest import REPO

    ok = floorwalker("crm", "check", str(REPO / "simulators" / "data" / "cdnow"), "--as-of", "1998-07-01")
    assert ok.returncode == 0, ok.stderr
    assert "600 members imported, 0 rows skipped" in ok.stdout and "fitted on this data" in ok.stdout
    line = _one_error_line(floorwalker("crm", "check", str(tmp_path / "nope.json")))
    assert "nope.json" in line and "not found" in line


def test_provision_bridge_writes_the_central_ca_beside_its_config(tmp_path: Path) -> None:
    """The store's login on the central broker carries the central CA; Mosquitto reads a
    CA from a file, so the bridge config gets one next to it."""
    from broker_config.acl import DeviceKind
    from floorwalker.provision import DeviceCredentials
    from floorwalker.tls import make_store_ca

    (tmp_path / "central").mkdir()
    pem = make_store_ca(tmp_path / "central", "central", now=dt.datetime.now(dt.UTC)).read_text()
    login = DeviceCredentials(
        kind=DeviceKind.SERVICE,
        id="bridge",
        store="demo-store",
        username="bridge-demo",
        password="x",
        ca_pem=pem,
    )
    creds = tmp_path / "bridge-login.json"
    creds.write_text(login.model_dump_json())
    out = tmp_path / "conf" / "bridge.conf"
    out.parent.mkdir()
    done = floorwalker(
        "provision",
        "bridge",
        "--central",
        "central.example:8883",
        "--credentials",
        str(creds),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    ca = out.parent / "bridge-ca.crt"
    assert ca.read_text() == pem
    assert f"bridge_cafile {ca}" in out.read_text().splitlines()
    assert "address central.example:8883" in out.read_text()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--presence", "radar"], "--presence 'radar': expected ble or model"),
        (["--presence", "ble", "--layout", "simulators/data/big_store.yaml"], "no ble_presence.secrets"),
    ],
)
def test_simulate_presence_mistakes_are_one_line(services: Endpoints, extra: list[str], says: str) -> None:
    from tests.conftest import REPO

    extra = [str(REPO / x) if x.endswith(".yaml") else x for x in extra]
    line = _one_error_line(floorwalker("simulate", "--mqtt-url", services.mqtt_url, "--rounds", "1", *extra))
    assert says in line
