"""Notifications are durable: kept in the alert store's outbox until their channel confirms them.

A channel down for five minutes (on a clock the test moves; real HTTP receivers answering 503) gets every raise
and clear in order once it is back, and its long wait raises "notification channel failing" on the other channel;
a notification refused for good is kept as failed and the next one of its alert says so; two instances on one store
deliver each notification once; and an alarm taken while the broker is down reaches the MQTT channel within 10 s
of the broker's return (real Mosquitto, real time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.config import AlertServiceConfig
from alerts.lifecycle import State
from alerts.manager import CHANNEL_FAILING_RULE, AlertManager
from alerts.notify import Notifier
from alerts.store import AlertStore
from device_profiles import load_catalogue
from infra.mqtt import Publisher
from lifeline.broker_auth import rules_publisher_account
from rules import PACKS, Transition, load_rules
from rules.schema import severity_of
from testing import Mosquitto
from tests.helpers import account_for
from tests.notify_servers import HttpReceiver, RecordedRequest, Reply

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def lel(device: str, severity: str | None, ts_s: float) -> Transition:
    return Transition(
        rule="gas.lel",
        site="plant-1",
        device=device,
        point="lel",
        severity=severity_of(severity),
        previous=None,
        value=30.0 if severity else 2.0,
        ts=int(ts_s * 1000),
        reason="test",
        profile="gas_detector",
    )


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.close()


@pytest.fixture
def duty() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.close()


def config(
    tmp_path: Path, channels: dict[str, Any], routes: list[str], escalation: Any = (), **notify: Any
) -> AlertServiceConfig:
    return AlertServiceConfig.model_validate(
        {
            "store_url": f"sqlite:///{tmp_path / 'alerts.db'}",
            "escalation": list(escalation),
            "notify": {
                "channels": channels,
                "routes": [{"audiences": ["safety"], "channels": routes}],
                "retry": {"initial_s": 1, "max_s": 30, "jitter": False},
                **notify,
            },
        }
    )


def manager(cfg: AlertServiceConfig, clock: Clock, **notifier: Any) -> tuple[AlertManager, AlertStore]:
    store = AlertStore(cfg.store_url)
    n = Notifier(cfg.notify, clock=clock, **notifier)
    return AlertManager(cfg, store, load_rules([PACKS]), load_catalogue(), n, clock=clock), store


def received(r: HttpReceiver) -> list[dict[str, Any]]:
    """What the receiver accepted (answered 2xx), in arrival order."""
    return [orjson.loads(q.body) for q in r.snapshot() if q.headers.get("x-answer") != "refused"]


class Switch:
    """A receiver's answer: 503 while down (marked so the test can tell refused requests from accepted ones)."""

    def __init__(self, status: int = 503) -> None:
        self.down = False
        self.status = status

    def __call__(self, req: RecordedRequest) -> Reply | None:
        if self.down:
            req.headers["x-answer"] = "refused"
            return Reply(self.status, b"unavailable")
        return None


def test_a_channel_down_for_five_minutes_then_back_gets_every_raise_and_clear_in_order(
    tmp_path: Path, hook: HttpReceiver, duty: HttpReceiver
) -> None:
    clock = Clock()
    channels = {
        "hook": {"type": "webhook", "url": f"{hook.url}/h"},
        "duty": {"type": "webhook", "url": f"{duty.url}/d"},
    }
    cfg = config(tmp_path, channels, ["hook"], outbox={"failing_after_s": 300})
    mgr, store = manager(cfg, clock)
    switch = Switch()
    hook.responder = switch
    t0 = clock.now
    # what each detector does while the channel is down: raise, clear, raise again
    plan = {
        10: [lel("gas-1", "warning", t0 + 10)],
        20: [lel("gas-2", "critical", t0 + 20)],
        70: [lel("gas-1", None, t0 + 70)],
        130: [lel("gas-2", None, t0 + 130), lel("gas-1", "critical", t0 + 130)],
    }

    async def scenario() -> list[str]:
        switch.down = True
        failing_seen: list[str] = []
        for second in range(0, 331, 5):  # five and a half minutes, the outbox looked at every 5 s
            clock.now = t0 + second
            if second in plan:
                await mgr.on_transitions(plan[second])
            await mgr.drain(5)
            await mgr.tick()
            await mgr.drain(5)
            failing_seen += [a.alert.state.value for a in store.list_alerts(rule=CHANNEL_FAILING_RULE)]
        assert store.notification_queue(statuses=["failed"]) == []  # a 503 is never given up on
        (raised,) = store.list_alerts(rule=CHANNEL_FAILING_RULE, active_only=True)
        assert raised.alert.key.device == "hook"
        switch.down = False
        for _ in range(10):  # back: within the longest backoff (30 s) everything goes
            clock.now += 5
            await mgr.drain(5)
            await mgr.tick()
            await mgr.drain(5)
        return failing_seen

    failing_seen = asyncio.run(scenario())
    got = [(m["device"], m["kind"]) for m in received(hook)]
    # order is kept per alert and channel (two alerts' notifications may pass each other)
    assert [k for d, k in got if d == "gas-1"] == ["raised", "cleared", "raised"], got
    assert [k for d, k in got if d == "gas-2"] == ["raised", "cleared"], got
    assert len({m["id"] for m in received(hook)}) == 5, "none twice"
    assert store.notification_queue() == []
    assert "active_unack" in failing_seen
    # the channel's own alert went to the other channel: raised while it failed, cleared when it delivered again
    told = [(m["kind"], m["device"], m["text"]) for m in received(duty)]
    assert [(k, d) for k, d, _ in told] == [("raised", "hook"), ("cleared", "hook")]
    assert "notification channel hook failing: 5 pending since" in told[0][2]
    (state,) = store.list_alerts(rule=CHANNEL_FAILING_RULE)
    assert state.alert.state is not State.ACTIVE_UNACK
    attempts = [n.attempts for n in store.notifications() if n.channel == "hook"]
    assert max(attempts) > 5, "tried more than the old fixed five times"
    store.close()


