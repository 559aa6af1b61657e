"""Helpers for the API tests (no tests here): a config on temporary stores, a clock tests move, the API served by
a real uvicorn on a free loopback port, users of every role, telemetry publishing and an alert store filler."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from alerts.lifecycle import Alert, AlertKey, Severity, raise_
from alerts.store import AlertMeta, AlertStore
from api import ApiConfig, ApiService, create_app
from api.auth import Role
from lifeline.broker_auth import api_account
from telemetry import DeviceStatus, Sample, Telemetry, encode, topics
from testing import Mosquitto, free_port
from tests.helpers import account_for

PASSWORD = "correct-horse-battery"
AREAS = {"north": ["north-sluices", "north-env"], "south": ["south-sluices"]}
USERS = {  # name: (role, areas)
    "viewer": (Role.VIEWER, []),
    "op-north": (Role.GATE_OPERATOR, ["north"]),
    "op-south": (Role.GATE_OPERATOR, ["south"]),
    "env-north": (Role.ENVIRONMENT_OFFICER, ["north"]),
    "safety-north": (Role.SAFETY_INSPECTOR, ["north"]),
    "boss": (Role.ADMIN, []),
}
NOW_MS = 1_795_600_800_000


class Clock:
    """Epoch ms that a test sets and moves; starts at a fixed time, or follows the wall clock with ``real``."""

    def __init__(self, start_ms: int = NOW_MS, real: bool = False) -> None:
        self.offset = start_ms - int(time.time() * 1000) if real else 0
        self.fixed = None if real else start_ms
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            return self.fixed if self.fixed is not None else int(time.time() * 1000) + self.offset

    def advance(self, ms: int) -> None:
        with self.lock:
            if self.fixed is not None:
                self.fixed += ms
            else:
                self.offset += ms


def make_config(
    tmp_path: Path,
    *,
    mqtt: Mosquitto | None = None,
    influx_url: str | None = None,
    database: str = "lifeline",
    **extra: Any,
) -> ApiConfig:
    data: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp_path / 'api.sqlite'}"},
        "areas": AREAS,
        "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 64},
        # Nothing listens on a fresh free port: a test without a broker or InfluxDB sees them unreachable.
        "broker": (
            account_for(mqtt, api_account()).model_dump(mode="json")
            if mqtt
            else {"host": "127.0.0.1", "port": free_port()}
        )
        | {"reconnect_initial_s": 0.1, "reconnect_max_s": 0.5},
        "influx": {"url": influx_url or f"http://127.0.0.1:{free_port()}", "database": database, "timeout_s": 5},
        "client_id": f"api-test-{id(tmp_path)}",
    }
    data.update(extra)
    return ApiConfig.model_validate(data)


def add_users(service: ApiService) -> None:
    for name, (role, areas) in USERS.items():
        service.users.create(name, PASSWORD, role, areas)


def login(client: httpx.Client, username: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


class RunningApi:
    """The app served by uvicorn on a free loopback port, in a thread of its own."""

    def __init__(self, service: ApiService, *, connect: bool = True) -> None:
        import uvicorn

        self.service = service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(service, connect=connect)
        # proxy_headers off, as `lifeline api` runs it: the app alone decides whose X-Forwarded-For to believe
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                lifespan="on",
                timeout_graceful_shutdown=2,
                proxy_headers=False,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        assert self.server.started, "the API did not start"
        self.client = httpx.Client(base_url=self.url, timeout=15)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the API did not stop"


def gate_telemetry(site: str, device: str, ts: int, seq: int = 1, **values: Any) -> tuple[str, bytes]:
    """A gate's telemetry with every point the interlocks read, all good unless ``values`` says otherwise."""
    base: dict[str, Any] = {
        "gate_opening": 1.0,
        "level_up": 3.0,
        "level_down": 2.0,
        "motor_current": 0.0,
        "fault_code": 0.0,
        "remote_mode": True,
        "estop": False,
        "overload": False,
        "power_ok": True,
        "moving_open": False,
        "moving_close": False,
        "limit_open": False,
        "limit_closed": False,
    }
    base.update(values)
    msg = Telemetry(
        site=site,
        device=device,
        profile="sluice_gate_plc",
        measurement="sluice_gate",
        seq=seq,
        samples=[Sample(ts=ts, values=base)],
    )
    return topics.telemetry(site, device), encode(msg)


def status(site: str, device: str, profile: str, ts: int, online: bool = True) -> tuple[str, bytes]:
    msg = DeviceStatus(site=site, device=device, profile=profile, online=online, ts=ts)
    return topics.status(site, device), encode(msg)


def fill_alerts(store: AlertStore, now: int = NOW_MS) -> dict[str, int]:
    """One active unacknowledged alert per site of AREAS (and one outside any area); their ids by site."""
    ids: dict[str, int] = {}
    sites = [*(s for v in AREAS.values() for s in v), "nowhere"]
    for i, site in enumerate(sites):
        alert = Alert(AlertKey("sluice.level_high", site, "gate-01", "level_up"))
        raise_(alert, Severity.WARNING, 5.5 + i, now - 60_000)
        area = next((a for a, s in AREAS.items() if site in s), None)
        with store.begin() as tx:
            stored = tx.save(alert, AlertMeta("Level high", "water_ops", area, "sluice_gate_plc"), None)
        ids[site] = stored.id
    return ids


def run(coro: Any) -> Any:
    return asyncio.run(coro)
