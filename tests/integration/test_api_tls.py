"""The API over HTTPS (issue 24): `lifeline api`'s server (api.server.uvicorn_config) with a certificate of the
deployment's CA (lifeline.tls) answers only TLS 1.2 or later, is verified with the CA file, sends
Strict-Transport-Security on HTTPS answers and never over plain HTTP."""

from __future__ import annotations

import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from api import ApiService, create_app, load_config
from api.config import ListenConfig, ListenTls
from api.server import ApiServer, uvicorn_config
from lifeline.tls import ensure_ca, issue
from testing import free_port
from tests.integration.test_api_support import make_config

HSTS = "max-age=31536000"


class Served:
    def __init__(self, tmp_path: Path, tls: ListenTls | None, **extra: Any) -> None:  # make_config's keywords
        self.service = ApiService(make_config(tmp_path, **extra))
        listen = ListenConfig(host="127.0.0.1", port=free_port(), tls=tls)
        self.server = ApiServer(uvicorn_config(create_app(self.service, connect=False), listen), self.service)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        assert self.server.started, "the API did not start"
        self.port = listen.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Path, ListenTls]:
    folder = tmp_path / "tls"
    pair = ensure_ca(folder)
    files = issue(folder, pair, "api-server")
    return pair[0], ListenTls(cert_file=files.cert_file, key_file=files.key_file)


@pytest.fixture
def https(tmp_path: Path, ca: tuple[Path, ListenTls]) -> Iterator[Served]:
    served = Served(tmp_path, ca[1])
    yield served
    served.stop()


def test_https_with_the_deployments_ca_and_hsts(https: Served, ca: tuple[Path, ListenTls]) -> None:
    context = ssl.create_default_context(cafile=str(ca[0]))
    for host in ("127.0.0.1", "localhost"):  # both names are in the certificate
        r = httpx.get(f"https://{host}:{https.port}/api/auth/me", verify=context, timeout=10)
        assert r.status_code == 401  # the API answered, over TLS
        assert r.headers["strict-transport-security"] == HSTS
    assert (
        httpx.get(f"https://127.0.0.1:{https.port}/console/", verify=context, timeout=10).headers[
            "strict-transport-security"
        ]
        == HSTS
    )  # pages too, whatever headers they set themselves


def test_a_client_without_the_ca_or_without_tls_gets_nothing(https: Served) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{https.port}/api/auth/me", timeout=10)  # the system's CAs do not know it
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the HTTPS port: no answer
        httpx.get(f"http://127.0.0.1:{https.port}/api/auth/me", timeout=10)


def _client(ca: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # a client that would speak TLS 1.1: only the server may say no
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1_1 is, on purpose
        context.minimum_version = context.maximum_version = version
    return context


def test_tls_1_1_is_refused_by_the_server(https: Served, ca: tuple[Path, ListenTls]) -> None:
    assert isinstance(https.server.config.ssl, ssl.SSLContext)
    assert https.server.config.ssl.minimum_version is ssl.TLSVersion.TLSv1_2
    url = f"https://127.0.0.1:{https.port}/api/auth/me"
    assert httpx.get(url, verify=_client(ca[0], ssl.TLSVersion.TLSv1_2), timeout=10).status_code == 401
    with pytest.raises(httpx.ConnectError):  # the server closes the handshake (asyncio's TLS sends no alert)
        httpx.get(url, verify=_client(ca[0], ssl.TLSVersion.TLSv1_1), timeout=10)


def test_plain_http_sends_no_hsts(tmp_path: Path) -> None:
    served = Served(tmp_path, None)
    try:
        r = httpx.get(f"http://127.0.0.1:{served.port}/api/auth/me", timeout=10)
        assert r.status_code == 401
        assert "strict-transport-security" not in r.headers
    finally:
        served.stop()


@pytest.mark.parametrize(
    ("trusted", "forwarded", "hsts"),
    [
        pytest.param(["127.0.0.1/32"], "https", HSTS, id="trusted-proxy-terminates-tls"),
        pytest.param([], "https", None, id="untrusted-forwarded-proto-ignored"),
        pytest.param(["127.0.0.1/32"], "http", None, id="trusted-proxy-plain-http"),
    ],
)
def test_hsts_behind_a_proxy_only_when_a_trusted_one_says_https(
    tmp_path: Path, trusted: list[str], forwarded: str, hsts: str | None
) -> None:
    served = Served(tmp_path, None, http={"trusted_proxies": trusted})
    try:
        headers = {"X-Forwarded-Proto": forwarded, "X-Forwarded-For": "192.0.2.1"}
        r = httpx.get(f"http://127.0.0.1:{served.port}/api/auth/me", headers=headers, timeout=10)
        assert r.headers.get("strict-transport-security") == hsts
    finally:
        served.stop()


def test_hsts_can_be_turned_off(tmp_path: Path) -> None:
    service = ApiService(make_config(tmp_path, http={"hsts_max_age_s": 0}))
    with TestClient(create_app(service, connect=False), base_url="https://testserver") as client:
        assert "strict-transport-security" not in client.get("/api/auth/me").headers


def test_the_config_reads_certificate_paths_relative_to_its_file(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump({"listen": {"tls": {"cert_file": "tls/api.pem", "key_file": "tls/api.key"}}}))
    tls = load_config(path).listen.tls
    assert tls is not None
    assert (tls.cert_file, tls.key_file) == (tmp_path / "tls" / "api.pem", tmp_path / "tls" / "api.key")