def test_a_refused_notification_is_kept_as_failed_and_the_clear_says_the_raise_never_went_out(
    tmp_path: Path, hook: HttpReceiver
) -> None:
    clock = Clock()
    cfg = config(tmp_path, {"robot": {"type": "webhook", "url": f"{hook.url}/r"}}, ["robot"])
    mgr, store = manager(cfg, clock)
    switch = Switch(status=400)  # a receiver that will never accept this request
    hook.responder = switch

    async def scenario() -> None:
        switch.down = True
        await mgr.on_transitions([lel("gas-5", "critical", clock.now)])
        await mgr.drain(5)
        clock.now += 3600
        await mgr.drain(5)  # not tried again
        switch.down = False
        await mgr.on_transitions([lel("gas-5", None, clock.now)])
        await mgr.drain(5)

    asyncio.run(scenario())
    refused = [q for q in hook.snapshot() if q.headers.get("x-answer") == "refused"]
    assert len(refused) == 1, "a 400 is not retried"
    (failed,) = store.notification_queue(statuses=["failed"])
    assert (failed.channel, failed.kind, failed.attempts) == ("robot", "raised", 1)
    assert failed.last_error.startswith("HTTP 400")
    (cleared,) = received(hook)
    assert cleared["kind"] == "cleared"
    assert "Note: the earlier 'raised' notification of this alert" in cleared["text"]
    assert "HTTP 400" in cleared["text"]
    store.close()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_two_instances_on_one_store_deliver_each_notification_once(
    tmp_path: Path, hook: HttpReceiver, db: str, request: pytest.FixtureRequest
) -> None:
    clock = Clock()
    cfg = config(tmp_path, {"hook": {"type": "webhook", "url": f"{hook.url}/h"}}, ["hook"])
    if db == "postgresql":
        cfg = cfg.model_copy(update={"store_url": str(request.getfixturevalue("postgres_url"))})
    first, store1 = manager(cfg, clock)
    second, store2 = manager(cfg, clock)

    async def scenario() -> None:
        for i in range(8):  # fewer than a flood (10 new alerts)
            await first.on_transitions([lel(f"gas-{i}", "warning", clock.now)])
            await second.on_transitions([lel(f"gas-{i}", None, clock.now + 1)])
        await asyncio.gather(first.drain(10), second.drain(10))

    asyncio.run(scenario())
    got = received(hook)
    assert len(got) == len({m["id"] for m in got}) == 16
    for i in range(8):
        assert [m["kind"] for m in got if m["device"] == f"gas-{i}"] == ["raised", "cleared"]
    store1.close()
    store2.close()


