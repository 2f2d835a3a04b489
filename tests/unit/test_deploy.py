"""The deployment files, checked with what this machine has: systemd's own unit verifier,
shellcheck and a dry run of the gateway installer, the gateway config template against
the demo store, and the structure of the compose file and Kubernetes manifests (parsed;
no Docker engine or cluster runs them here — see deploy/README.md)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.gateway_config import check_against_store, load_gateway_config
from floorwalker.config import load_store_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DEMO_STORE = REPO / "simulators" / "data" / "demo_store.yaml"
UNITS = sorted(DEPLOY.glob("**/*.service"))
VENV_BIN = "/opt/floorwalker/venv/bin/floorwalker"


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: `make setup` installs it (scripts/ensure-system-deps.sh)"
    return found


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_pass_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    # The venv under /opt exists only on a real gateway/server: point ExecStart at a stub,
    # keep every other line as shipped.
    stub = tmp_path / "floorwalker"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = unit.read_text()
    assert VENV_BIN in text
    copy = tmp_path / unit.name
    copy.write_text(text.replace(VENV_BIN, str(stub)))
    done = subprocess.run(
        [_tool("systemd-analyze"), "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt directive is reported."""
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\nRestart=sometimes\nWatchdogSecs=30\n")
    done = subprocess.run([_tool("systemd-analyze"), "verify", str(bad)], capture_output=True, text=True)
    assert "WatchdogSecs" in done.stderr and "restart specifier" in done.stderr


def test_gateway_unit_is_hardened_and_keeps_its_state() -> None:
    unit = (DEPLOY / "gateway" / "floorwalker-edge.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=always",
        "StateDirectory=floorwalker",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_BLUETOOTH",
        "CapabilityBoundingSet=",
    ):
        assert f"\n{line}\n" in unit, line


def test_install_script_passes_shellcheck() -> None:
    scripts = [DEPLOY / "gateway" / "install.sh"]
    done = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def _install(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / "gateway" / "install.sh"), *argv], capture_output=True, text=True, timeout=60
    )


def test_install_dry_run_builds_a_new_venv_and_switches_atomically() -> None:
    done = _install(
        "--store-config", str(DEMO_STORE), "--gateway", "gw-entrance",
        "--mqtt-url", "mqtt://store-server.local:1883", "--dry-run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    steps = [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]
    venv = next(s for s in steps if s.startswith("python3 -m venv ")).split()[-1]
    assert venv.startswith("/opt/floorwalker/venv-0.")
    # New venv first, then one rename of a symlink: never a half-installed /opt/floorwalker/venv.
    switch = steps.index("mv -T /opt/floorwalker/venv.new /opt/floorwalker/venv")
    assert steps.index(f"ln -sfn {venv} /opt/floorwalker/venv.new") == switch - 1
    assert any(s.startswith(f"{venv}/bin/pip install --quiet -c ") for s in steps[:switch])
    # The config is validated before the restart; the state directory (outbox) is never touched.
    check = next(i for i, s in enumerate(steps) if s.startswith(f"{venv}/bin/python -c "))
    assert check < steps.index("systemctl restart floorwalker-edge.service")
    assert not [s for s in steps if "/var/lib/floorwalker" in s and not s.startswith("adduser ")]
    assert "install -m 0644 " + str(DEPLOY / "gateway" / "floorwalker-edge.service") in " ".join(steps)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gateway", "gw-entrance", "--mqtt-url", "mqtt://h:1883"], "--store-config FILE is required"),
        (
            ["--store-config", "/nonexistent.yaml", "--gateway", "g", "--mqtt-url", "mqtt://h:1"],
            "no such file",
        ),
        (
            ["--store-config", str(DEMO_STORE), "--gateway", "Gw!", "--mqtt-url", "mqtt://h:1"],
            "ids are lower-case",
        ),
        (
            ["--store-config", str(DEMO_STORE), "--gateway", "gw-entrance", "--mqtt-url", "h:1883"],
            "expected mqtt://",
        ),
        (["--bogus"], "unknown option --bogus"),
    ],
)
def test_install_refuses_bad_input_in_one_line(argv: list[str], message: str) -> None:
    done = _install(*argv, "--dry-run")
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not [line for line in done.stdout.splitlines() if line.startswith("+ ")]  # nothing done


