"""``lifeline api`` as a process: the first admin's one-time password goes to a 0600 file or to a terminal, never
to the log; without either it makes no admin; every file it writes is 0600; uvicorn's own X-Forwarded-For handling
is off. And ``lifeline up``'s side: it reads the file, prints the password and deletes the file; no file once the API
listens means an admin from an earlier run (nothing is read from the log)."""

from __future__ import annotations

import os
import pty
import select
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from lifeline.up import _admin_password
from testing import free_port, wait_for_port

NEW_PASSWORD = "first-admin-own-phrase"


def _broker() -> dict[str, object]:
    """The broker section (nothing listens there: the API's HTTP side does not need it)."""
    return {"host": "127.0.0.1", "port": free_port(), "reconnect_initial_s": 0.1, "reconnect_max_s": 0.5}


class ApiProcess:
    def __init__(self, tmp_path: Path, *extra: str, stderr: int | None = None) -> None:
        self.port = free_port()
        self.data = tmp_path / "data"
        config = {
            "store": {"url": f"sqlite:///{self.data / 'api.sqlite'}"},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 64},
            "broker": _broker(),
            "influx": {"url": f"http://127.0.0.1:{free_port()}", "timeout_s": 2},
            "client_id": f"api-bootstrap-{id(self)}",
        }
        self.config = tmp_path / "api.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = tmp_path / "api.log"
        env = {k: v for k, v in os.environ.items() if k != "LIFELINE_ADMIN_PASSWORD"}
        argv = [sys.executable, "-m", "lifeline", "api", "--config", str(self.config), "--port", str(self.port), *extra]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=out if stderr is None else stderr, stdin=subprocess.DEVNULL, env=env
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        assert wait_for_port("127.0.0.1", self.port, 30, self.proc), self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def stop_later() -> Iterator[list[ApiProcess]]:
    started: list[ApiProcess] = []
    yield started
    for api in started:
        api.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_one_time_password_goes_to_a_private_file_not_the_log(tmp_path: Path, stop_later: list[ApiProcess]) -> None:
    password_file = tmp_path / "secret" / "admin-password"
    api = ApiProcess(tmp_path, "--bootstrap-password-file", str(password_file))
    stop_later.append(api)
    api.wait_ready()
    assert _mode(password_file) == 0o600
    assert _mode(password_file.parent) == 0o700
    password = password_file.read_text().strip()
    assert len(password) >= 20
    with httpx.Client(base_url=api.url, timeout=10) as client:
        r = client.post(
            "/api/auth/login",
            json={"username": "admin", "password": password},
            headers={"X-Forwarded-For": "192.0.2.55"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["user"]["must_change_password"] is True
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        assert (
            client.post(
                "/api/auth/password", headers=h, json={"old_password": password, "new_password": NEW_PASSWORD}
            ).status_code
            == 204
        )
        r = client.post("/api/auth/login", json={"username": "admin", "password": NEW_PASSWORD})
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        audit = client.get("/api/audit", headers=h, params={"action": "auth.login"}).json()
        # X-Forwarded-For from loopback is not believed (uvicorn would by default): the peer is the client
        assert {row["source"] for row in audit} == {"127.0.0.1"}
    api.stop()
    log = api.log.read_text()
    assert password not in log
    assert str(password_file) in log
    db = api.data / "api.sqlite"
    for path in (db, db.with_name("api.sqlite-wal"), db.with_name("api.sqlite-shm")):
        if path.exists():
            assert _mode(path) == 0o600, path
    assert _mode(db) == 0o600


def test_without_a_file_or_a_terminal_no_admin_is_made(tmp_path: Path, stop_later: list[ApiProcess]) -> None:
    api = ApiProcess(tmp_path)
    stop_later.append(api)
    assert api.proc.wait(30) == 1
    log = api.log.read_text()
    assert "could be shown nowhere" in log
    assert "--bootstrap-password-file" in log
    assert "one-time password:" not in log


def test_on_a_terminal_the_password_is_printed_there_only(tmp_path: Path, stop_later: list[ApiProcess]) -> None:
    master, slave = pty.openpty()
    try:
        api = ApiProcess(tmp_path, stderr=slave)
        stop_later.append(api)
        seen = b""
        deadline = time.monotonic() + 30
        while b"one-time password:" not in seen and time.monotonic() < deadline and api.proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        line = next(ln for ln in seen.decode().splitlines() if "one-time password:" in ln)
        password = line.rsplit(":", 1)[1].strip()
        assert len(password) >= 20
        api.wait_ready()
        api.stop()
        assert password not in api.log.read_text()
    finally:
        os.close(master)
        os.close(slave)


def test_lifeline_up_reads_prints_and_deletes_the_file(tmp_path: Path) -> None:
    password_file = tmp_path / "admin-password"
    password_file.write_text("s3cret-one-time\n")
    port = free_port()
    assert _admin_password(password_file, port, timeout_s=1) == (
        "user 'admin', one-time password s3cret-one-time (change it at login)"
    )
    assert not password_file.exists()
    assert "does not listen" in _admin_password(password_file, port, timeout_s=0.3)
    with socket.create_server(("127.0.0.1", port)):  # the API listens and wrote no file: an admin from before
        assert "exists from an earlier run" in _admin_password(password_file, port, timeout_s=1)
