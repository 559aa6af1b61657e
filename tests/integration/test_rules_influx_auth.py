"""The rules service reads window data from an InfluxDB with authentication on: its config file's ``influx``
section (the shared ``storage.InfluxConnection``) carries the account to every query, and an account
InfluxDB does not know gets nothing (counted as a failed query, no alert)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lifeline.rules_cli import _Windows, load_rules_service_config
from rules import PACKS, Transition, load_rules
from testing import Influxd

pytestmark = pytest.mark.integration

MINUTE = 60_000
HOUR = 60 * MINUTE
H = int(datetime.fromisoformat("2026-03-02T10:00:00+08:00").timestamp() * 1000)
SO2 = {r.id: r for r in load_rules([PACKS])}["emissions.so2.hourly"]  # > 35 mg/m³
ADMIN = ("admin", "adm.in-Secret-1")
RULES_USER = ("lifeline-rules", "rules.Secret-2")


class Manager:
    def __init__(self) -> None:
        self.got: list[Transition] = []

    async def on_transitions(self, transitions: list[Transition]) -> None:
        self.got.extend(transitions)


class NoState:
    def get_state(self, name: str) -> dict[str, Any] | None:
        return None

    def put_state(self, name: str, data: dict[str, Any]) -> None:
        """Nothing is kept: each run starts from no state."""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with Influxd(tmp_path_factory.mktemp("influx"), auth_enabled=True) as server:
        server.set_up_users("lifeline", {RULES_USER[0]: (RULES_USER[1], "ALL")}, ADMIN)
        lines = [
            f"flue_gas,site=plant1,device=cems1,profile=flue_gas_cems,domain=environment so2={v} {H + i * 10 * MINUTE}"
            for i, v in enumerate([40, 42, 44, 40, 42, 44])
        ]
        resp = httpx.post(
            f"{server.url}/write",
            params={"db": "lifeline", "precision": "ms"},
            auth=ADMIN,
            content="\n".join(lines).encode(),
            timeout=10,
        )
        assert resp.status_code == 204, resp.text
        yield server


def run_windows(tmp_path: Path, influx: dict[str, object]) -> tuple[list[Transition], _Windows]:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"influx": influx}), encoding="utf-8")
    config = load_rules_service_config(path)
    manager = Manager()
    windows = _Windows(config, [SO2], manager, NoState())  # type: ignore[arg-type]

    async def main() -> None:
        try:
            await asyncio.wait_for(windows.scheduled.run_due(H + HOUR + 120_000), 30)
        finally:
            await windows.query.aclose()
            await windows.writer.close()

    asyncio.run(main())
    return manager.got, windows


def test_window_rule_reads_with_the_configured_account(secured: Influxd, tmp_path: Path) -> None:
    got, windows = run_windows(
        tmp_path, {"url": secured.url, "database": "lifeline", "username": RULES_USER[0], "password": RULES_USER[1]}
    )
    (raised,) = [t for t in got if t.rule == SO2.id]
    assert (raised.device, raised.severity, raised.point) == ("cems1", "warning", "so2")
    assert raised.value == pytest.approx(42.0)
    assert windows.scheduled.counters.query_failures == 0


@pytest.mark.parametrize("account", [{}, {"username": RULES_USER[0], "password": "wrong"}])
def test_without_a_valid_account_nothing_is_read(secured: Influxd, tmp_path: Path, account: dict[str, str]) -> None:
    got, windows = run_windows(tmp_path, {"url": secured.url, "database": "lifeline", **account})
    assert [t for t in got if t.rule == SO2.id] == []
    assert windows.scheduled.counters.query_failures >= 1
