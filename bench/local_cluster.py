"""A Redis Cluster on loopback, started by the project (scale test and ``bench scale``).

``LocalCluster(run_dir).up()`` starts N ``redis-server --cluster-enabled yes`` on free
ports, joins them with ``redis-cli --cluster create`` (masters only, no replicas: this
proves slot routing, not failover), waits for ``cluster_state:ok`` and returns a
``redis+cluster://`` URL the recommender understands. ``down()`` stops exactly those
processes.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from typing import cast

import redis

from floorwalker.errors import ServiceStartError
from floorwalker.procs import Process, log_tail, spawn, stop_all, wait_ready
from floorwalker.services import HOST, find_binary, port_is_free, redis_answers

#: A cluster node also listens on its port + 10 000 (the cluster bus).
BUS_OFFSET = 10_000


def _cluster_port() -> int:
    """A free port whose bus port (port + 10 000, at most 65 535) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 55_000)
        if port_is_free(port) and port_is_free(port + BUS_OFFSET):
            return port
    raise ServiceStartError(f"no free port pair (p, p + {BUS_OFFSET}) for a Redis Cluster node on {HOST}")


class LocalCluster:
    def __init__(self, run_dir: Path, masters: int = 3) -> None:
        self.run_dir = run_dir.resolve()
        self.masters = masters
        self.ports: list[int] = []
        self._procs: list[Process] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.ports[0]}/0"

    def up(self, timeout: float = 20.0) -> str:
        server = find_binary("redis-server")
        cli = find_binary("redis-cli")
        try:
            for _ in range(self.masters):
                self._start_node(server, timeout)
            nodes = [f"{HOST}:{p}" for p in self.ports]
            made = subprocess.run(
                [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if made.returncode != 0:
                raise ServiceStartError(
                    f"redis-cli --cluster create failed: {(made.stdout + made.stderr).strip()[-300:]}"
                )
            self._wait_ok(timeout)
        except BaseException:
            self.down()
            raise
        return self.url

    def down(self) -> None:
        stop_all(self._procs, 5)
        self._procs.clear()

    def _start_node(self, server: str, timeout: float) -> None:
        port = _cluster_port()
        data = self.run_dir / f"redis-cluster-{port}"
        data.mkdir(parents=True, exist_ok=True)
        log = data / "stderr.log"
        argv = [
            server,
            "--bind", HOST, "--port", str(port), "--dir", str(data),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
            # As the store server's Redis: append-only file, fsync once a second.
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--logfile", str(data / "redis.log"), "--daemonize", "no",
        ]  # fmt: skip
        proc = spawn(argv, log)
        self._procs.append(proc)
        failed = f"redis-server (cluster node on {HOST}:{port}) did not start: "
        redis_log = data / "redis.log"
        if not wait_ready(
            proc,
            lambda: redis_answers(f"redis://{HOST}:{port}/0"),
            timeout,
            "redis-server",
            [redis_log],
            message=lambda _name, _code, tail: failed + tail,
        ):
            raise ServiceStartError(failed + log_tail(redis_log))
        self.ports.append(port)

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for port in self.ports:
                client = redis.Redis(host=HOST, port=port)
                try:
                    info = cast(dict[str, str], client.cluster("INFO"))
                    states.append(info.get("cluster_state"))
                except redis.RedisError:
                    states.append(None)
                finally:
                    client.close()
            if all(s == "ok" for s in states):
                return
            time.sleep(0.1)
        raise ServiceStartError(f"Redis Cluster on ports {self.ports} did not reach cluster_state:ok")
