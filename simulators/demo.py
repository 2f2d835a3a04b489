"""``floorwalker demo``: a simulated store end to end on this machine.

Starts our own Mosquitto and Redis, then the recommender, the handheld API, the BLE fuser,
a real edge agent counting people with its camera (OpenCV's sample street video stands in
for the entrance camera, when Debian's ``opencv-doc`` is installed) and the simulated
store's other gateways (publishing what they hear of members' phones) and tills as
separate processes, prints the handheld and dashboard links
and a live line of counts, and on Ctrl-C stops everything it started.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import redis

from floorwalker import procs
from floorwalker.config import StoreConfig, load_store_config
from floorwalker.errors import ServiceStartError
from floorwalker.services import Services, free_port, http_answers, port_is_free
from recommender.keys import Keys
from simulators.live import MAX_BLE_SPEED
from simulators.stores import DEMO_CAMERA_GATEWAY

HEALTH_TIMEOUT_S = 20.0
#: The demo's camera gateway: gw-entrance with the sample video as its camera.
CAMERA_GATEWAY_CONFIG = DEMO_CAMERA_GATEWAY


def _spawn(name: str, args: list[str], run_dir: Path) -> procs.Process:
    log = run_dir / f"{name}.log"
    argv = [sys.executable, "-m", "floorwalker", "--log-file", str(log), *args]
    return procs.spawn(argv, run_dir / f"{name}.stderr.log")


#: Short names of the prompt kinds for the demo's counts line.
SHORT_KINDS = {
    "greet_vip": "greet", "replenishment_due": "replenish", "cross_sell": "cross-sell",
    "birthday": "birthday", "expiring_points": "expiring", "complaint_follow_up": "complaint",
    "win_back": "win-back", "long_dwell_help": "help", "join_invite": "invite", "open_till": "till",
}  # fmt: skip


def _counts_line(stats: dict[bytes, bytes], started: float) -> str:
    n = {k.decode(): int(v) for k, v in stats.items()}
    rejected = sum(v for k, v in n.items() if k.startswith("rejected:"))
    elapsed = int(time.monotonic() - started)
    kinds = ", ".join(
        f"{short} {n[f'prompt:{k}']}" for k, short in SHORT_KINDS.items() if n.get(f"prompt:{k}")
    )
    return (
        f"[{elapsed // 60:02d}:{elapsed % 60:02d}] events {n.get('events', 0)}"
        f" | prompts {n.get('prompts', 0)}"
        + (f" ({kinds})" if kinds else "")
        + f" | accepted {n.get('feedback:accepted', 0)} converted {n.get('converted', 0)}"
        f" held out {n.get('holdout', 0)}"
        f" | duplicates {n.get('outcome:duplicate', 0)} | rejected {rejected}"
    )


# -- handheld and dashboard sign-in links (issue 8) ----------------------------------------


def _signin_lines(client: redis.Redis, config: StoreConfig, base: str) -> list[str]:
    """A fresh sign-in link per demo associate (a manager's opens the dashboard)."""
    from handheld.auth import issue_token

    keys = Keys(config.store)
    lines = [
        "  handheld pages (phone-sized; open each link in its own browser profile or window;",
        "  prompts go only to associates whose page is open, so open at least one):",
    ]
    dashboards = []
    for a in config.associates:
        issued = issue_token(client, keys, config, a.id, role="associate")
        zones = ", ".join(a.zones) or "-"
        lines.append(
            f"    {a.display_name:<6} {base}/signin?token={issued.token}&to=handheld  (zones: {zones})"
        )
        if a.role == "manager":
            manager = issue_token(client, keys, config, a.id)
            dashboards.append(f"  dashboard ({a.display_name}, manager): {base}/signin?token={manager.token}")
    lines += dashboards or ["  dashboard: no associate has role: manager in the store config"]
    lines.append(f"  API docs {base}/docs   metrics {base}/metrics")
    return lines


def _camera_gateway(config: StoreConfig) -> str | None:
    """The gateway whose camera the demo runs for real, if its video is on this machine."""
    from edge_agent.camera.source import FileSource
    from edge_agent.gateway_config import load_gateway_config

    if not CAMERA_GATEWAY_CONFIG.exists():
        return None
    gw = load_gateway_config(CAMERA_GATEWAY_CONFIG)
    if gw.store != config.store:
        return None
    sources = [c.source for c in gw.cameras]
    if not all(isinstance(src, FileSource) and src.path.exists() for src in sources):
        return None
    return gw.gateway


def run_demo(store_path: Path, run_dir: Path, *, port: int = 8080, speed: float = 1.0) -> None:
    config = load_store_config(store_path)
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if port == 0 or not port_is_free(port):
        chosen = free_port()
        if port:
            print(f"port {port} is busy; serving the handheld pages on {chosen} instead")
        port = chosen

    services = Services(run_dir)
    endpoints = services.up()
    client = redis.Redis.from_url(endpoints.redis_url)
    client.flushdb()  # the demo's own Redis: every run starts a fresh day
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    common = ["--store-config", str(store_path), "--mqtt-url", endpoints.mqtt_url]
    children: dict[str, procs.Process] = {}
    try:
        children["recommender"] = _spawn(
            "recommender", ["recommender", *common, "--redis-url", endpoints.redis_url], run_dir
        )
        children["api"] = _spawn(
            "api", ["api", *common, "--redis-url", endpoints.redis_url, "--port", str(port)], run_dir
        )
        base = f"http://127.0.0.1:{port}"
        api_stderr = run_dir / "api.stderr.log"
        not_up, see = f"the handheld API did not come up on {base}: ", f" — see {run_dir / 'api.log'}"
        if not procs.wait_ready(
            children["api"],
            lambda: http_answers(f"{base}/readyz"),
            HEALTH_TIMEOUT_S,
            "the handheld API",
            [api_stderr],
            poll=0.2,
            message=lambda _name, _code, tail: not_up + tail + see,
        ):
            raise ServiceStartError(not_up + procs.log_tail(api_stderr) + see)
        camera = _camera_gateway(config)
        # Members' phones as the gateways hear them, made presence by the store's fuser
        # (which works in wall-clock seconds: a fast-forwarded demo plays presence instead).
        ble = config.ble_presence.secrets is not None and speed <= MAX_BLE_SPEED
        simulate = ["simulate", *common, "--speed", str(speed), "--presence", "ble" if ble else "model"]
        if ble:
            children["fuser"] = _spawn("fuser", ["fuser", *common], run_dir)
        if camera is not None:
            edge = ["edge", "--gateway-config", str(CAMERA_GATEWAY_CONFIG), "--mqtt-url", endpoints.mqtt_url]
            children["camera"] = _spawn("camera", edge, run_dir)
            simulate += ["--camera-gateway", camera]
        children["simulator"] = _spawn("simulator", simulate, run_dir)

        print(f"Floorwalker demo: {config.name} ({config.store})")
        if camera is not None:
            print(f"  camera  {camera} counts people on OpenCV's sample video -> entrance footfall")
        else:
            print("  camera  skipped: no sample video (install Debian's opencv-doc to see it)")
        if ble:
            print("  BLE     members' phones heard by the gateways -> fuser -> zone presence")
        elif config.ble_presence.secrets is not None:
            print(
                f"  BLE     skipped above --speed {MAX_BLE_SPEED:g}: the gateways publish presence themselves"
            )
        for line in _signin_lines(client, config, base):
            print(line)
        print(f"  broker {endpoints.mqtt_url}   redis {endpoints.redis_url}   logs {run_dir}")
        print("  Ctrl-C stops everything.\n")

        started = time.monotonic()
        keys = Keys(config.store)
        while not stop.wait(1.0):
            for name, child in children.items():
                procs.check_alive(
                    child,
                    name,
                    [run_dir / f"{name}.stderr.log"],
                    message=lambda who, code, why: (
                        f"{who} stopped (exit {code}): {why} — see {run_dir / f'{who}.log'}"
                    ),
                )
            stats: dict[bytes, bytes] = client.hgetall(keys.stats)  # type: ignore[assignment]
            line = _counts_line(stats, started)
            print(f"\r{line}", end="", flush=True)
    finally:
        print("\nstopping ...")
        procs.stop_all(children.values(), 10)
        client.close()
        services.down()
        print(f"stopped: {', '.join(reversed(children))}, Mosquitto and Redis")
