"""The write-only path to InfluxDB 1.x that ``lifeline up`` puts in front of its influxd (nginx, a child process).

Why: a 1.x account with WRITE on a database may also run ``DELETE`` and ``DROP SERIES`` on it through ``/query``
(measured on 1.6.7, ``tests/integration/test_storage_privilege.py``), and 1.x has no narrower privilege. So no
writing service holds an InfluxDB account that writes. The gateway holds the writer's account and accepts:

- ``POST /write`` from its own clients (HTTP basic authentication against a file of salted hashes, one account a
  service: ``bridge``, ``rules``), forwarded to influxd's ``/write`` with the writer's credentials added here, the
  database fixed and only ``rp`` and ``precision`` taken from the request;
- ``GET``/``HEAD /ping``;
- ``/query``, passed on as it comes (each reader's own InfluxDB account, READ at most, which 1.x does not let delete),
  when influxd has no address of its own reachable from outside its network namespace (``Influxd.private_network``);
- nothing else (404): no ``/debug/vars``, ``/debug/pprof``, ``/debug/requests``.

Its clients' passwords are random 32-byte tokens: a salted SHA-1 (nginx's ``{SSHA}``, RFC 2307) is as strong as the
token, and costs nothing per request, where a slow hash would be paid on every batch. The config (it holds the
writer's credentials) and the password file are 0600, and nginx runs as one foreground process of this user
(``master_process off``), so it reads them without any other user.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from pathlib import Path

from infra.secret import write_secret_file
from lifeline.runners import ChildServer, _http_status, find_binary

__all__ = ["WriteGateway", "ssha"]

_CONF = """\
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/gateway-error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/json;
    server_tokens off;
    # influxd 1.x refuses bodies over 25,000,000 bytes ([http] max-body-size); a bridge batch (5,000 lines) is well
    # under 4 MiB and stays in memory
    client_max_body_size 25m;
    client_body_buffer_size 4m;

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
        proxy_set_header Connection "";

        location = /write {{
            limit_except POST {{
                deny all;
            }}
            auth_basic "lifeline write gateway";
            auth_basic_user_file {d}/clients.htpasswd;
            proxy_set_header Authorization "Basic {writer}";
            proxy_pass http://influxd/write?db={database}&rp=$arg_rp&precision=$arg_precision;
        }}

        location = /ping {{
            limit_except GET {{
                deny all;
            }}
            proxy_pass http://influxd;
        }}
{query}
        location / {{
            return 404 '{{"error":"not served here"}}';
        }}
    }}
}}
"""

_QUERY = """
        location = /query {
            limit_except GET POST {
                deny all;
            }
            proxy_pass http://influxd;
        }
"""


def ssha(password: str, salt: bytes | None = None) -> str:
    """``{SSHA}`` of RFC 2307 (base64 of SHA-1(password + salt) + salt), as nginx's ``auth_basic_user_file`` reads."""
    salt = salt if salt is not None else secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=True).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


class WriteGateway(ChildServer):
    """nginx on loopback in front of one influxd, accepting writes only (see the module docstring).

    ``upstream`` is influxd's Unix socket (a ``Path``: its ``/query`` is then served too) or its ``http://host:port``
    (writes and ``/ping`` only); ``writer`` is the InfluxDB account with WRITE; ``clients`` maps each gateway account
    to its password.
    """

    name = "write gateway"
    umask = 0o077

    def __init__(
        self,
        data_dir: Path,
        upstream: Path | str,
        writer: tuple[str, str],
        clients: Mapping[str, str],
        *,
        database: str = "lifeline",
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(data_dir, port, host, "gateway-error.log", "gateway.conf")
        if isinstance(upstream, Path):
            self.upstream = f"unix:{upstream.resolve()}"
            self.serves_queries = True
        else:
            if not upstream.startswith("http://"):
                raise ValueError(f"upstream must be a Unix socket path or http://host:port, got {upstream!r}")
            self.upstream = upstream.removeprefix("http://").rstrip("/")
            self.serves_queries = False
        if not database.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"database {database!r}: letters, digits, '-' and '_' only")
        for name in clients:
            if not name or ":" in name or "\n" in name:
                raise ValueError(f"gateway account {name!r}: no ':' or newline, not empty")
        self.writer = writer
        self.clients = dict(clients)
        self.database = database

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_conf(self) -> None:
        self.data_dir.chmod(0o700)
        (self.data_dir / "tmp").mkdir(mode=0o700, exist_ok=True)
        write_secret_file(
            self.data_dir / "clients.htpasswd", "".join(f"{n}:{ssha(p)}\n" for n, p in sorted(self.clients.items()))
        )
        writer = base64.b64encode(f"{self.writer[0]}:{self.writer[1]}".encode()).decode()
        text = _CONF.format(
            d=self.data_dir.resolve(),
            host=self.host,
            port=self.port,
            upstream=self.upstream,
            writer=writer,
            database=self.database,
            query=_QUERY if self.serves_queries else "",
        )
        write_secret_file(self.conf_path, text)

    def _argv(self) -> list[str]:
        return [
            find_binary("nginx"),
            "-p",
            str(self.data_dir.resolve()),
            "-c",
            str(self.conf_path.resolve()),
            "-e",
            str(self.log_path.resolve()),
        ]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/ping", timeout_s=0.5) == 204
