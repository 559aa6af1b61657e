"""Alerts reach people: a gas leak in the simulated district through every channel, escalation on a clock the test
moves, chattering and flood summaries. Real Mosquitto, SMTP (aiosmtpd) and HTTP receivers on loopback; DingTalk and
WeCom cannot be reached from here, so FAKE robots on a local receiver stand in for them (tests/notify_servers.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.config import AlertServiceConfig
from alerts.lifecycle import State, acknowledge
from alerts.manager import AlertManager
from alerts.notify import Notifier
from alerts.store import AlertStore
from device_profiles import load_catalogue
from lifeline.broker_auth import rules_publisher_account
from rules import PACKS, Transition, load_rules
from rules.schema import severity_of
from testing import Mosquitto
from tests.helpers import Subscriber, account_for
from tests.integration.test_rules_service import RunningRules, service_config
from tests.notify_servers import FakeDingTalk, FakeWeCom, HttpReceiver, SmtpServer

pytestmark = pytest.mark.integration


@pytest.fixture
def receivers() -> Iterator[dict[str, HttpReceiver]]:
    got = {name: HttpReceiver() for name in ("hook", "ding", "wecom", "duty", "chief")}
    yield got
    for r in got.values():
        r.close()


def channels(receivers: dict[str, HttpReceiver], smtp: SmtpServer) -> dict[str, Any]:
    ding = FakeDingTalk(receivers["ding"], secret="SEC-test")
    wecom = FakeWeCom(receivers["wecom"])
    return {
        "hook": {"type": "webhook", "url": f"{receivers['hook'].url}/lifeline"},
        "mail": {
            "type": "email",
            "host": smtp.host,
            "port": smtp.port,
            "sender": "lifeline@baoshan.example",
            "to": ["safety-duty@baoshan.example"],
        },
        "bus": {"type": "mqtt"},
        "ding": {"type": "dingtalk", "url": ding.url, "secret": "SEC-test"},
        "wecom": {"type": "wecom", "url": wecom.url},
        "duty": {"type": "webhook", "url": f"{receivers['duty'].url}/duty"},
        "chief": {"type": "webhook", "url": f"{receivers['chief'].url}/chief"},
    }


def test_gas_leak_gives_one_alert_and_one_notification_per_channel_within_a_second(
    mosquitto: Mosquitto,
    tmp_path: Path,
    mini: Any,
    start_agent: Any,
    smtp_server: SmtpServer,
    receivers: dict[str, HttpReceiver],
) -> None:
    notify = {
        "channels": channels(receivers, smtp_server),
        "routes": [
            {"audiences": ["safety"], "min_severity": "warning", "channels": ["hook", "mail", "bus", "ding", "wecom"]}
        ],
    }
    cfg = service_config(mosquitto, tmp_path, [PACKS], notify=notify)
    rules = RunningRules(cfg).start()
    bus = Subscriber(mosquitto, "lifeline/v1/alerts/notify/#")
    try:
        start_agent(mini.site_config("mini-safety"))
        time.sleep(2.0)  # normal readings first
        mini.on_loop(lambda: mini.district.sensors.leak("gas-1", peak=60.0, rise_s=0.0))
        arrived: dict[str, float] = {}
        sources: dict[str, Callable[[], int]] = {
            "hook": lambda: len(receivers["hook"].snapshot()),
            "ding": lambda: len(receivers["ding"].snapshot()),
            "wecom": lambda: len(receivers["wecom"].snapshot()),
            "mail": lambda: len(smtp_server.snapshot()),
            "bus": lambda: len(bus.snapshot()),
        }
        deadline = time.monotonic() + 15
        while len(arrived) < len(sources) and time.monotonic() < deadline:
            for name, count in sources.items():
                if name not in arrived and count():
                    arrived[name] = time.time()
            time.sleep(0.01)
        assert sorted(arrived) == sorted(sources), f"channels reached: {sorted(arrived)}"
        time.sleep(2.0)  # the leak goes on: no second notification
        store = AlertStore(cfg.alerts.store_url)
        try:
            leaks = store.list_alerts(rule="gas.lel")
            notes = store.notifications(limit=100)
        finally:
            store.close()
    finally:
        bus.close()
        rules.stop()
    (leak,) = leaks
    key = leak.alert.key
    assert (key.site, key.device, leak.alert.state) == ("mini-safety", "gas-1", State.ACTIVE_UNACK)
    assert leak.alert.severity.name == "CRITICAL"  # 60 %LEL: the second-level alarm at once, no first-level delay
    assert {name: n() for name, n in sources.items()} == dict.fromkeys(sources, 1)
    assert leak.alert.first_ms is not None
    late = {name: round(t - leak.alert.first_ms / 1000, 3) for name, t in arrived.items()}
    assert all(s < 1.0 for s in late.values()), f"seconds from the reading to each channel: {late}"
    sent = [n for n in notes if n.alert_id == leak.id]
    assert sorted(n.channel for n in sent) == ["bus", "ding", "hook", "mail", "wecom"]
    assert all(n.ok and n.kind == "raised" for n in sent)
    mail = smtp_server.snapshot()[0].message
    assert "Combustible gas concentration raised" in str(mail["Subject"])
    assert "gas-1" in str(mail["Subject"])
    body = orjson.loads(bus.snapshot()[0].payload)
    assert (body["kind"], body["severity"], body["device"]) == ("raised", "critical", "gas-1")
    assert body["alert_id"] == leak.id


# --- the alert manager on a controlled clock ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def lel(device: str, severity: str | None, ts_s: float, value: float = 30.0) -> Transition:
    return Transition(
        rule="gas.lel",
        site="plant-1",
        device=device,
        point="lel",
        severity=severity_of(severity),
        previous=None,
        value=value,
        ts=int(ts_s * 1000),
        reason="test",
        profile="gas_detector",
    )


def manager(
    tmp_path: Path,
    receivers: dict[str, HttpReceiver],
    smtp: SmtpServer,
    clock: Clock,
    routes: tuple[str, ...] = ("hook",),
    **config: Any,
) -> tuple[AlertManager, AlertStore]:
    cfg = AlertServiceConfig.model_validate(
        {
            "store_url": f"sqlite:///{tmp_path / 'alerts.db'}",
            "notify": {
                "channels": channels(receivers, smtp),
                "routes": [{"audiences": ["safety"], "channels": routes}],
                "retry": {"attempts": 1},
            },
            **config,
        }
    )
    store = AlertStore(cfg.store_url)
    notifier = Notifier(cfg.notify, clock=clock)
    return AlertManager(cfg, store, load_rules([PACKS]), load_catalogue(), notifier, clock=clock), store


def kinds(receiver: HttpReceiver) -> list[str]:
    """Kinds received, sorted: notifications go out concurrently, so their arrival order is not theirs."""
    return sorted(r.json()["kind"] for r in receiver.snapshot())


def test_escalation_on_time_goes_to_the_next_level_until_acknowledged(
    tmp_path: Path, receivers: dict[str, HttpReceiver], smtp_server: SmtpServer
) -> None:
    clock = Clock()
    policy = {
        "audience": "safety",
        "levels": [{"after_s": 300, "targets": ["duty"]}, {"after_s": 900, "targets": ["chief"]}],
    }
    mgr, store = manager(tmp_path, receivers, smtp_server, clock, escalation=[policy])

    async def scenario() -> None:
        await mgr.on_transitions([lel("gas-7", "warning", clock.now)])
        clock.now += 299
        await mgr.tick()
        await mgr.drain(5)
        assert receivers["duty"].snapshot() == [], "escalated before 300 s"
        clock.now += 2
        await mgr.tick()
        await mgr.drain(5)
        (alert,) = store.list_alerts()
        assert alert.alert.escalation_level == 1
        store.act(alert.id, lambda a: acknowledge(a, "inspector-li", int(clock.now * 1000), "on my way"))
        clock.now += 1000
        await mgr.tick()
        await mgr.drain(5)

    asyncio.run(scenario())
    store.close()
    (duty,) = receivers["duty"].snapshot()
    assert (duty.json()["kind"], duty.json()["level"]) == ("escalation", 1)
    assert receivers["chief"].snapshot() == [], "escalated after it was acknowledged"
    assert kinds(receivers["hook"]) == ["raised"]


def test_chattering_gives_one_summary_and_holds_the_rest(
    tmp_path: Path, receivers: dict[str, HttpReceiver], smtp_server: SmtpServer
) -> None:
    clock = Clock()
    mgr, store = manager(tmp_path, receivers, smtp_server, clock)

    async def scenario() -> None:
        for i in range(10):  # raise, clear, raise, ... 10 toggles within 20 s (limit: more than 5 in 10 minutes)
            await mgr.on_transitions([lel("gas-8", None if i % 2 else "warning", clock.now + i * 2)])
        await mgr.drain(5)

    asyncio.run(scenario())
    (alert,) = store.list_alerts()
    store.close()
    assert kinds(receivers["hook"]) == sorted(["raised", "cleared", "raised", "cleared", "raised", "chattering"])
    assert alert.alert.chattering


def test_flood_gives_one_summary_instead_of_a_storm(
    tmp_path: Path, receivers: dict[str, HttpReceiver], smtp_server: SmtpServer
) -> None:
    clock = Clock()
    mgr, store = manager(tmp_path, receivers, smtp_server, clock)

    async def scenario() -> None:
        for i in range(15):  # 15 detectors alarm within 15 s (limit: 10 new alerts in 10 minutes per audience)
            await mgr.on_transitions([lel(f"gas-{i:02d}", "warning", clock.now + i)])
        await mgr.drain(5)

    asyncio.run(scenario())
    stored = store.count_alerts()
    store.close()
    assert stored == 15, "every alert is stored even when its notification is held"
    got = kinds(receivers["hook"])
    assert got == sorted(["raised"] * 10 + ["flood"])
    (flood,) = [r.json() for r in receivers["hook"].snapshot() if r.json()["kind"] == "flood"]
    assert "flood" in flood["title"].lower()


def test_an_acknowledged_alert_that_clears_returns_to_normal_and_says_so(
    tmp_path: Path, receivers: dict[str, HttpReceiver], smtp_server: SmtpServer
) -> None:
    clock = Clock()
    mgr, store = manager(tmp_path, receivers, smtp_server, clock)

    async def scenario() -> None:
        await mgr.on_transitions([lel("gas-9", "warning", clock.now)])
        (alert,) = store.list_alerts()
        store.act(alert.id, lambda a: acknowledge(a, "inspector-li", int(clock.now * 1000) + 1000))
        await mgr.on_transitions([lel("gas-9", None, clock.now + 60, value=5.0)])
        await mgr.drain(5)

    asyncio.run(scenario())
    (alert,) = store.list_alerts()
    actions = [h.action for h in store.history(alert.id)]
    store.close()
    assert alert.alert.state is State.NORMAL
    assert actions == ["raise", "ack", "clear"]
    (cleared,) = [r.json() for r in receivers["hook"].snapshot() if r.json()["kind"] == "cleared"]
    assert cleared["title"].startswith("[CLEARED]")


def test_alert_changes_are_published_for_live_views(mosquitto: Mosquitto, tmp_path: Path) -> None:
    from infra.mqtt import Publisher

    sub = Subscriber(mosquitto, "lifeline/v1/alerts/events/+")
    account = account_for(mosquitto, rules_publisher_account())
    cfg = AlertServiceConfig(store_url=f"sqlite:///{tmp_path / 'alerts.db'}")
    store = AlertStore(cfg.store_url)

    async def main() -> None:
        pub = Publisher(account, "test-events")  # on the loop, as the rules service runs it
        pub.start()
        try:
            mgr = AlertManager(cfg, store, load_rules([PACKS]), load_catalogue(), None, pub.publish_nowait)
            async with asyncio.timeout(10):
                while not pub.connected:  # noqa: ASYNC110 - the link's flag; bounded
                    await asyncio.sleep(0.02)
            await mgr.on_transitions([lel("gas-5", "critical", time.time(), 55.0)])
        finally:
            await pub.close()

    try:
        asyncio.run(main())
        (event,) = sub.wait_for(lambda m: len(m) >= 1)
    finally:
        store.close()
        sub.close()
    body = orjson.loads(event.payload)
    assert (body["rule"], body["device"], body["state"], body["severity"]) == (
        "gas.lel",
        "gas-5",
        "active_unack",
        "critical",
    )
    assert event.topic == f"lifeline/v1/alerts/events/{body['id']}"


def test_a_notification_decided_before_a_crash_is_delivered_after_the_restart(
    tmp_path: Path, receivers: dict[str, HttpReceiver], smtp_server: SmtpServer
) -> None:
    clock = Clock()
    first, store = manager(tmp_path, receivers, smtp_server, clock)
    # the change is committed with its notification in the outbox, then the process dies before sending it
    assert first._apply_batch([lel("gas-3", "warning", clock.now)], None)
    (pending,) = store.notification_queue()
    assert (pending.channel, pending.status, pending.attempts) == ("hook", "pending", 0)
    assert receivers["hook"].snapshot() == []
    second, store2 = manager(tmp_path, receivers, smtp_server, clock)

    async def restart() -> None:
        assert await second.resume() == 1
        await second.drain(5)

    asyncio.run(restart())
    (got,) = receivers["hook"].snapshot()
    assert (got.json()["id"], got.json()["kind"], got.json()["device"]) == (pending.message_id, "raised", "gas-3")
    assert store2.notification_queue() == []
    (logged,) = store2.notifications()
    assert (logged.message_id, logged.channel, logged.ok) == (pending.message_id, "hook", True)
    asyncio.run(restart_again(second))  # nothing left: nothing sent twice
    assert len(receivers["hook"].snapshot()) == 1
    store.close()
    store2.close()


async def restart_again(mgr: AlertManager) -> None:
    assert await mgr.resume() == 0
    await mgr.drain(5)


def test_after_a_restart_only_the_channels_that_missed_a_notification_get_it(
    tmp_path: Path, receivers: dict[str, HttpReceiver], smtp_server: SmtpServer
) -> None:
    clock = Clock()
    first, store = manager(tmp_path, receivers, smtp_server, clock, routes=("hook", "duty"))
    ((_, (msg,)),) = first._apply_batch([lel("gas-4", "warning", clock.now)], None)
    assert msg.targets == ("hook", "duty")
    with store.begin() as tx:  # "hook" confirmed it before the crash; "duty" did not
        (hook,) = [r for r in tx.claim_notifications(int(clock.now * 1000), 60_000, 10) if r.channel == "hook"]
        tx.notification_delivered(hook.id)
    clock.now += 61  # the dead instance's lease on "duty" runs out
    second, store2 = manager(tmp_path, receivers, smtp_server, clock, routes=("hook", "duty"))

    async def restart() -> None:
        await second.resume()
        await second.drain(5)

    asyncio.run(restart())
    store.close()
    store2.close()
    assert receivers["hook"].snapshot() == []
    (duty,) = receivers["duty"].snapshot()
    assert duty.json()["id"] == msg.id
