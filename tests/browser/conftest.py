"""A real browser against a real stack: ``lifeline up --scenario mini`` on free loopback ports (it starts Mosquitto
with accounts and TLS, InfluxDB, the bridge, rules, the API, the edge agents and the simulated district), driven by
Playwright for Python through Debian's ``chromium`` (``executable_path``: no browser is ever downloaded).

One stack serves the whole module (``scope="module"``): starting it takes ~6 s, each test then a few seconds."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import playwright.sync_api as playwright_sync  # in the dev extra; scripts/setup installs it
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
UP_TIMEOUT_S = 180.0
DISTRICT = Path(__file__).parent / "district.yaml"  # mini.yaml with a fast gate
NEW_PASSWORD = "Tide-gauge 7 over the Wusong"  # passes the API's password policy (length, not a common one)


@dataclass
class Stack:
    base: str  # the API, e.g. https://127.0.0.1:PORT/ (its certificate from the stack's CA, data_dir/tls)
    admin_password: str  # the one-time password (the first login must change it)
    proc: subprocess.Popen[str]
    data_dir: Path
    api_pid: int
    mqtt_port: int
    password_changed: bool = False  # the forced first change done (by the first test, or by _login on its own)

    @property
    def console(self) -> str:
        return self.base + "console/"

    def api_pid_now(self) -> int:
        """The API child's pid (lifeline up restarts it after a crash, under a new pid)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and b"api" in cmd and b"--bootstrap-password-file" in cmd:
                return int(entry.name)
        raise LookupError("the API child of lifeline up is not running")


def _wait_http(url: str, timeout_s: float, ca_file: Path) -> None:
    deadline = time.monotonic() + timeout_s
    context = ssl.create_default_context(cafile=str(ca_file))
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (scripts/setup installs it)"
    data_dir = tmp_path_factory.mktemp("up")
    argv = [
        sys.executable,
        "-m",
        "lifeline",
        "up",
        "--scenario",
        str(DISTRICT),
        "--data-dir",
        str(data_dir),
        "--mqtt-port",
        "0",
        "--influx-port",
        "0",
        "--api-port",
        "0",
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    base = password = ""
    api_pid = mqtt_port = 0
    deadline = time.monotonic() + UP_TIMEOUT_S
    try:
        while time.monotonic() < deadline and not base:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("lifeline up ended early:\n" + "".join(lines))
            lines.append(line)
            if m := re.match(r"\s+broker\s+mosquitto on 127\.0\.0\.1:(\d+) ", line):
                mqtt_port = int(m.group(1))
            if m := re.match(r"\s+api\s+pid (\d+),", line):
                api_pid = int(m.group(1))
            if m := re.match(r"api: (https://127\.0\.0\.1:\d+/)docs .*one-time password (\S+) ", line):
                base, password = m.group(1), m.group(2)
        if not base:
            raise RuntimeError("lifeline up printed no API address and one-time password:\n" + "".join(lines))
        _wait_http(base + "console/", 20, data_dir / "tls" / "ca.pem")
        yield Stack(base, password, proc, data_dir, api_pid, mqtt_port)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _spki_sha256(cert_file: Path) -> str:
    """The base64 SHA-256 of a certificate's public key (SubjectPublicKeyInfo), as Chromium's SPKI lists take it."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[object]:
    with playwright_sync.sync_playwright() as pw:
        # the API's certificate is of the stack's own CA, which Chromium does not know: it is told to accept this
        # one public key (not every certificate error: ignore_https_errors would)
        pinned = f"--ignore-certificate-errors-spki-list={_spki_sha256(stack.data_dir / 'tls' / 'api-server.pem')}"
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[pinned])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where a test saves its screenshots (pytest's tmp folder; LIFELINE_SCREENSHOTS overrides it)."""
    where = Path(os.environ.get("LIFELINE_SCREENSHOTS", tmp_path))
    where.mkdir(parents=True, exist_ok=True)
    return where
