"""Our own Mosquitto and Redis: started from ``broker_config/`` templates in a run directory.

``Services(run_dir).up()`` renders the configs, starts both servers on free (or given)
loopback ports, waits until each answers, and records pids and ports in
``run_dir/services.json``. ``down()`` stops exactly those processes. Nothing here uses a
broker or Redis that happens to be running on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template

import redis

from broker_config import MOSQUITTO_SECURE_TEMPLATE, MOSQUITTO_TEMPLATE, REDIS_TEMPLATE
from floorwalker.config import Endpoints
from floorwalker.errors import ConfigError, ServiceStartError
from floorwalker.procs import Process, spawn, wait_ready
from floorwalker.redis_accounts import ADMIN_FILE, RedisAccounts, RedisLogin

STATE_FILE = "services.json"
#: sun_path holds 108 bytes on Linux; longer socket paths cannot be bound.
MAX_UNIX_SOCKET_PATH = 100
HOST = "127.0.0.1"
#: Debian package that provides each binary, for the "how to install" message.
PACKAGES = {"mosquitto": "mosquitto", "redis-server": "redis-server"}


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    pid: int
    port: int
    started: int  # kernel start time of the process, see _start_ticks
    #: The broker's TLS listener, when it has one (``services up --secrets`` with certificates).
    tls_port: int | None = None
    #: The secrets directory the server was started with (``services up --secrets``).
    secrets_dir: str | None = None


def find_binary(name: str) -> str:
    """Path of a server binary, or an error that says which Debian package to install."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        raise ServiceStartError(
            f"{name} is not installed: run `sudo apt-get install -y {PACKAGES.get(name, name)}` "
            "(or `make setup`, which does it for you)"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As Mosquitto and Redis bind: a port whose old connections linger in TIME_WAIT
        # (a server just restarted) is free for them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def mqtt_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when an MQTT CONNECT on ``host:port`` gets a CONNACK.

    A hardened broker refuses the anonymous login (return code 5), which still proves it
    is up and speaking MQTT."""
    # MQTT 3.1.1 CONNECT, clean session, keepalive 60 s, empty client id.
    connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(connect)
            reply = s.recv(4)
            s.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return reply[:2] == b"\x20\x02" and len(reply) == 4


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True when Redis answers PING; a secured Redis refusing us (NOAUTH) answers too."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return True
    except redis.RedisError:
        return False
    finally:
        client.close()


def http_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a GET of ``url`` answers 200 (a server's readiness page)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), or None if it is gone.

    Together with the pid it identifies one process for good: a reused pid has another
    start time. (The command line won't do: redis-server rewrites its own.)
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after its ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _pid_alive(proc: ServiceProcess) -> bool:
    """True if the recorded process is still the server we started (and not a zombie)."""
    try:
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and _start_ticks(proc.pid) == proc.started


class Services:
    """Start, stop and describe the Mosquitto and Redis that belong to one run directory."""

    def __init__(
        self,
        run_dir: Path,
        *,
        mqtt_port: int | None = None,
        redis_port: int | None = None,
        secrets_dir: Path | None = None,
        tls_port: int | None = None,
        tls_bind: str = "0.0.0.0",
        broker_include: Path | None = None,
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.mqtt_port = mqtt_port
        self.redis_port = redis_port
        #: With a secrets directory (see :mod:`floorwalker.provision`) the broker requires a
        #: login per device, applies the ACL and, with certificates there, adds TLS.
        self.secrets_dir = secrets_dir.resolve() if secrets_dir is not None else None
        self.tls_port = tls_port
        self.tls_bind = tls_bind
        #: A directory of extra Mosquitto config files (e.g. a bridge) the broker includes.
        self.broker_include = broker_include.resolve() if broker_include is not None else None
        self._children: list[Process] = []

    @property
    def state_file(self) -> Path:
        return self.run_dir / STATE_FILE

    # -- queries -----------------------------------------------------------------------

    def recorded(self) -> dict[str, ServiceProcess]:
        try:
            raw = json.loads(self.state_file.read_text())
            return {name: ServiceProcess(**proc) for name, proc in raw.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{self.state_file}: unreadable ({exc}); delete it and run `floorwalker services up`"
            ) from None

    def endpoints(self) -> Endpoints:
        procs = self.recorded()
        if set(procs) != {"mosquitto", "redis"}:
            raise ConfigError(
                f"no services recorded in {self.state_file}: start them with `floorwalker services up` "
                "or pass --mqtt-url and --redis-url"
            )
        # Local clients prefer Redis's Unix socket (no TCP stack: about a third of the
        # round trip on loopback); TCP stays open for everything else.
        sock = self.run_dir / "redis" / "redis.sock"
        redis_url = f"unix://{sock}?db=0" if sock.exists() else f"redis://{HOST}:{procs['redis'].port}/0"
        return Endpoints(HOST, procs["mosquitto"].port, redis_url)

    def status(self) -> dict[str, str]:
        """One line per service: pid, port and whether it answers."""
        procs = self.recorded()
        lines: dict[str, str] = {}
        for name in ("mosquitto", "redis"):
            proc = procs.get(name)
            if proc is None:
                lines[name] = "not started"
                continue
            alive = _pid_alive(proc)
            answers = (
                mqtt_answers(HOST, proc.port)
                if name == "mosquitto"
                else redis_answers(f"redis://{HOST}:{proc.port}/0")
            )
            state = "up" if alive and answers else ("not answering" if alive else "dead")
            lines[name] = f"{state} (pid {proc.pid}, port {proc.port})"
        return lines

    # -- lifecycle ---------------------------------------------------------------------

    def up(self, timeout: float = 15.0) -> Endpoints:
        """Start both servers (or keep the ones already up) and return their endpoints."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        procs = self.recorded()
        mosq = procs.get("mosquitto")
        if mosq is None or not (_pid_alive(mosq) and mqtt_answers(HOST, mosq.port)):
            mosq = self._start_mosquitto(timeout)
            self._record({**self.recorded(), "mosquitto": mosq})
        red = procs.get("redis")
        if red is None or not (_pid_alive(red) and redis_answers(f"redis://{HOST}:{red.port}/0")):
            red = self._start_redis(timeout)
            self._record({**self.recorded(), "redis": red})
        return self.endpoints()

    def broker_serving(self, secrets_dir: Path) -> tuple[ServiceProcess | None, str]:
        """The running broker of this run directory if it serves ``secrets_dir``, else None
        and what was found instead (for the one-line refusal)."""
        mosq = self.recorded().get("mosquitto")
        if mosq is None:
            return None, f"no broker recorded in {self.run_dir}"
        if not _pid_alive(mosq):
            return None, f"the broker recorded in {self.run_dir} (pid {mosq.pid}) is not running"
        if mosq.secrets_dir is None:
            return None, f"the broker in {self.run_dir} (pid {mosq.pid}) runs without --secrets"
        if Path(mosq.secrets_dir) != secrets_dir.resolve():
            return None, f"the broker in {self.run_dir} (pid {mosq.pid}) serves {mosq.secrets_dir}"
        return mosq, ""

    def broker_running(self) -> bool:
        """True when the broker recorded in this run directory is running."""
        mosq = self.recorded().get("mosquitto")
        return mosq is not None and _pid_alive(mosq)

    def reload_broker(self) -> bool:
        """Make our Mosquitto re-read its password and ACL files (SIGHUP); False if not running."""
        mosq = self.recorded().get("mosquitto")
        if mosq is None or not _pid_alive(mosq):
            return False
        os.kill(mosq.pid, signal.SIGHUP)
        return True

    def down(self, timeout: float = 10.0) -> list[str]:
        """Stop exactly the processes recorded in the state file; return what was stopped."""
        stopped = []
        for proc in self.recorded().values():
            if _pid_alive(proc):
                os.kill(proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while _pid_alive(proc) and time.monotonic() < deadline:
                    self._reap()
                    time.sleep(0.05)
                if _pid_alive(proc):
                    os.kill(proc.pid, signal.SIGKILL)
                stopped.append(f"{proc.name} (pid {proc.pid}, port {proc.port})")
        self._reap()
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        return stopped

    # -- internals ---------------------------------------------------------------------

    def _record(self, procs: dict[str, ServiceProcess]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in procs.items()}, indent=2))
        tmp.replace(self.state_file)

    def _reap(self) -> None:
        for child in self._children:
            child.poll()

    def _pick_port(self, wanted: int | None, flag: str) -> int:
        if wanted is None:
            return free_port()
        if not port_is_free(wanted):
            raise ServiceStartError(
                f"port {wanted} on {HOST} is busy: pick another with {flag} or stop whatever listens there"
            )
        return wanted

    def _render(self, template: Path, name: str, port: int, **extra: str) -> Path:
        data_dir = self.run_dir / name
        data_dir.mkdir(exist_ok=True)
        text = Template(template.read_text()).substitute(
            port=port,
            run_dir=str(data_dir),
            user=pwd.getpwuid(os.getuid()).pw_name,
            **{"auth": "", **extra},
        )
        if len(str(data_dir / "redis.sock")) >= MAX_UNIX_SOCKET_PATH:
            # Too long for a Unix socket address: serve over loopback TCP only.
            text = "\n".join(line for line in text.splitlines() if not line.startswith("unixsocket"))
        if name == "mosquitto" and self.broker_include is not None:
            text += f"\ninclude_dir {self.broker_include}\n"
        conf = self.run_dir / f"{name}.conf"
        conf.write_text(text)
        return conf

    def _spawn(self, argv: list[str], log: Path) -> Process:
        child = spawn(argv, log)
        self._children.append(child)
        return child

    def _start(
        self,
        name: str,
        binary: str,
        template: Path,
        wanted: int | None,
        flag: str,
        timeout: float,
        **extra: str,
    ) -> ServiceProcess:
        port = self._pick_port(wanted, flag)
        conf = self._render(template, name, port, **extra)
        log = self.run_dir / f"{name}.stderr.log"
        argv = [binary, "-c", str(conf)] if name == "mosquitto" else [binary, str(conf)]
        child = self._spawn(argv, log)

        def answers() -> bool:
            if name == "mosquitto":
                return mqtt_answers(HOST, port)
            return redis_answers(f"redis://{HOST}:{port}/0")

        # Exited at start: the tail of its stderr, or of its own log (Mosquitto's, Redis's).
        if wait_ready(child, answers, timeout, name, [log, self.run_dir / name / f"{name}.log"]):
            return ServiceProcess(name, child.pid, port, _start_ticks(child.pid) or 0)
        child.kill()
        raise ServiceStartError(f"{name} did not answer on {HOST}:{port} within {timeout:.0f} s — see {log}")

    def _start_mosquitto(self, timeout: float) -> ServiceProcess:
        binary = find_binary("mosquitto")
        if self.secrets_dir is None:
            return self._start(
                "mosquitto", binary, MOSQUITTO_TEMPLATE, self.mqtt_port, "--mqtt-port", timeout
            )
        secrets = self.secrets_dir
        for needed in ("passwd", "acl"):
            if not (secrets / needed).exists():
                raise ConfigError(
                    f"{secrets / needed}: missing; provision the store's devices first "
                    "(`floorwalker provision service recommender --secrets ...`)"
                )
        tls_listener, tls_port = "", None
        if (secrets / "server.crt").exists():
            tls_port = self._pick_port(self.tls_port, "--tls-port")
            tls_listener = "\n".join(
                [
                    "# ... devices on the store network over TLS, verified with the store CA.",
                    f"listener {tls_port} {self.tls_bind}",
                    f"cafile {secrets / 'ca.crt'}",
                    f"certfile {secrets / 'server.crt'}",
                    f"keyfile {secrets / 'server.key'}",
                    "tls_version tlsv1.2",
                ]
            )
        proc = self._start(
            "mosquitto",
            binary,
            MOSQUITTO_SECURE_TEMPLATE,
            self.mqtt_port,
            "--mqtt-port",
            timeout,
            secrets_dir=str(secrets),
            tls_listener=tls_listener,
        )
        return ServiceProcess(proc.name, proc.pid, proc.port, proc.started, tls_port, str(secrets))

    def _start_redis(self, timeout: float) -> ServiceProcess:
        auth = "# no --secrets: loopback and the socket's owner only, no login"
        if self.secrets_dir is not None:
            # A user per service, no default user (floorwalker.redis_accounts).
            accounts = RedisAccounts(self.secrets_dir)
            accounts.ensure()
            auth = f"aclfile {accounts.acl_file}"
        proc = self._start(
            "redis",
            find_binary("redis-server"),
            REDIS_TEMPLATE,
            self.redis_port,
            "--redis-port",
            timeout,
            auth=auth,
        )
        secrets = str(self.secrets_dir) if self.secrets_dir is not None else None
        return ServiceProcess(proc.name, proc.pid, proc.port, proc.started, secrets_dir=secrets)

    def reload_redis_users(self) -> bool:
        """Make our Redis re-read its ACL file (``ACL LOAD`` as admin): a revoked service's
        user is gone, and ``ACL LOAD`` disconnects its open connections. False if Redis is not
        running or was started without ``--secrets``."""
        red = self.recorded().get("redis")
        if red is None or not _pid_alive(red) or red.secrets_dir is None:
            return False
        admin = RedisLogin.model_validate_json((Path(red.secrets_dir) / ADMIN_FILE).read_text())
        client = redis.Redis(
            host=HOST, port=red.port, username=admin.username, password=admin.password, socket_timeout=5
        )
        try:
            client.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            raise ServiceStartError(f"Redis (pid {red.pid}) did not reload its users: {exc}") from None
        finally:
            client.close()
        return True