def test_gateway_template_renders_to_a_valid_gateway_config(tmp_path: Path) -> None:
    text = (DEPLOY / "gateway" / "gateway.yaml.tmpl").read_text()
    rendered = (
        text.replace("@STORE@", "demo-store")
        .replace("@GATEWAY@", "gw-entrance")
        .replace("@CAMERA_HOST@", "10.0.0.12")
    )
    assert "@" not in rendered.replace("rtsp://", "")
    shutil.copy(DEMO_STORE, tmp_path / "store.yaml")
    path = tmp_path / "gateway.yaml"
    path.write_text(rendered)
    config = load_gateway_config(path)
    check_against_store(config, load_store_config(tmp_path / "store.yaml"), path)
    assert config.gateway == "gw-entrance" and config.cameras


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


COMPOSE = DEPLOY / "store-server" / "compose.yaml"
DOCKERFILE = DEPLOY / "store-server" / "Dockerfile"
STORE_SERVICES = {"mosquitto", "redis", "recommender", "fuser", "api"}
DEMO_SERVICES = {
    "demo-mosquitto", "demo-redis", "demo-recommender", "demo-api", "demo-fuser", "demo-camera",
    "demo-simulator", "demo-links",
}  # fmt: skip
#: Where the demo image keeps the repository (Dockerfile target ``demo``).
IMAGE_SRC = "/opt/floorwalker/src"


def _compose() -> dict[str, Any]:
    return _docs(COMPOSE)[0]


def _stages() -> dict[str, str]:
    """The Dockerfile's stages by name, each with its text."""
    parts = re.split(r"^(?=FROM )", DOCKERFILE.read_text(), flags=re.M)
    return {m.group(1): part for part in parts if (m := re.match(r"FROM \S+ AS (\S+)", part))}


