"""The deployment files, checked with what this machine has: systemd's own unit verifier,
shellcheck and a dry run of the gateway installer, the gateway config template against
the demo store, and the structure of the compose file and Kubernetes manifests (parsed;
no Docker engine or cluster runs them here — see deploy/README.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
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


def test_compose_has_every_service_with_health_checks_and_volumes() -> None:
    compose = _docs(DEPLOY / "store-server" / "compose.yaml")[0]
    services = compose["services"]
    assert set(services) == {"mosquitto", "redis", "recommender", "fuser", "api"}
    for name in ("mosquitto", "redis", "recommender", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "--appendonly" in services["redis"]["command"]
    assert set(compose["volumes"]) == {"mosquitto-data", "redis-data"}
    for name in ("recommender", "fuser", "api"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert (REPO / services["api"]["build"]["context"].replace("../..", ".")).exists()


def test_dockerfile_installs_with_the_pins_and_runs_unprivileged() -> None:
    text = (DEPLOY / "store-server" / "Dockerfile").read_text()
    assert 'pip install -c constraints.txt ".[server]"' in text
    assert "\nUSER floorwalker\n" in text
    for copied in (
        line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
    ):
        assert (REPO / copied).exists(), copied


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
    assert "SUCCESS: 6 rules found" in done.stdout


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
        "floorwalker_ble_adverts_total",
        "floorwalker_recommender_latency_seconds_bucket",
        "floorwalker_decisions_total",
        "floorwalker_recommender_prompts_total",
        "floorwalker_deadletters_total",
        "floorwalker_outbox_pending",
    ):
        assert name in used, name
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
