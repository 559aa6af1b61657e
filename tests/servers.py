"""Servers only the tests start: PostgreSQL (the alert store on several instances) and nginx speaking InfluxDB 2.x
in front of a 1.x server (the 2.x write transport). Child processes on loopback, like the harness's Mosquitto and
Influxd (``testing``), built on the same ``ChildServer``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import ClassVar

from lifeline import runners
from lifeline.write_gateway import WriteGateway
from testing import ChildServer, ServiceError, find_binary, wait_for_port


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program (Debian keeps them in /usr/lib/postgresql/<version>/bin, off the PATH)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    for folder in versions:
        if (folder / name).exists():
            return str(folder / name)
    raise ServiceError(f"{name} not found: install Debian's postgresql package (scripts/setup does)")


class Postgres(ChildServer):
    """A PostgreSQL server on loopback for tests and local runs, its cluster made by ``initdb`` (trust login for the
    user ``lifeline``), durability off (``fsync``) because nothing here outlives the run.

    PostgreSQL refuses to run as root: as root, the cluster lives in a folder of its own under the temporary folder
    (the user ``postgres`` must reach it; a test's folder under root's 0700 one it cannot) and the server runs as
    ``postgres``. ``data_dir`` holds the log.
    """

    name = "postgres"
    user = "lifeline"

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(data_dir, port, host, "postgres.log", "postgresql.conf")
        self.ports_chosen_here = port is None
        self.cluster: Path | None = None
        self._as_root = os.geteuid() == 0

    def _user(self) -> str | None:
        return "postgres" if self._as_root else None

    def _write_conf(self) -> None:
        if self.cluster is not None:
            return  # a restart keeps its cluster
        if self._as_root:
            self.cluster = Path(tempfile.mkdtemp(prefix="lifeline-pg-"))
            shutil.chown(self.cluster, "postgres", "postgres")
        else:
            self.cluster = self.data_dir / "cluster"
        subprocess.run(
            [
                postgres_bin("initdb"),
                "-D",
                str(self.cluster),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd="/",
            user=self._user(),
            group=self._user(),
            extra_groups=[] if self._as_root else None,
        )

    def _argv(self) -> list[str]:
        assert self.cluster is not None
        return [
            postgres_bin("postgres"),
            "-D",
            str(self.cluster),
            "-p",
            str(self.port),
            "-h",
            self.host,
            "-k",
            str(self.cluster),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]

    def _ready(self) -> bool:
        if not wait_for_port(self.host, self.port, 0.2, self.proc):
            return False
        done = subprocess.run([postgres_bin("pg_isready"), "-q", "-h", self.host, "-p", str(self.port)], check=False)
        return done.returncode == 0

    def remove(self) -> None:
        """Stop and delete the cluster."""
        self.stop()
        if self.cluster is not None:
            shutil.rmtree(self.cluster, ignore_errors=True)
            self.cluster = None

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (letters, digits, underscores); return its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and underscores only")
        psql = [postgres_bin("psql"), "-q", "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", "postgres"]
        subprocess.run([*psql, "-c", f'CREATE DATABASE "{name}"'], check=True, stdout=subprocess.DEVNULL)
        return self.url(name)


_HEALTH_PASS = '{"name":"influxdb","message":"ready for queries and writes","status":"pass","checks":[]}\n'
_HEALTH_FAIL = '{"name":"influxdb","message":"upstream influxd is not answering","status":"fail","checks":[]}'

# The 2.x → 1.x mapping of InfluxDB 1.8's compatibility layer, done with nginx maps (no njs/perl needed):
# bucket "db/rp" (the client URL-encodes "/" as %2F) → db and rp; precision ns|us|ms|s → n|u|ms|s (2.x default: ns);
# "Authorization: Token user:password" → 1.x u= and p= query parameters. Stock nginx cannot URL-encode, so only
# credentials made of URL-safe characters are converted; any other Authorization header is passed on unchanged
# (1.x ignores it while auth is disabled).
_NGINX_CONF = """\
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log {d}/nginx-access.log combined buffer=64k flush=1s;
    client_body_temp_path {d}/nginx-tmp/body;
    proxy_temp_path {d}/nginx-tmp/proxy;
    fastcgi_temp_path {d}/nginx-tmp/fastcgi;
    uwsgi_temp_path {d}/nginx-tmp/uwsgi;
    scgi_temp_path {d}/nginx-tmp/scgi;
    default_type application/json;
    server_tokens off;
    # influxd 1.6.7 refuses bodies over 25,000,000 bytes ([http] max-body-size); batches up to 1 MiB stay in memory.
    client_max_body_size 25m;
    client_body_buffer_size 1m;

    map $arg_bucket $influx_db {{
        "~^(.*?)(?:/|%2[Ff])(.*)$" $1;
        default $arg_bucket;
    }}
    map $arg_bucket $influx_rp {{
        "~^(.*?)(?:/|%2[Ff])(.*)$" $2;
        default "";
    }}
    map $arg_precision $influx_precision {{
        ""  n;
        ns  n;
        us  u;
        default $arg_precision;
    }}
    map $http_authorization $influx_auth_args {{
        "~^Token ([A-Za-z0-9._~-]+):([A-Za-z0-9._~-]+)$" "&u=$1&p=$2";
        default "";
    }}
    map $http_authorization $influx_auth_header {{
        "~^Token [A-Za-z0-9._~-]+:[A-Za-z0-9._~-]+$" "";
        default $http_authorization;
    }}

    upstream influxd {{
        server {upstream};
        keepalive 16;
    }}

    server {{
        listen {host}:{port};

        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_connect_timeout 5s;
        proxy_read_timeout 300s;

        location / {{
            proxy_set_header Connection "";
            proxy_pass http://influxd;
        }}

        location = /api/v2/write {{
            if ($request_method != POST) {{
                return 405;
            }}
            proxy_set_header Connection "";
            proxy_set_header Authorization $influx_auth_header;
            proxy_pass http://influxd/write?db=$influx_db&rp=$influx_rp&precision=$influx_precision$influx_auth_args;
        }}

        # 2.x clients ask /health; answered here (200 pass) while the upstream answers /ping, else 503 fail.
        location = /health {{
            auth_request /_influxd_ping;
            alias {d}/health.json;
            error_page 500 502 503 504 = @health_fail;
        }}
        location = /_influxd_ping {{
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_connect_timeout 2s;
            proxy_read_timeout 2s;
            proxy_pass http://influxd/ping;
        }}
        location @health_fail {{
            return 503 '{health_fail}';
        }}
    }}
}}
"""


class InfluxCompatProxy(ChildServer):
    """nginx on loopback in front of an InfluxDB 1.x server, speaking enough of the 2.x API for 2.x clients.

    ``POST /api/v2/write?bucket=db/rp&precision=ms`` becomes ``POST /write?db=db&rp=rp&precision=ms`` (as InfluxDB
    1.8's compatibility layer does), ``/health`` is answered by nginx, and everything else (``/ping``, ``/query``,
    ``/write``) is passed through. nginx runs as one foreground process (``master_process off``): no worker user to
    switch to, so it reads and writes only ``data_dir``, and its pid is the child's pid.
    """

    name = "nginx"

    def __init__(self, data_dir: Path, upstream_url: str, port: int | None = None, host: str = "127.0.0.1") -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream_url must be http://host:port, got {upstream_url!r}")
        self.upstream = f"{parsed.hostname}:{parsed.port}"
        super().__init__(data_dir, port, host, "nginx-error.log", "nginx.conf")
        self.ports_chosen_here = port is None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_conf(self) -> None:
        (self.data_dir / "nginx-tmp").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "health.json").write_text(_HEALTH_PASS)
        self.conf_path.write_text(
            _NGINX_CONF.format(
                d=self.data_dir, host=self.host, port=self.port, upstream=self.upstream, health_fail=_HEALTH_FAIL
            )
        )

    def _argv(self) -> list[str]:
        return [find_binary("nginx"), "-p", str(self.data_dir), "-c", str(self.conf_path), "-e", str(self.log_path)]


class LockedInflux:
    """InfluxDB as ``lifeline up`` runs it: influxd with authentication in a network namespace of its own (HTTP on a
    0600 Unix socket only), behind the write gateway, the only way in. Accounts: ``admin``; ``writer`` (WRITE, held
    by the gateway alone); ``reader`` (READ, what a writing service reads with); the gateway's own ``bridge`` and
    ``rules``. ``url`` is the gateway's (``/write`` for its accounts, ``/query`` for InfluxDB's)."""

    ADMIN = ("lifeline-admin", "admin-Secret-1")
    WRITER = ("lifeline-writer", "writer-Secret-1")
    READER = ("lifeline-reader", "reader-Secret-1")
    CLIENTS: ClassVar[dict[str, str]] = {"bridge": "bridge-Gateway-1", "rules": "rules-Gateway-1"}

    def __init__(self, data_dir: Path, database: str = "lifeline") -> None:
        self.database = database
        self.server = runners.Influxd(data_dir / "influxdb", auth_enabled=True, private_network=True)
        self.gateway = WriteGateway(data_dir / "gateway", self.server.socket_path, self.WRITER, self.CLIENTS)

    @property
    def url(self) -> str:
        return self.gateway.url

    def start(self) -> None:
        self.server.start()
        try:
            users = {self.WRITER[0]: (self.WRITER[1], "WRITE"), self.READER[0]: (self.READER[1], "READ")}
            self.server.set_up_users(self.database, users, self.ADMIN)
            self.gateway.start()
        except BaseException:
            self.server.stop()
            raise

    def stop(self) -> None:
        self.gateway.stop()
        self.server.stop()
