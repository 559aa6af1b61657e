"""Each alert keeps its evidence in the alert store: the rules service on a real Mosquitto records, in the raise's
own transaction, the readings over which the condition held (time and value), and the API's alert detail shows
them, and so does ``lifeline alerts show``. The evidence lives in the alert store, apart from the stored telemetry it
came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts.store import AlertStore
from api import ApiService, create_app
from lifeline.cli import main
from lifeline.rules_cli import RulesServiceConfig
from testing import Mosquitto
from tests.helpers import Publisher, wait_until
from tests.integration.test_api_support import Clock, add_users, make_config
from tests.integration.test_rules_service import (
    RunningRules,
    alerts_of,
    lel_rules,
    now_ms,
    send_series,
    service_config,
)

pytestmark = pytest.mark.integration

# normal, then the condition holds for three samples (the on-delay is 2 s), then it clears
SERIES: list[tuple[float, float]] = [(0, 10.0), (1, 30.0), (2, 31.5), (3, 32.0), (4, 10.0)]


def test_a_raise_keeps_the_readings_that_raised_it_and_the_api_shows_them(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    api_config = make_config(tmp_path)
    url = api_config.store.url
    base = service_config(mosquitto, tmp_path, [lel_rules(tmp_path, on_delay=2)])
    config = RulesServiceConfig(
        broker=base.broker,
        publisher=base.publisher,
        rules=base.rules,
        alerts=base.alerts.model_copy(update={"store_url": url}),
    )
    engine = RunningRules(config).start()
    t0 = now_ms() + 1_000
    try:
        send_series(publisher, "gas-7", t0, SERIES)
        wait_until(lambda: any(a.alert.key.device == "gas-7" for a in alerts_of(url)), 15, "the alert raised")
        wait_until(lambda: not alerts_of(url)[0].alert.active, 15, "the alert cleared")
    finally:
        engine.stop()
    (alert,) = alerts_of(url)
    store = AlertStore(url)
    try:
        (kept,) = store.evidence(alert.id)  # one raise, no escalation: one row (the clear keeps none)
    finally:
        store.close()
    assert kept.ts_ms == t0 + 3000
    assert kept.severity.value == "warning"
    assert kept.readings == [
        {"ts": t0 + 1000, "values": {"lel": 30.0}},
        {"ts": t0 + 2000, "values": {"lel": 31.5}},
        {"ts": t0 + 3000, "values": {"lel": 32.0}},
    ]
    assert kept.window is None

    main(["alerts", "--store", url, "show", str(alert.id)])
    shown = capsys.readouterr().out
    assert "evidence of warning" in shown
    assert "lel=31.5" in shown

    service = ApiService(api_config, clock=Clock())
    add_users(service)
    with TestClient(create_app(service, connect=False)) as client:
        login = {"username": "boss", "password": "correct-horse-battery"}  # an admin sees every area
        token = client.post("/api/auth/login", json=login)
        r = client.get(f"/api/alerts/{alert.id}", headers={"Authorization": f"Bearer {token.json()['token']}"})
    assert r.status_code == 200, r.text
    assert r.json()["evidence"] == [
        {"ts_ms": t0 + 3000, "severity": "warning", "readings": kept.readings, "window": None}
    ]
