"""Start and stop the real servers the platform runs on (Mosquitto, InfluxDB 1.x) and Lifeline's own services as
child processes.

Used by ``lifeline up``, the benchmarks and the test fixtures alike: loopback, a free port, data in a folder. Servers
only tests use (PostgreSQL, nginx as an InfluxDB 2.x front) are in the tests' ``tests/servers.py``.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import logging
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import orjson

from infra.mqtt_config import BrokerConfig, TlsConfig, configure_client, write_secret_file
from lifeline.broker_auth import Account, control_account, control_commands, dynsec_config
from lifeline.tls import TlsFiles


class ServiceError(RuntimeError):
    """A server could not be started; the text says which and why (with the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def owns_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the listening TCP socket on ``port`` (read from /proc; True where /proc cannot
    tell). A free port picked by one test may be taken by another's server before ours binds it: then that server
    answers, and ours must not take it for its own."""
    inodes: set[str] = set()
    want = f":{port:04X}"
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError), open(table) as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":  # local address, state LISTEN
                        inodes.add(cols[9])
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").removesuffix("]") in inodes:
                return True
    return False


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """True once ``host:port`` accepts a connection; False after ``timeout_s`` or if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


def find_binary(name: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin")) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    raise ServiceError(f"{name} is not installed: run scripts/setup (it installs the Debian package)")


def _http_status(url: str, *, method: str = "GET", data: bytes | None = None, timeout_s: float = 1.0,
                 auth: tuple[str, str] | None = None) -> int:  # fmt: skip
    """The status of one plain HTTP request to a loopback server (0 when nothing answers)."""
    request = urllib.request.Request(url, data=data, method=method)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # refused, reset or timed out: not up (yet)
        return 0


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """SIGTERM, wait, then SIGKILL if it does not go."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ChildServer:
    """A server run as a child process on loopback, with its config and log in ``data_dir``.

    Subclasses say how to configure (``_write_conf``), how to run (``_argv``) and when it is ready (``_ready``).
    """

    name = "server"

    def __init__(self, data_dir: Path, port: int | None, host: str, log_name: str, conf_name: str) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self._ports_chosen_here = port is None  # a port taken meanwhile by another server: choose again
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / log_name
        self.conf_path = data_dir / conf_name

    def _write_conf(self) -> None:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        return wait_for_port(self.host, self.port, 0.2, self.proc)

    def _user(self) -> str | None:
        """The system user to run the server as (None: this process's own)."""
        return None

    def _choose_ports(self) -> None:
        self.port = free_port(self.host)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server and return once it is ready (and it, not another, holds its port); ServiceError with the
        tail of its log if it is not. At the first start on ports chosen here, a port another process took before
        the server bound it means new ports and another try (up to three)."""
        for attempt in range(3):
            if self._start_once(timeout_s):
                self._ports_chosen_here = False  # a restart keeps its ports (clients know them)
                return
            if not self._ports_chosen_here or attempt == 2:
                break
            log_ = self.log_tail()
            self.stop()
            self._choose_ports()
            logging.getLogger("lifeline.services").info("%s: port taken, trying %d (%s)", self.name, self.port, log_)
        self.stop()
        raise ServiceError(f"{self.name} did not start on {self.host}:{self.port}: {self.log_tail()}")

    def _start_once(self, timeout_s: float) -> bool:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        argv = self._argv()
        user = self._user()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         cwd="/" if user else None,  # the other user may not enter ours
                                         user=user, group=user, extra_groups=[] if user else None)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._ready() and owns_port(self.proc.pid, self.port):
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (the server saves its state), then SIGKILL if it does not go."""
        proc, self.proc = self.proc, None
        _stop_process(proc, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mosquitto(ChildServer):
    """A Mosquitto broker on loopback, closed by default: no anonymous client, one account per client with the access
    of its role (:mod:`lifeline.broker_auth`, Mosquitto's dynamic-security plugin), optionally TLS.

    As root, Mosquitto drops to its own user before it opens its persistence file, plugin config and certificates:
    those live in a state folder that user owns (``data_dir/state``, or a folder of its own under the system temporary
    folder when that user cannot reach ``data_dir``, as under pytest's 0700 folders). ``start`` checks that the broker
    can persist (it writes ``mosquitto.db`` on SIGUSR1) and fails loudly if it cannot.

    ``control=True`` (tests) adds an account that creates accounts at run time (:meth:`add`).
    """

    name = "mosquitto"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        accounts: Sequence[Account] = (),
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
        control: bool = False,
    ) -> None:
        super().__init__(data_dir, port, host, "mosquitto.log", "mosquitto.conf")
        self.tls = tls
        self.require_certificate = require_certificate
        self.accounts: dict[str, Account] = {a.username: a for a in accounts}
        self._control: Account | None = control_account("lifeline-test-control") if control else None
        if self._control is not None:
            self.accounts[self._control.username] = self._control
        self._as_root = os.geteuid() == 0
        self.state_dir: Path | None = None
        self._own_state_dir = False
        self._control_client: Any = None

    # -- files ------------------------------------------------------------------------------------------------
    def _reachable(self, folder: Path) -> bool:
        """Whether the mosquitto user can write ``folder`` (it cannot under another user's 0700 folder)."""
        done = subprocess.run(["test", "-w", str(folder)], user="mosquitto", group="mosquitto", extra_groups=[],
                              cwd="/", check=False)  # fmt: skip
        return done.returncode == 0

    def _state(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        state = self.data_dir / "state"
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(state, "mosquitto", "mosquitto")
            if not self._reachable(state):
                digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
                state = Path(tempfile.gettempdir()) / f"lifeline-mosquitto-{digest}"
                state.mkdir(mode=0o700, exist_ok=True)
                shutil.chown(state, "mosquitto", "mosquitto")
                self._own_state_dir = True
        self.state_dir = state
        return state

    def _own(self, path: Path) -> None:
        if self._as_root:
            shutil.chown(path, "mosquitto", "mosquitto")

    def _write_conf(self) -> None:
        state = self._state()
        dynsec = state / "dynamic-security.json"
        if not dynsec.exists():  # a restart keeps the accounts, also those added at run time
            write_secret_file(dynsec, orjson.dumps(dynsec_config(self.accounts.values()), option=orjson.OPT_INDENT_2)
                              .decode())  # fmt: skip
            self._own(dynsec)
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            "allow_anonymous false",
            "use_username_as_clientid true",
            f"plugin {dynsec_plugin()}",
            f"plugin_opt_config_file {dynsec}",
            "persistence true",
            f"persistence_location {state}/",
            "autosave_interval 1",
            "max_queued_messages 1000000",
            "max_inflight_messages 1000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.tls is not None:
            names = {"cafile": self.tls.ca_file, "certfile": self.tls.cert_file, "keyfile": self.tls.key_file}
            for option, source in names.items():
                target = state / f"tls-{option}.pem"
                write_secret_file(target, source.read_text(encoding="utf-8"))
                self._own(target)
                lines.append(f"{option} {target}")
            lines.append(f"require_certificate {'true' if self.require_certificate else 'false'}")
            lines.append("tls_version tlsv1.2")
        self.conf_path.write_text("\n".join([*lines, ""]))

    def _argv(self) -> list[str]:
        return [find_binary("mosquitto"), "-c", str(self.conf_path)]

    def start(self, timeout_s: float = 30.0) -> None:
        super().start(timeout_s)
        self.check_persistence()

    def check_persistence(self, timeout_s: float = 15.0) -> None:
        """Raise ServiceError unless the broker writes ``mosquitto.db`` (a fresh save, ``autosave_interval`` 1 s)."""
        if not self.save_now(timeout_s):
            self.stop()
            raise ServiceError(f"mosquitto cannot persist to {self.state_dir} (no mosquitto.db written in "
                               f"{timeout_s:g} s): {self.log_tail()}")  # fmt: skip

    def save_now(self, timeout_s: float = 15.0) -> bool:
        """Have the broker save its database now (SIGUSR1) and wait for it; False if no save comes.

        SIGUSR1 is sent only once the broker answers a CONNECT: its handler is installed after the port opens, and
        before that the signal would end it. Without the signal it still saves every ``autosave_interval`` (1 s)."""
        assert self.proc is not None
        assert self.state_dir is not None
        db = self.state_dir / "mosquitto.db"
        since = time.time_ns()
        deadline = time.monotonic() + timeout_s
        signalled = False
        while time.monotonic() < deadline and self.proc.poll() is None:
            if db.exists() and db.stat().st_mtime_ns >= since:
                return True
            if not signalled and self._answers():
                self.proc.send_signal(signal.SIGUSR1)
                signalled = True
            time.sleep(0.02)
        return False

    def _answers(self) -> bool:
        """Whether the broker's loop runs: it answers an anonymous CONNECT (with a refusal)."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        answered = threading.Event()
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="")
        tls = TlsConfig(ca_file=self.tls.ca_file) if self.tls is not None else None
        configure_client(client, BrokerConfig(host=self.host, port=self.port, tls=tls))
        client.on_connect = lambda c, u, f, rc, p: answered.set()
        try:
            client.connect(self.host, self.port, keepalive=5)
        except OSError:
            return False
        client.loop_start()
        try:
            return answered.wait(2.0)
        finally:
            client.disconnect()
            client.loop_stop()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._close_control()
        super().stop(timeout_s)

    def kill(self) -> None:
        self._close_control()
        super().kill()

    def remove(self) -> None:
        """Stop and delete a state folder made outside ``data_dir``."""
        self.stop()
        if self._own_state_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    # -- accounts ---------------------------------------------------------------------------------------------
    def config_for(self, account: Account | str, **overrides: Any) -> BrokerConfig:
        """The BrokerConfig a client of ``account`` connects with (host, port, credentials, TLS)."""
        a = self.accounts[account] if isinstance(account, str) else account
        tls = TlsConfig(ca_file=self.tls.ca_file) if self.tls is not None else None
        return BrokerConfig(host=self.host, port=self.port, username=a.username, password=a.password, tls=tls,
                            **overrides)  # fmt: skip

    def add(self, account: Account, **overrides: Any) -> BrokerConfig:
        """Create ``account`` on the running broker (once; the same user name gives the same account back)."""
        known = self.accounts.get(account.username)
        if known is None:
            self._control_request(control_commands(account))
            self.accounts[account.username] = known = account
        return self.config_for(known, **overrides)

    def _control_request(self, request: dict[str, object], timeout_s: float = 10.0) -> None:
        if self._control is None:
            raise ServiceError("this broker was started without control=True: accounts are fixed")
        if self._control_client is None:
            self._control_client = _ControlClient(self.config_for(self._control))
        self._control_client.request(request, timeout_s)

    def _close_control(self) -> None:
        client, self._control_client = self._control_client, None
        if client is not None:
            client.close()


def dynsec_plugin() -> str:
    """The dynamic-security plugin of Debian's mosquitto package (in the multiarch library folder)."""
    for pattern in ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                    "/usr/local/lib/mosquitto_dynamic_security.so"):  # fmt: skip
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise ServiceError("mosquitto_dynamic_security.so not found: install Debian's mosquitto package (scripts/setup)")


class _ControlClient:
    """A paho client on ``$CONTROL/dynamic-security/v1`` that sends a request and waits for its answer."""

    REQUEST = "$CONTROL/dynamic-security/v1"

    def __init__(self, broker: BrokerConfig) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._answers: queue.Queue[bytes] = queue.Queue()
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=broker.username or "")
        configure_client(self.client, broker)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.REQUEST + "/response", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self._ready.set()
        self.client.on_message = lambda c, u, msg: self._answers.put(bytes(msg.payload))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            self.close()
            raise ServiceError("mosquitto: the control client could not connect and subscribe")

    def request(self, request: dict[str, object], timeout_s: float) -> None:
        self.client.publish(self.REQUEST, orjson.dumps(request), qos=1)
        try:
            answer = orjson.loads(self._answers.get(timeout=timeout_s))
        except queue.Empty:
            raise ServiceError("mosquitto: no answer from the dynamic-security plugin") from None
        errors = [r for r in answer.get("responses", []) if r.get("error")]
        if errors:
            raise ServiceError(f"mosquitto: the dynamic-security plugin refused: {errors}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Influxd(ChildServer):
    """An InfluxDB 1.x server (Debian's ``influxd``) on loopback, with its config, data and log in ``data_dir``.

    Only the HTTP API (``/write``, ``/query``, ``/ping``) is served; the RPC port (backup/restore), which would be
    8088 for every instance, gets a free loopback port of its own so parallel servers do not clash.
    """

    name = "influxd"

    def __init__(
        self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1", *, auth_enabled: bool = False
    ) -> None:
        super().__init__(data_dir, port, host, "influxd.log", "influxdb.conf")
        self.rpc_port = free_port(host)
        self.auth_enabled = auth_enabled
        # InfluxDB before 1.7.6 accepts JWTs signed with an empty shared secret (CVE-2019-20933): never leave it empty
        self.shared_secret = secrets.token_urlsafe(32)
        self.admin: tuple[str, str] | None = None  # (user, password) once set_up_users made or found the admin

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_conf(self) -> None:
        # Section and key names as printed by `influxd config` of 1.6.7. Quiet and lean: no usage reporting, no
        # _internal monitor database (it writes every 10 s), no per-request or per-query log lines.
        self.conf_path.write_text(
            f"""\
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  dir = "{self.data_dir / "meta"}"
  logging-enabled = false

[data]
  dir = "{self.data_dir / "data"}"
  wal-dir = "{self.data_dir / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {"true" if self.auth_enabled else "false"}
  shared-secret = "{self.shared_secret}"
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  log-enabled = false
"""
        )

    def _argv(self) -> list[str]:
        return [find_binary("influxd", ("/usr/bin", "/usr/sbin", "/usr/local/bin")), "-config", str(self.conf_path)]

    def _choose_ports(self) -> None:
        super()._choose_ports()
        self.rpc_port = free_port(self.host)

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/ping", timeout_s=0.5) == 204

    def _statement(self, q: str, auth: tuple[str, str] | None) -> int:
        return _http_status(f"{self.url}/query", method="POST", data=urllib.parse.urlencode({"q": q}).encode(),
                            timeout_s=10, auth=auth)  # fmt: skip

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE "name"`` (idempotent on 1.x; with auth, as the admin of :meth:`set_up_users`)."""
        status = self._statement(f"CREATE DATABASE {_quote_ident(name)}", self.admin)
        if status != 200:
            raise ServiceError(f"influxd {self.url}: CREATE DATABASE {_quote_ident(name)} answered {status}")

    def set_up_users(self, database: str, users: dict[str, tuple[str, str]], admin: tuple[str, str]) -> None:
        """With auth: the admin (made at the first start, when InfluxDB allows it without credentials), the database,
        and each user of ``users`` (name -> (password, READ|WRITE|ALL) on ``database``); idempotent."""
        status = self._statement(f"CREATE USER {_quote_ident(admin[0])} WITH PASSWORD {_quote_str(admin[1])} "
                                 "WITH ALL PRIVILEGES", None)  # fmt: skip
        if status != 200 and self._statement("SHOW USERS", admin) != 200:  # 401/403: an admin exists already
            raise ServiceError(f"influxd {self.url}: could not create the admin user {admin[0]!r} ({status}), and "
                               "it does not exist with the password given")  # fmt: skip
        self.admin = admin
        self.create_database(database)
        for name, (password, privilege) in users.items():
            for q in (f"CREATE USER {_quote_ident(name)} WITH PASSWORD {_quote_str(password)}",
                      f"SET PASSWORD FOR {_quote_ident(name)} = {_quote_str(password)}",
                      f"GRANT {privilege} ON {_quote_ident(database)} TO {_quote_ident(name)}"):  # fmt: skip
                if self._statement(q, admin) != 200:
                    raise ServiceError(f"influxd {self.url}: {q.split(' WITH')[0].split(' =')[0]} failed")


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ServiceProcess:
    """A Lifeline service as it runs in production: its own process, watched through its metrics endpoint."""

    def __init__(self, command: list[str], config: Path, metrics_port: int, log: Path, ready_metric: str) -> None:
        self.command, self.config, self.metrics_port, self.log = command, config, metrics_port, log
        self.ready_metric = ready_metric
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "lifeline", "--log-level", "WARNING", *self.command, "--config", str(self.config)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.metrics().get(self.ready_metric) == 1:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{' '.join(self.command)} did not connect; see {self.log}")

    def metrics(self) -> dict[str, float]:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            found = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
            if found:
                out[found.group(1)] = float(found.group(2))
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