def test_compose_has_every_service_with_health_checks_and_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == STORE_SERVICES | DEMO_SERVICES
    for name in ("mosquitto", "redis", "recommender", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "--appendonly" in services["redis"]["command"]
    assert set(compose["volumes"]) == {"mosquitto-data", "redis-data"}
    for name in ("recommender", "fuser", "api"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["build"]["target"] == "server"
    assert (REPO / services["api"]["build"]["context"].replace("../..", ".")).exists()


def test_store_and_demo_are_separate_profiles() -> None:
    """`--profile demo up` starts the demo and nothing of the store's (which needs secrets),
    `--profile store up` the store and nothing of the demo."""
    services = _compose()["services"]
    for name, svc in services.items():
        assert svc["profiles"] == (["demo"] if name in DEMO_SERVICES else ["store"]), name
        for dep in svc.get("depends_on", {}):
            assert services[dep]["profiles"] == svc["profiles"], (name, dep)


def test_demo_depends_on_healthy_broker_redis_and_api() -> None:
    services = _compose()["services"]
    for name in DEMO_SERVICES - {"demo-mosquitto", "demo-redis"}:
        deps = services[name]["depends_on"]
        assert deps["demo-mosquitto" if name != "demo-links" else "demo-redis"]["condition"] == (
            "service_healthy"
        ), name
        for dep, how in deps.items():
            assert how["condition"] in ("service_healthy", "service_started"), (name, dep)
            if how["condition"] == "service_healthy":
                assert services[dep]["healthcheck"]["test"], (name, dep)
    # The simulator and the links wait for the API; every demo process is running first.
    assert services["demo-links"]["depends_on"]["demo-api"]["condition"] == "service_healthy"
    sim = services["demo-simulator"]["depends_on"]
    assert sim["demo-api"]["condition"] == "service_healthy"
    assert {"demo-recommender", "demo-fuser", "demo-camera"} <= set(sim)
    assert services["demo-links"]["restart"] == "no"
    for name in ("demo-recommender", "demo-api", "demo-fuser", "demo-camera", "demo-simulator"):
        env = services[name]["environment"]
        assert env["FLOORWALKER_MQTT_URL"] == "mqtt://demo-mosquitto:1883", name
        assert env["FLOORWALKER_REDIS_URL"] == "redis://demo-redis:6379/0", name


def test_build_contexts_and_targets_exist() -> None:
    stages = _stages()
    assert list(stages)[-1] == "server"  # a plain `docker build` gives the store-server image
    for name, svc in _compose()["services"].items():
        build = svc.get("build")
        if build is None:
            continue
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == REPO and (context / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert build["target"] in stages, name
        assert svc["image"].startswith(f"floorwalker{'-demo' if build['target'] == 'demo' else ''}:")


def test_compose_mounts_only_files_that_exist() -> None:
    """Bind mounts of the demo point at files in the repository; the store's mount its own
    config and secrets (made by `floorwalker provision`, not shipped)."""
    for name, svc in _compose()["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                continue  # a named volume
            if name in DEMO_SERVICES:
                assert (COMPOSE.parent / source).is_file(), (name, source)
            else:
                assert source in ("./mosquitto.conf", "./secrets", "./config"), (name, source)
                if source == "./mosquitto.conf":
                    assert (COMPOSE.parent / source).is_file()


def test_demo_broker_config_matches_the_project_broker() -> None:
    """The demo's Mosquitto runs broker_config/mosquitto.conf.tmpl's limits, no TLS, no logins."""
    template = (REPO / "broker_config" / "mosquitto.conf.tmpl").read_text()
    demo = (DEPLOY / "store-server" / "mosquitto-demo.conf").read_text()
    settings = dict(line.split(None, 1) for line in demo.splitlines() if line and not line.startswith("#"))
    assert settings["listener"] == "1883 0.0.0.0" and settings["allow_anonymous"] == "true"
    for key in ("max_packet_size", "set_tcp_nodelay", "max_queued_messages", "max_inflight_messages"):
        assert f"\n{key} {settings[key]}\n" in template, key
    assert not {"password_file", "acl_file", "cafile", "certfile", "keyfile"} & set(settings)


def _image_path(arg: str) -> Path:
    return REPO / arg.removeprefix(IMAGE_SRC + "/") if arg.startswith(IMAGE_SRC + "/") else Path(arg)


def _floorwalker_commands() -> list[tuple[str, list[str]]]:
    """Every `floorwalker` command line of the compose file: each service's command (the
    image's entrypoint is ``floorwalker``) and each one in the demo-links shell script."""
    found: list[tuple[str, list[str]]] = []
    for name, svc in _compose()["services"].items():
        if "build" not in svc:
            continue
        if svc.get("entrypoint") == ["/bin/sh", "-c"]:
            script = svc["command"][0].replace("$$", "$")
            for line in script.splitlines():
                words = shlex.split(line.strip())
                if words[:1] == ["floorwalker"]:
                    found.append((name, words[1:]))
        else:
            assert "entrypoint" not in svc, name
            found.append((name, list(svc["command"])))
    return found


def test_every_compose_command_is_a_floorwalker_command_with_real_options() -> None:
    from typer.testing import CliRunner

    from floorwalker.cli import app

    commands = _floorwalker_commands()
    assert {name for name, _ in commands} == {
        "recommender", "fuser", "api", "demo-recommender", "demo-api", "demo-fuser", "demo-camera",
        "demo-simulator", "demo-links",
    }  # fmt: skip
    runner = CliRunner()
    for name, argv in commands:
        # The subcommand: one word, or a group and its command (`token issue`).
        sub = argv[: 2 if argv[0] == "token" else 1]
        shown = runner.invoke(app, [*sub, "--help"], env={"COLUMNS": "300"})
        assert shown.exit_code == 0, (name, sub, shown.output)
        for option in (w.split("=")[0] for w in argv if w.startswith("--")):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", shown.output), (name, option)
        # Files the demo names inside the image are the repository's (the image copies it).
        for value in argv:
            if value.startswith(IMAGE_SRC + "/"):
                assert _image_path(value).is_file(), (name, value)


def test_the_demo_runs_what_make_demo_runs() -> None:
    """The same processes with the same settings as `floorwalker demo` (simulators/demo.py)."""
    from simulators.demo import CAMERA_GATEWAY_CONFIG
    from simulators.live import MAX_BLE_SPEED

    services = _compose()["services"]
    commands = dict(_floorwalker_commands())
    assert {"recommender", "api", "fuser", "edge", "simulate"} == {
        commands[n][0]
        for n in ("demo-recommender", "demo-api", "demo-fuser", "demo-camera", "demo-simulator")
    }
    demo_store = f"{IMAGE_SRC}/simulators/data/demo_store.yaml"
    for name in ("demo-recommender", "demo-api", "demo-fuser", "demo-simulator", "demo-links"):
        argv = commands[name]
        assert argv[argv.index("--store-config") + 1] == demo_store, name
    camera = commands["demo-camera"]
    gw_path = _image_path(camera[camera.index("--gateway-config") + 1])
    assert gw_path == CAMERA_GATEWAY_CONFIG
    gateway = load_gateway_config(gw_path)
    check_against_store(gateway, load_store_config(DEMO_STORE), gw_path)
    # The camera's video is where the demo image puts it (taken from Debian's opencv-doc).
    video = str(gateway.cameras[0].source.path)  # type: ignore[union-attr]
    assert f"COPY --from=demo-video {video} {video}" in _stages()["demo"]
    assert video.removeprefix("/") in _stages()["demo-video"]
    assert camera[camera.index("--outbox") + 1].startswith("/tmp/")  # the one writable place
    assert "/tmp" in services["demo-camera"]["tmpfs"] and services["demo-camera"]["read_only"]
    sim = commands["demo-simulator"]
    assert sim[sim.index("--camera-gateway") + 1] == gateway.gateway
    assert sim[sim.index("--presence") + 1] == "ble" and float(sim[sim.index("--speed") + 1]) <= MAX_BLE_SPEED
    assert "--out" not in sim  # live onto the broker
    # A handheld link per associate of the demo store, and the manager's dashboard.
    links = [argv for name, argv in _floorwalker_commands() if name == "demo-links"]
    config = load_store_config(DEMO_STORE)
    script = services["demo-links"]["command"][0]
    loop = re.search(r"for a in ([^;]+);", script)
    assert loop and loop.group(1).split() == [a.id for a in config.associates]
    managers = [a.id for a in config.associates if a.role == "manager"]
    assert managers and any(a[a.index("--role") + 1] == "manager" and managers[0] in a for a in links)
    api = commands["demo-api"]
    assert api[api.index("--host") + 1] == "0.0.0.0" and api[api.index("--port") + 1] == "8080"
    assert services["demo-api"]["ports"] == ["127.0.0.1:${FLOORWALKER_DEMO_PORT:-8080}:8080"]


def test_docker_compose_validates_the_file() -> None:
    """Debian's docker-compose (1.29; no engine needed for `config`) validates the file
    against the compose schema. It predates the top-level `name:`, so that line is dropped."""
    tool = shutil.which("docker-compose")
    assert tool is not None, (
        "docker-compose is missing: run scripts/ensure-system-deps.sh (Debian docker-compose)"
    )
    text = COMPOSE.read_text()
    assert text.count("\nname: floorwalker\n") == 1
    for profile in ("store", "demo"):
        done = subprocess.run(
            [
                tool,
                "-f",
                "-",
                "--project-directory",
                str(COMPOSE.parent),
                "--profile",
                profile,
                "config",
                "-q",
            ],
            input=text.replace("\nname: floorwalker\n", "\n"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    broken = text.replace("\nname: floorwalker\n", "\n").replace("service_healthy}", "service_hearty}")
    done = subprocess.run(
        [tool, "-f", "-", "--project-directory", str(COMPOSE.parent), "config", "-q"],
        input=broken, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "service_hearty" in done.stderr


def test_dockerfile_installs_with_the_pins_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages()
    assert set(stages) == {"build", "demo-video", "demo", "server"}
    assert 'pip install -c constraints.txt ".[server]"' in stages["build"]
    assert 'pip install -c constraints.txt -e ".[lab]"' in stages["demo"]
    for stage in ("demo", "server"):
        assert "\nUSER floorwalker\n" in stages[stage], stage
        assert 'ENTRYPOINT ["floorwalker"]' in stages[stage], stage
    for copied in (
        line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
    ):
        assert (REPO / copied).exists(), copied
    # Every package the CLI may import is in the image (bench is for the lab only).
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for pattern in packages["find"]["include"]:
        package = pattern.rstrip("*")
        if package != "bench":
            assert f"\nCOPY {package} ./{package}\n" in stages["build"], package
    for needed in ("models", "simulators"):  # the demo's detector, store and gateway config
        assert f"\nCOPY {needed} ./{needed}\n" in stages["build"], needed
    assert "COPY --from=build /src /opt/floorwalker/src" in stages["demo"]


def test_chain_manifests_wire_replicas_to_redis_cluster_and_shared_subscriptions() -> None:
    chain = DEPLOY / "chain"
    listed = _docs(chain / "kustomization.yaml")[0]["resources"]
    docs = [d for name in listed for d in _docs(chain / name)]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("StatefulSet", "redis-cluster"), ("StatefulSet", "emqx"), ("StatefulSet", "recommender"),
            ("Deployment", "api"), ("Job", "redis-cluster-create")} <= kinds  # fmt: skip
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"]
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "floorwalker", d["metadata"]["name"]
    rec = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "recommender")
    container = rec["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["FLOORWALKER_REDIS_URL"]["value"].startswith("redis+cluster://")
    assert env["FLOORWALKER_SHARE_GROUP"]["value"]
    assert env["FLOORWALKER_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert rec["spec"]["replicas"] >= 2
    api = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "api")
    probe = api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/readyz"
    redis_sts = next(
        d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis-cluster"
    )
    assert redis_sts["spec"]["replicas"] == 6
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "redis-cluster")
    assert "cluster-enabled yes" in conf["data"]["redis.conf"]


# -- Prometheus and Grafana (deploy/prometheus/, deploy/grafana/) ----------------------

_METRIC = re.compile(r"\bfloorwalker_[a-z_]+")


def _exposed_metric_names() -> set[str]:
    """Every series name the API's /metrics can carry (the recommender's counters included)."""
    from handheld.metrics import ApiMetrics

    metrics = ApiMetrics(load_store_config(DEMO_STORE))
    metrics.recommender.source = lambda: {"outcome:prompted": 1, "prompt:greet_vip": 1, "unserved:nobody": 1}
    names: set[str] = set()
    for family in metrics.registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def test_alert_rules_pass_promtool() -> None:
    done = subprocess.run(
        [_tool("promtool"), "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_scrape_config_passes_promtool_with_the_bearer_token(tmp_path: Path) -> None:
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert "credentials_file: /etc/prometheus/floorwalker-metrics-token" in config
    token = tmp_path / "floorwalker-metrics-token"
    token.write_text("a-scrape-token\n")
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/floorwalker-metrics-token", str(token))
    )
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    done = subprocess.run(
        [_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_and_alerts_query_only_metrics_the_api_exposes() -> None:
    exposed = _exposed_metric_names()
    dashboard = json.loads((DEPLOY / "grafana" / "floorwalker.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {name for e in exprs for name in _METRIC.findall(e)}
    assert used and used <= exposed, sorted(used - exposed)
    # Every floor figure of the issue has a panel.
    for name in (
        "floorwalker_zone_occupancy",
        "floorwalker_lane_queue",
        "floorwalker_lane_wait_seconds",
        "floorwalker_footfall_total",
        "floorwalker_camera_fps",
        "floorwalker_camera_dropped_frames_total",
        "floorwalker_ble_adverts_total",
        "floorwalker_ble_resolved_total",
        "floorwalker_ble_unresolved_total",
        "floorwalker_recommender_latency_seconds_bucket",
        "floorwalker_decisions_total",
        "floorwalker_recommender_prompts_total",
        "floorwalker_deadletters_total",
        "floorwalker_outbox_pending",
    ):
        assert name in used, name
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
