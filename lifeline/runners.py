"""Start and stop the real servers the platform runs on, Mosquitto and InfluxDB 1.x, as child processes of
``lifeline up``: loopback, a port, data in a folder.

What only tests and benchmarks need on top (killing and restarting a server, accounts made at run time, checks that a
server holds its port while parallel tests pick ports, Lifeline's services run as processes) is in the ``testing``
package, which builds on these classes; product code never imports it.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import http.client
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import orjson

from infra.secret import write_secret_file
from lifeline.broker_auth import Account, dynsec_config
from lifeline.tls import TlsFiles


class ServiceError(RuntimeError):
    """A server could not be started; the text says which and why (with the tail of its log)."""


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux: ip_local_port_range)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now, below the kernel's range for outgoing connections.

    A port the kernel chose (bind to port 0) lies in that range: while a server there is stopped (a broker restarted
    after an outage, in the fault suite or by an operator), any outgoing connection on the machine may be given it as
    its own port, and the server cannot bind it again ("Address already in use"). Below the range only a listener
    takes a port."""
    floor = _ephemeral_floor()
    low = max(1024, floor // 3)
    for _ in range(200):
        port = random.randrange(low, floor)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a crowded machine: any free port
        s.bind((host, 0))
        chosen: int = s.getsockname()[1]
        return chosen


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


def _http_status(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    timeout_s: float = 1.0,
    auth: tuple[str, str] | None = None,
) -> int:
    """The status of one plain HTTP request to a loopback server (0 when nothing answers)."""
    return _http_answer(url, method=method, data=data, timeout_s=timeout_s, auth=auth)[0]


def _http_answer(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    timeout_s: float = 1.0,
    auth: tuple[str, str] | None = None,
) -> tuple[int, bytes]:
    """The status and the whole body of one plain HTTP request to a loopback server ((0, b"") when nothing answers).

    The body is read to its end: a server may send its status before the work is done (InfluxDB's /query does)."""
    request = urllib.request.Request(url, data=data, method=method)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:  # refused, reset or timed out: not up (yet)
        return 0, b""


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (influxd's ``bind-socket``)."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _unix_http_answer(
    path: Path,
    target: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    timeout_s: float = 1.0,
    auth: tuple[str, str] | None = None,
) -> tuple[int, bytes]:
    """``_http_answer`` over a Unix socket ((0, b"") when nothing answers)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    connection = _UnixConnection(path, timeout_s)
    try:
        connection.request(method, target, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:  # no socket yet, refused, reset or timed out: not up (yet)
        return 0, b""
    finally:
        connection.close()


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
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

    # the server's files are its own: made under this umask (None: the caller's), whatever the caller's is
    umask: int | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server and return once it is ready; ServiceError with the tail of its log if it is not."""
        if not self._start_once(timeout_s):
            self.stop()
            raise ServiceError(f"{self.name} did not start on {self.host}:{self.port}: {self.log_tail()}")

    def _start_once(self, timeout_s: float) -> bool:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        argv = self._argv()
        user = self._user()
        with self.log_path.open("ab") as log:
            if self.umask is not None:
                self.log_path.chmod(0o666 & ~self.umask)
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd="/" if user else None,  # the other user may not enter ours
                user=user,
                group=user,
                extra_groups=[] if user else None,
                umask=-1 if self.umask is None else self.umask,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._ready():
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (the server saves its state), then SIGKILL if it does not go."""
        proc, self.proc = self.proc, None
        stop_process(proc, timeout_s)

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


# Broker limits. The largest legitimate message is an agent's retained birth, which lists the site's devices: 10,000
# devices with ids of the longest allowed (64 characters) make 670,208 bytes (a telemetry message of one device is a
# few kB). A client that sends a packet over MAX_PACKET_SIZE is disconnected and the message goes nowhere (MQTT 5
# clients are told the limit in the CONNACK). Not ``message_size_limit``: Mosquitto 2.0.11 answers a message over it
# with a PUBACK that paho cannot parse, and recommends ``max_packet_size`` itself.
MAX_PACKET_SIZE = 1 << 20  # bytes of a whole packet: header, topic, properties and payload
# Per client, above what is in flight: a bridge or rules engine that is away (InfluxDB down, a restart) is queued
# for 1,000,000 messages or 256 MiB, whichever comes first (about 3 minutes of a 5,000 message/s district at about
# 270 bytes a message); one flooding account can grow no queue past that.
MAX_QUEUED_MESSAGES = 1_000_000
MAX_QUEUED_BYTES = 256 << 20
MAX_INFLIGHT_MESSAGES = 1000  # toward each client at once (a consumer's own receive maximum may lower it)


def broker_limits() -> list[str]:
    """The mosquitto.conf lines of the limits above (for ``lifeline up``'s broker and a production one alike)."""
    return [
        f"max_packet_size {MAX_PACKET_SIZE}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
    ]


class Mosquitto(ChildServer):
    """A Mosquitto broker on loopback, closed by default: no anonymous client, one account per client with the access
    of its role (:mod:`lifeline.broker_auth`, Mosquitto's dynamic-security plugin), optionally TLS.

    As root, Mosquitto drops to its own user before it opens its persistence file, plugin config and certificates:
    those live in a state folder that user owns (``data_dir/state``, or a folder of its own under the system temporary
    folder when that user cannot reach ``data_dir``, as under pytest's 0700 folders). ``start`` checks that the broker
    can persist (it writes ``mosquitto.db`` on SIGUSR1) and fails loudly if it cannot.
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
    ) -> None:
        super().__init__(data_dir, port, host, "mosquitto.log", "mosquitto.conf")
        self.tls = tls
        self.require_certificate = require_certificate
        self.accounts: dict[str, Account] = {a.username: a for a in accounts}
        self._as_root = os.geteuid() == 0
        self.state_dir: Path | None = None
        self._own_state_dir = False  # the state folder is one of its own under the system temporary folder
        self._accounts_written = False  # the accounts file was written by this runner (a restart keeps it)

    # -- files ------------------------------------------------------------------------------------------------
    def _reachable(self, folder: Path) -> bool:
        """Whether the mosquitto user can write ``folder`` (it cannot under another user's 0700 folder)."""
        done = subprocess.run(
            ["test", "-w", str(folder)], user="mosquitto", group="mosquitto", extra_groups=[], cwd="/", check=False
        )
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
        # written from ``accounts`` at this runner's first start, whatever an earlier run left in the folder (its
        # passwords may not be the ones handed out now); a restart of this same broker keeps the file, so accounts
        # added at run time survive it
        if not self._accounts_written or not dynsec.exists():
            self._accounts_written = True
            write_secret_file(
                dynsec, orjson.dumps(dynsec_config(self.accounts.values()), option=orjson.OPT_INDENT_2).decode()
            )
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
            # $SYS/broker/uptime every second: an edge whose connection the broker closed tells a restart from a
            # session taken over by it (edge_agent.health.TakeoverWatch)
            "sys_interval 1",
            *broker_limits(),
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",  # with connection_messages: "New client connected from ... as ... (..., u'edge-s1')"
            "connection_messages true",
        ]
        if self.tls is not None:
            names = {"cafile": self.tls.ca_file, "certfile": self.tls.cert_file, "keyfile": self.tls.key_file}
            for option, source in names.items():
                target = state / f"tls-{option}.pem"
                write_secret_file(target, source.read_text(encoding="utf-8"))
                self._own(target)
                lines.append(f"{option} {target}")
            lines.append(f"require_certificate {'true' if self.require_certificate else 'false'}")
            if self.require_certificate:  # the user name is the certificate's CN: a password alone connects nobody
                lines.append("use_identity_as_username true")
                if self.tls.crl_file is not None:  # client certificates revoked (lifeline keys revoke)
                    target = state / "tls-crlfile.pem"
                    write_secret_file(target, self.tls.crl_file.read_text(encoding="utf-8"))
                    self._own(target)
                    lines.append(f"crlfile {target}")
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
            raise ServiceError(
                f"mosquitto cannot persist to {self.state_dir} (no mosquitto.db written in "
                f"{timeout_s:g} s): {self.log_tail()}"
            )

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
        """Whether the broker's loop runs: it answers a CONNECT (an anonymous one, refused, is enough).

        Fourteen bytes of MQTT 3.1.1 written here rather than an MQTT client: this only asks whether a CONNACK comes."""
        connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x05\x00\x00"  # CONNECT, clean session, keep-alive 5 s, no id
        if self.require_certificate:  # this probe has no client certificate: it would only fill the log with refusals
            return False  # (the broker still saves every autosave_interval, 1 s)
        try:
            with socket.create_connection((self.host, self.port), timeout=2.0) as raw:
                if self.tls is None:
                    return _connack(raw, connect)
                context = ssl.create_default_context(cafile=str(self.tls.ca_file))
                context.check_hostname = False  # the server's name is checked by the clients, not by this probe
                with context.wrap_socket(raw) as wrapped:
                    return _connack(wrapped, connect)
        except OSError:  # refused, reset, TLS refused or timed out: not up (yet)
            return False


def _connack(sock: socket.socket, connect: bytes) -> bool:
    sock.sendall(connect)
    return sock.recv(1)[:1] == b"\x20"  # CONNACK, whatever its return code


def dynsec_plugin() -> str:
    """The dynamic-security plugin of Debian's mosquitto package (in the multiarch library folder)."""
    for pattern in (
        "/usr/lib/*/mosquitto_dynamic_security.so",
        "/usr/lib/mosquitto_dynamic_security.so",
        "/usr/local/lib/mosquitto_dynamic_security.so",
    ):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise ServiceError("mosquitto_dynamic_security.so not found: install Debian's mosquitto package (scripts/setup)")


class Influxd(ChildServer):
    """An InfluxDB 1.x server (Debian's ``influxd``) on loopback, with its config, data and log in ``data_dir``.

    Only the HTTP API (``/write``, ``/query``, ``/ping``) is meant to be served. InfluxDB 1.x cannot turn off its RPC
    port (``influxd backup`` and ``restore``, without credentials: the whole data and the password hashes) nor
    ``/debug/vars`` (served without credentials whatever ``auth-enabled`` says; ``pprof-enabled = false`` closes only
    ``/debug/pprof``). So with ``private_network`` (``lifeline up``) influxd runs in a network namespace of its own
    (``unshare --net``: no interface but its own loopback), where both TCP ports are out of every other process's
    reach, and serves HTTP on a Unix socket (``socket_path``, 0600 in its 0700 data folder) that only its owner can
    open; :class:`lifeline.write_gateway.WriteGateway` is then the only way in. Without it (tests), HTTP and the RPC
    port are on loopback, the RPC port a free one of its own so parallel servers do not clash.

    Its files are 0600 and its folders 0700 (umask 077): the config holds the JWT shared secret.
    """

    name = "influxd"
    umask = 0o077

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        auth_enabled: bool = False,
        private_network: bool = False,
    ) -> None:
        # in a namespace of its own nothing else holds a port: InfluxDB's usual ones
        super().__init__(data_dir, port or (8086 if private_network else None), host, "influxd.log", "influxdb.conf")
        self.private_network = private_network
        self.rpc_port = 8088 if private_network else free_port(host)
        self.socket_path = data_dir / "influxd.sock"
        self.auth_enabled = auth_enabled
        # InfluxDB before 1.7.6 accepts JWTs signed with an empty shared secret (CVE-2019-20933): never leave it empty
        self.shared_secret = secrets.token_urlsafe(32)
        self.admin: tuple[str, str] | None = None  # (user, password) once set_up_users made or found the admin

    @property
    def url(self) -> str:
        """Its HTTP address (with ``private_network``, only inside its namespace: use ``socket_path``)."""
        return f"http://{self.host}:{self.port}"

    def _write_conf(self) -> None:
        self.data_dir.chmod(0o700)
        for folder in ("meta", "data", "wal"):
            (self.data_dir / folder).mkdir(mode=0o700, exist_ok=True)
        unix = ""
        if self.private_network:
            self.socket_path.unlink(missing_ok=True)  # a stale one (a killed server) would stop it binding
            unix = "".join(
                f"\n  {line}"
                for line in (
                    "unix-socket-enabled = true",
                    'unix-socket-permissions = "0600"',
                    f'bind-socket = "{self.socket_path}"',
                )
            )
        # Section and key names as printed by `influxd config` of 1.6.7. Quiet and lean: no usage reporting, no
        # _internal monitor database (it writes every 10 s), no per-request or per-query log lines. 0600: it holds
        # the JWT shared secret, with which anyone could sign a token as the admin.
        write_secret_file(
            self.conf_path,
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
  pprof-enabled = false{unix}

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  log-enabled = false
""",
        )

    def _argv(self) -> list[str]:
        influxd = [find_binary("influxd", ("/usr/bin", "/usr/local/bin")), "-config", str(self.conf_path)]
        if not self.private_network:
            return influxd
        # root may make a network namespace; another user makes it inside a user namespace of its own (mapped to
        # itself: the files stay its own). unshare executes influxd in place: the child's pid is influxd's.
        unshare = [find_binary("unshare", ("/usr/bin", "/bin")), "--net"]
        if os.geteuid() != 0:
            unshare.append("--map-root-user")
        # the namespace's loopback starts down: ip brings it up so that influxd can bind its ports on it
        ip = find_binary("ip", ("/usr/sbin", "/sbin", "/usr/bin", "/bin"))
        return [*unshare, "--", "/bin/sh", "-c", f'"{ip}" link set lo up && exec "$0" "$@"', *influxd]

    def _ready(self) -> bool:
        return self._answer("/ping", "GET", None, None, 0.5)[0] == 204

    def _answer(
        self, path: str, method: str, data: bytes | None, auth: tuple[str, str] | None, timeout_s: float
    ) -> tuple[int, bytes]:
        """One request to influxd's HTTP API: its Unix socket with ``private_network``, else its TCP port."""
        if not self.private_network:
            return _http_answer(f"{self.url}{path}", method=method, data=data, timeout_s=timeout_s, auth=auth)
        return _unix_http_answer(self.socket_path, path, method=method, data=data, timeout_s=timeout_s, auth=auth)

    def _statement(self, q: str, auth: tuple[str, str] | None) -> tuple[int, str]:
        """Run one statement and return (HTTP status, the statement's error or "") once it has run.

        InfluxDB 1.x answers 200 as soon as it accepts a query, before the statement runs, and reports a failed
        statement in the body, still with 200. So the body is read to its end (the statement is then done) and its
        error returned: a CREATE USER taken as done on its status alone let the next statement, sent at once, find
        no admin yet (403 "create admin user first") on a busy machine."""
        status, body = self._answer("/query", "POST", urllib.parse.urlencode({"q": q}).encode(), auth, 10)
        if status != 200:
            return status, body.decode(errors="replace").strip()
        try:
            results = orjson.loads(body).get("results", [])
        except (orjson.JSONDecodeError, AttributeError):
            return status, f"unreadable answer: {body[:200]!r}"
        errors = [str(r["error"]) for r in results if isinstance(r, dict) and r.get("error")]
        return status, "; ".join(errors)

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE "name"`` (idempotent on 1.x; with auth, as the admin of :meth:`set_up_users`)."""
        status, error = self._statement(f"CREATE DATABASE {_quote_ident(name)}", self.admin)
        if status != 200 or error:
            raise ServiceError(f"influxd {self.url}: CREATE DATABASE {_quote_ident(name)} answered {status}: {error}")

    def set_up_users(self, database: str, users: dict[str, tuple[str, str]], admin: tuple[str, str]) -> None:
        """With auth: the admin (made at the first start, when InfluxDB allows it without credentials), the database,
        and each user of ``users`` (name -> (password, READ|WRITE|ALL) on ``database``, and nothing more on it);
        idempotent."""
        status, error = self._statement(
            f"CREATE USER {_quote_ident(admin[0])} WITH PASSWORD {_quote_str(admin[1])} WITH ALL PRIVILEGES", None
        )
        if (status != 200 or error) and self._statement("SHOW USERS", admin) != (200, ""):  # an admin exists already
            raise ServiceError(
                f"influxd {self.url}: could not create the admin user {admin[0]!r} ({status}: {error}), and "
                "it does not exist with the password given"
            )
        self.admin = admin
        self.create_database(database)
        for name, (password, privilege) in users.items():
            status, error = self._statement(
                f"CREATE USER {_quote_ident(name)} WITH PASSWORD {_quote_str(password)}", admin
            )
            if status != 200 or (error and error != "user already exists"):  # then SET PASSWORD makes it ours
                raise ServiceError(f"influxd {self.url}: CREATE USER {_quote_ident(name)} answered {status}: {error}")
            for q in (
                f"SET PASSWORD FOR {_quote_ident(name)} = {_quote_str(password)}",
                # a GRANT adds to what the user had (an earlier run's WRITE would stay beside a READ granted now)
                f"REVOKE ALL PRIVILEGES ON {_quote_ident(database)} FROM {_quote_ident(name)}",
                f"GRANT {privilege} ON {_quote_ident(database)} TO {_quote_ident(name)}",
            ):
                status, error = self._statement(q, admin)
                if status != 200 or error:
                    what = q.split(" =")[0].split(" TO")[0].split(" FROM")[0]
                    raise ServiceError(f"influxd {self.url}: {what} failed ({status}: {error})")


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