def test_an_alarm_taken_while_the_broker_is_down_is_notified_within_10_s_of_its_return(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    account = account_for(mosquitto, rules_publisher_account())
    assert account.reconnect_max_s == 5.0  # the transport's default: every link is back within seconds
    cfg = config(tmp_path, {"bus": {"type": "mqtt", "timeout_s": 5}}, ["bus"], outbox={"poll_s": 0.2})
    store = AlertStore(cfg.store_url)
    back_at: list[float] = []

    async def main() -> None:
        pub = Publisher(account, "test-notify-outage")  # as the rules service makes it
        pub.start()
        notifier = Notifier(cfg.notify, publish=pub.publish, connected=lambda: pub.connected)
        mgr = AlertManager(cfg, store, load_rules([PACKS]), load_catalogue(), notifier)
        stop = asyncio.Event()
        running = asyncio.ensure_future(mgr.run(stop))
        try:
            async with asyncio.timeout(10):
                while not pub.connected:  # noqa: ASYNC110 - the link's flag; bounded
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(mosquitto.stop)
            await asyncio.sleep(1.0)
            await mgr.on_transitions([lel("gas-9", "critical", time.time())])  # the alarm, during the outage
            await asyncio.sleep(25.0)  # long enough for the link's reconnect waits to reach their cap
            await asyncio.to_thread(mosquitto.start)
            back_at.append(time.time())
            async with asyncio.timeout(30):
                while store.notification_queue():  # noqa: ASYNC110 - the outbox empties on the PUBACK
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await running
            await notifier.aclose()
            await pub.close()

    try:
        asyncio.run(main())
        (logged,) = [n for n in store.notifications() if n.channel == "bus"]
    finally:
        store.close()
    assert logged.ok  # the broker's PUBACK: the channel's confirmation
    assert logged.kind == "raised"
    delay = logged.ts_ms / 1000 - back_at[0]
    assert delay < 10.0, f"notified {delay:.1f} s after the broker came back"


def test_lifeline_alerts_notifications_lists_what_waits_and_why(
    tmp_path: Path, hook: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifeline.cli import main

    clock = Clock()
    cfg = config(tmp_path, {"hook": {"type": "webhook", "url": f"{hook.url}/h"}}, ["hook"])
    mgr, store = manager(cfg, clock)
    hook.fail_next(1, status=503)

    async def scenario() -> None:
        await mgr.on_transitions([lel("gas-1", "critical", clock.now)])
        await mgr.drain(5)

    asyncio.run(scenario())
    store.close()
    assert main(["alerts", "--store", cfg.store_url, "notifications"]) == 0
    out = capsys.readouterr().out
    assert "channel hook: 1 pending, 0 failed, oldest pending since" in out
    (row,) = [line for line in out.splitlines() if "pending " in line and "alert=" in line]
    assert "hook" in row
    assert "raised" in row
    assert "attempts=1" in row
    assert "error=HTTP 503" in row
    assert "next=20" in row  # a time, not "never"
    assert main(["alerts", "--store", cfg.store_url, "notifications", "--failed"]) == 0
    assert "alert=" not in capsys.readouterr().out


def test_an_escalation_waiting_for_a_channel_is_dropped_once_the_alert_is_acknowledged(
    tmp_path: Path, hook: HttpReceiver, duty: HttpReceiver
) -> None:
    """The one thing dropped: an escalation asks for an acknowledgement; once given, it is recorded as dropped. The
    raise itself still goes out, and the metrics say what waits."""
    from alerts.lifecycle import acknowledge

    clock = Clock()
    channels = {
        "hook": {"type": "webhook", "url": f"{hook.url}/h"},
        "duty": {"type": "webhook", "url": f"{duty.url}/d"},
    }
    levels = [{"after_s": 60, "targets": ["duty"]}]
    cfg = config(tmp_path, channels, ["hook"], escalation=[{"audience": "safety", "levels": levels}])
    mgr, store = manager(cfg, clock)
    switch = Switch()
    duty.responder = switch

    async def scenario() -> str:
        switch.down = True
        await mgr.on_transitions([lel("gas-3", "critical", clock.now)])
        clock.now += 61
        await mgr.tick()
        await mgr.drain(5)  # the escalation fails (503) and waits
        metrics = mgr.metrics_text()
        (alert,) = store.list_alerts()
        store.act(alert.id, lambda a: acknowledge(a, "inspector-li", int(clock.now * 1000)))
        switch.down = False
        clock.now += 30
        await mgr.drain(5)
        return metrics

    metrics = asyncio.run(scenario())
    assert [m["kind"] for m in received(hook)] == ["raised"]
    assert received(duty) == []
    (dropped,) = [n for n in store.notifications() if n.channel == "duty"]
    assert (dropped.kind, dropped.ok) == ("escalation", False)
    assert dropped.error.startswith("dropped: alert")
    assert store.notification_queue() == []
    assert 'lifeline_notify_outbox_pending{channel="duty"} 1.0' in metrics
    assert 'lifeline_notify_outbox_oldest_pending_age_seconds{channel="duty"} 0.0' in metrics  # decided just now
    assert 'lifeline_notify_outbox_delivered_total{channel="hook"} 1.0' in metrics
    assert 'lifeline_notify_outbox_retried_total{channel="duty"} 1.0' in metrics
    assert 'lifeline_notify_outbox_dropped_total{channel="duty"} 1.0' in mgr.metrics_text()
    store.close()


def test_a_try_cut_short_by_a_stop_is_released_for_the_next_start(tmp_path: Path, hook: HttpReceiver) -> None:
    """A stop waits (bounded) for the tries under way; one still unfinished gives its row back at once, so the next
    start (or another instance) need not wait for its lease."""
    clock = Clock()
    cfg = config(tmp_path, {"hook": {"type": "webhook", "url": f"{hook.url}/h"}}, ["hook"])
    mgr, store = manager(cfg, clock)
    hook.answer(Reply(200, b"ok", delay_s=3.0))  # a slow receiver

    async def scenario() -> None:
        await mgr.on_transitions([lel("gas-1", "critical", clock.now)])
        stop = asyncio.Event()
        running = asyncio.ensure_future(mgr.delivery.run(stop, settle_s=0.2))
        async with asyncio.timeout(5):
            while not hook.snapshot():  # noqa: ASYNC110 - the request is under way; bounded
                await asyncio.sleep(0.02)
        stop.set()
        await running

    asyncio.run(scenario())
    (row,) = store.notification_queue()
    with store.begin() as tx:  # no lease left on it: due now for anyone
        assert [r.id for r in tx.claim_notifications(int(clock.now * 1000), 60_000, 10)] == [row.id]
    assert row.attempts == 0
    store.close()
