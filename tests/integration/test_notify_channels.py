"""Notification channels against real servers on loopback: an aiosmtpd SMTP server, a local HTTP receiver, a real
Mosquitto. DingTalk and WeCom cannot be reached from tests: FAKE robots on the local receiver stand in for them
(``FakeDingTalk`` checks the signature the way the robot does and answers the robot's JSON; ``FakeWeCom`` likewise).
Backoff waits are recorded, not slept through."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from alerts.notify import Message, Notifier, NotifyConfig, Outcome, render, to_dict
from infra.mqtt import PublishError, client
from lifeline.broker_auth import rules_publisher_account
from testing import Mosquitto, free_port
from tests.helpers import Subscriber, account_for
from tests.notify_servers import FakeDingTalk, FakeWeCom, HttpReceiver, RecordedRequest, Reply, SmtpServer

pytestmark = pytest.mark.integration


def gas_message(**over: Any) -> Message:
    title, text = render(
        "raised",
        "critical",
        "Combustible gas concentration",
        site="s1",
        device="gas-03",
        point="lel",
        value=57,
        unit="%LEL",
        detail="二级报警: evacuate and ventilate",
    )
    base: dict[str, Any] = {
        "id": "n-1001",
        "kind": "raised",
        "audience": "safety",
        "area": "baoshan-north",
        "severity": "critical",
        "title": title,
        "text": text,
        "site": "s1",
        "device": "gas-03",
        "rule": "gas.lel_high",
        "point": "lel",
        "value": 57,
        "ts_ms": int(time.time() * 1000),
        "alert_id": 12,
    }
    return Message(**{**base, **over})


class Sleeps:
    """Stands in for asyncio.sleep: records the backoff waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def send(
    channels: dict[str, Any],
    message: Message | None = None,
    *,
    retry: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
    publish: Any = None,
) -> tuple[list[Outcome], list[float]]:
    """Build a Notifier for ``channels`` (one route to all of them unless ``routes``), send, close."""
    cfg = NotifyConfig.model_validate(
        {"channels": channels, "routes": routes or [{"channels": list(channels)}], "retry": retry or {}}
    )
    sleeps = Sleeps()

    async def main() -> list[Outcome]:
        notifier = Notifier(cfg, publish=publish, sleep=sleeps)
        try:
            return await notifier.send(message or gas_message())
        finally:
            await notifier.aclose()

    return asyncio.run(asyncio.wait_for(main(), 30)), sleeps.waits


# --- webhook --------------------------------------------------------------------------------------------------


def test_webhook_posts_the_message_json(http_receiver: HttpReceiver) -> None:
    hook = {"type": "webhook", "url": f"{http_receiver.url}/alerts?token=t0p", "headers": {"X-Api-Key": "k1"}}
    message = gas_message()
    (outcome,), waits = send({"hook": hook}, message)
    assert outcome.ok, outcome
    assert (outcome.channel, outcome.type, outcome.attempts, outcome.error) == ("hook", "webhook", 1, "")
    assert outcome.target == f"{http_receiver.url}/alerts?token=***"
    (req,) = http_receiver.requests
    assert (req.method, req.route, req.query) == ("POST", "/alerts", {"token": "t0p"})
    assert req.headers["x-api-key"] == "k1"
    assert req.headers["content-type"].startswith("application/json")
    assert req.json() == to_dict(message)
    assert req.json()["text"].endswith("二级报警: evacuate and ventilate")
    assert waits == []


STATUSES = [
    pytest.param(Reply(204), True, 1, False, id="204-delivered"),
    pytest.param(Reply(400, "bad payload"), False, 1, False, id="400-not-retried"),
    pytest.param(Reply(401), False, 1, False, id="401-not-retried"),
    pytest.param(Reply(404), False, 1, False, id="404-not-retried"),
    pytest.param(Reply(408), False, 3, True, id="408-retried"),
    pytest.param(Reply(429), False, 3, True, id="429-retried"),
    pytest.param(Reply(500), False, 3, True, id="500-retried"),
    pytest.param(Reply(502), False, 3, True, id="502-retried"),
]


@pytest.mark.parametrize(("reply", "ok", "attempts", "retryable"), STATUSES)
def test_webhook_status_classification(
    http_receiver: HttpReceiver, reply: Reply, ok: bool, attempts: int, retryable: bool
) -> None:
    http_receiver.default = reply
    (outcome,), _ = send({"hook": {"type": "webhook", "url": http_receiver.url}}, retry={"attempts": 3})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (ok, attempts, retryable), outcome
    assert len(http_receiver.requests) == attempts
    if not ok:
        assert f"HTTP {reply.status}" in outcome.error


def test_webhook_retries_with_backoff_then_delivers(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_next(3, 503)
    (outcome,), waits = send({"hook": {"type": "webhook", "url": http_receiver.url}})
    assert outcome.ok
    assert outcome.attempts == 4
    assert waits == [0.5, 1.0, 2.0]
    bodies = [r.json() for r in http_receiver.requests]
    assert len(bodies) == 4
    assert all(b == bodies[0] for b in bodies)  # the same message every time, same id for the receiver to dedupe


def test_webhook_gives_up_after_the_attempts(http_receiver: HttpReceiver) -> None:
    http_receiver.default = Reply(500, "down for maintenance")
    (outcome,), waits = send(
        {"hook": {"type": "webhook", "url": http_receiver.url}}, retry={"attempts": 4, "initial_s": 1, "max_s": 3}
    )
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 4, True)
    assert "HTTP 500" in outcome.error
    assert "down for maintenance" in outcome.error
    assert waits == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("status", "retry_after", "waits"),
    [
        pytest.param(429, "7", [7.0], id="429-seconds"),
        pytest.param(503, "2", [2.0], id="503-seconds"),
        pytest.param(429, "3600", [30.0], id="capped-at-max_s"),
        pytest.param(500, "7", [0.5], id="500-backoff-not-retry-after"),
    ],
)
def test_webhook_honours_retry_after(
    http_receiver: HttpReceiver, status: int, retry_after: str, waits: list[float]
) -> None:
    http_receiver.fail_next(1, status, headers={"Retry-After": retry_after})
    (outcome,), got = send({"hook": {"type": "webhook", "url": http_receiver.url}})
    assert outcome.ok
    assert outcome.attempts == 2
    assert got == waits


def test_webhook_retry_after_can_be_ignored(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_next(1, 429, headers={"Retry-After": "7"})
    (outcome,), waits = send(
        {"hook": {"type": "webhook", "url": http_receiver.url}}, retry={"honour_retry_after": False}
    )
    assert outcome.ok
    assert waits == [0.5]


def test_webhook_time_out_is_retryable(http_receiver: HttpReceiver) -> None:
    http_receiver.default = Reply(200, delay_s=1.5)
    hook = {"type": "webhook", "url": http_receiver.url, "timeout_s": 0.2}
    started = time.monotonic()
    (outcome,), _ = send({"hook": hook}, retry={"attempts": 2})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 2, True)
    assert "time-out after 0.2 s" in outcome.error
    assert time.monotonic() - started < 1.5


def test_webhook_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    (outcome,), waits = send({"hook": {"type": "webhook", "url": url}}, retry={"attempts": 2})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 2, True)
    assert "cannot reach" in outcome.error
    assert waits == [0.5]


# --- email ----------------------------------------------------------------------------------------------------


def mail_channel(server: SmtpServer, **over: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": server.host,
        "port": server.port,
        "sender": "lifeline@baoshan.example",
        "to": ["duty@baoshan.example", "lead@baoshan.example"],
        "timeout_s": 5,
        **over,
    }


def test_email_delivers_a_plain_utf8_mail(smtp_server: SmtpServer) -> None:
    message = gas_message(title="[CRITICAL] 可燃气体浓度 raised at site s1 device gas-03: lel = 57 %LEL")
    (outcome,), _ = send({"mail": mail_channel(smtp_server)}, message)
    assert outcome.ok, outcome
    assert outcome.target == "duty@baoshan.example, lead@baoshan.example"
    (got,) = smtp_server.wait_for(1)
    assert got.mail_from == "lifeline@baoshan.example"
    assert got.rcpt_tos == ["duty@baoshan.example", "lead@baoshan.example"]
    mail = got.message
    assert mail["Subject"] == message.title
    assert b"=?utf-8?" in got.raw  # non-ASCII subject encoded per RFC 2047
    assert mail["From"] == "lifeline@baoshan.example"
    assert mail["Date"] is not None
    assert mail["Message-ID"].endswith("@baoshan.example>")
    assert mail["X-Lifeline-Notification"] == "n-1001"
    assert mail.get_content_charset() == "utf-8"
    body = mail.get_content().replace("\r\n", "\n")  # SMTP carries lines as CRLF
    assert body.startswith(message.text)
    assert "二级报警" in body
    for line in ("Site:         s1", "Device:       gas-03", "Rule:         gas.lel_high", "Alert:        12"):
        assert line in body


def test_email_logs_in(smtp_server: SmtpServer) -> None:
    smtp_server.users["lifeline"] = "pa55"
    (outcome,), _ = send({"mail": mail_channel(smtp_server, username="lifeline", password="pa55")})
    assert outcome.ok, outcome
    assert smtp_server.wait_for(1)[0].login == "lifeline"


def test_email_wrong_password_is_not_retried(smtp_server: SmtpServer) -> None:
    smtp_server.users["lifeline"] = "pa55"
    (outcome,), waits = send({"mail": mail_channel(smtp_server, username="lifeline", password="wrong")})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 1, False)
    assert "login refused" in outcome.error
    assert "535" in outcome.error
    assert waits == []
    assert smtp_server.snapshot() == []


@pytest.mark.parametrize(
    ("reply", "ok", "attempts"),
    [
        pytest.param("451 4.3.0 Try again later", True, 2, id="4yz-retried"),
        pytest.param("554 5.7.1 Message rejected", False, 1, id="5yz-not-retried"),
    ],
)
def test_email_reply_codes(smtp_server: SmtpServer, reply: str, ok: bool, attempts: int) -> None:
    smtp_server.fail_next(1, reply)
    (outcome,), _ = send({"mail": mail_channel(smtp_server)})
    assert (outcome.ok, outcome.attempts) == (ok, attempts), outcome
    assert len(smtp_server.snapshot()) == (1 if ok else 0)


def test_email_some_recipients_refused_is_not_retried(smtp_server: SmtpServer) -> None:
    smtp_server.refuse.add("lead@baoshan.example")
    (outcome,), _ = send({"mail": mail_channel(smtp_server)})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 1, False)
    assert "lead@baoshan.example: 550" in outcome.error
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["duty@baoshan.example"]  # the other one has it


def test_email_starttls_not_offered_is_not_retried(smtp_server: SmtpServer) -> None:
    (outcome,), _ = send({"mail": mail_channel(smtp_server, starttls=True)})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 1, False)
    assert "STARTTLS" in outcome.error


def test_email_server_down_is_retryable() -> None:
    down = {
        "type": "email",
        "host": "127.0.0.1",
        "port": free_port(),
        "sender": "a@b.example",
        "to": ["c@d.example"],
        "timeout_s": 2,
    }
    (outcome,), waits = send({"mail": down}, retry={"attempts": 2})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 2, True)
    assert "cannot reach SMTP server" in outcome.error
    assert waits == [0.5]


# --- MQTT -----------------------------------------------------------------------------------------------------


class PahoPublish:
    """A publisher as the rules service would give one: QoS 1, returns once the broker has the message."""

    def __init__(self, broker: Mosquitto) -> None:
        account = account_for(broker, rules_publisher_account())
        self.client = client(account, account.username or "")
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()

    async def __call__(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)  # raises when the client refused the message
        if not info.is_published():
            raise PublishError(f"no PUBACK for {topic} within 5 s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[PahoPublish]:
    pub = PahoPublish(mosquitto)
    yield pub
    pub.close()


def test_mqtt_publishes_the_json_on_the_audience_topic(mosquitto: Mosquitto, publisher: PahoPublish) -> None:
    sub = Subscriber(mosquitto, "lifeline/v1/alerts/notify/#")
    try:
        message = gas_message()
        (outcome,), _ = send({"bus": {"type": "mqtt"}}, message, publish=publisher)
        assert outcome.ok, outcome
        assert outcome.target == "lifeline/v1/alerts/notify/safety"
        (got,) = sub.wait_for(lambda m: len(m) >= 1)
    finally:
        sub.close()
    assert got.topic == "lifeline/v1/alerts/notify/safety"
    assert orjson.loads(got.payload) == to_dict(message)


def test_mqtt_without_publisher_fails_clearly() -> None:
    (outcome,), _ = send({"bus": {"type": "mqtt"}})
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "needs a publisher" in outcome.error


# --- fake robots ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_dingtalk(http_receiver: HttpReceiver) -> FakeDingTalk:
    """A FAKE signed DingTalk robot (secret ``SEC-test``) on the test's HTTP receiver."""
    return FakeDingTalk(http_receiver, secret="SEC-test")


@pytest.fixture
def fake_wecom(http_receiver: HttpReceiver) -> FakeWeCom:
    """A FAKE WeCom robot on the test's HTTP receiver."""
    return FakeWeCom(http_receiver)


def test_dingtalk_signed_markdown_is_accepted_by_the_fake(fake_dingtalk: FakeDingTalk) -> None:
    ding = {"type": "dingtalk", "url": fake_dingtalk.url, "secret": "SEC-test", "at_mobiles": ["13800000000"]}
    message = gas_message()
    (outcome,), _ = send({"ding": ding}, message)
    assert outcome.ok, outcome
    assert outcome.target.endswith("/robot/send?access_token=***")
    (body,) = fake_dingtalk.accepted
    assert body["markdown"]["title"] == message.title
    assert body["markdown"]["text"].startswith(f"### {message.title}")
    assert "二级报警" in body["markdown"]["text"]
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


def test_dingtalk_env_secret_and_token(fake_dingtalk: FakeDingTalk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LL_TEST_DING_TOKEN", fake_dingtalk.token)
    monkeypatch.setenv("LL_TEST_DING_SECRET", "SEC-test")
    url = fake_dingtalk.url.replace(fake_dingtalk.token, "env:LL_TEST_DING_TOKEN")
    (outcome,), _ = send({"ding": {"type": "dingtalk", "url": url, "secret": "env:LL_TEST_DING_SECRET"}})
    assert outcome.ok, outcome
    assert "tok-ding" not in outcome.target


def test_dingtalk_unsigned_robot(http_receiver: HttpReceiver) -> None:
    robot = FakeDingTalk(http_receiver, secret=None)
    (outcome,), _ = send({"ding": {"type": "dingtalk", "url": robot.url, "at_all": True}})
    assert outcome.ok, outcome
    assert robot.accepted[0]["at"] == {"atMobiles": [], "isAtAll": True}
    assert "sign" not in http_receiver.requests[0].query


@pytest.mark.parametrize(
    ("channel", "ok", "attempts", "retryable", "error"),
    [
        pytest.param({"secret": "SEC-wrong"}, False, 1, False, "errcode 310000", id="bad-signature-not-retried"),
        pytest.param({"secret": None}, False, 1, False, "errcode 310000", id="missing-signature-not-retried"),
        pytest.param({"token": "other"}, False, 1, False, "errcode 300001", id="unknown-token-not-retried"),
    ],
)
def test_dingtalk_refusals(
    fake_dingtalk: FakeDingTalk, channel: dict[str, Any], ok: bool, attempts: int, retryable: bool, error: str
) -> None:
    url = fake_dingtalk.url.replace("tok-ding", channel.pop("token", "tok-ding"))
    ding = {"type": "dingtalk", "url": url, "secret": "SEC-test", **channel}
    (outcome,), waits = send({"ding": ding})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (ok, attempts, retryable), outcome
    assert error in outcome.error
    assert waits == []


def test_dingtalk_rate_limit_is_retried(fake_dingtalk: FakeDingTalk) -> None:
    too_fast = {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
    fake_dingtalk.receiver.answer(Reply(200, too_fast))
    (outcome,), waits = send({"ding": {"type": "dingtalk", "url": fake_dingtalk.url, "secret": "SEC-test"}})
    assert outcome.ok, outcome
    assert outcome.attempts == 2
    assert waits == [0.5]
    assert len(fake_dingtalk.accepted) == 1


def test_wecom_markdown_is_accepted_by_the_fake(fake_wecom: FakeWeCom) -> None:
    message = gas_message()
    (outcome,), _ = send({"wecom": {"type": "wecom", "url": fake_wecom.url}}, message)
    assert outcome.ok, outcome
    assert outcome.target.endswith("/cgi-bin/webhook/send?key=***")
    (body,) = fake_wecom.accepted
    assert body["markdown"]["content"].startswith(f'### <font color="warning">{message.title}</font>')


def test_wecom_rate_limit_retried_and_bad_key_not(fake_wecom: FakeWeCom, http_receiver: HttpReceiver) -> None:
    http_receiver.answer(Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
    (outcome,), waits = send({"wecom": {"type": "wecom", "url": fake_wecom.url}})
    assert (outcome.ok, outcome.attempts, waits) == (True, 2, [0.5])
    bad = fake_wecom.url.replace("key-wecom", "key-other")
    (outcome,), waits = send({"wecom": {"type": "wecom", "url": bad}})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 1, False)
    assert "errcode 93000" in outcome.error


def test_robot_answer_that_is_not_json_is_not_retried(http_receiver: HttpReceiver) -> None:
    http_receiver.default = Reply(200, "<html>captive portal</html>")
    (outcome,), _ = send({"wecom": {"type": "wecom", "url": f"{http_receiver.url}/x?key=k"}})
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (False, 1, False)
    assert "not the robot's JSON" in outcome.error


# --- the Notifier across channels -----------------------------------------------------------------------------


def test_channels_are_sent_concurrently_and_fail_independently(
    http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    # Both webhooks must be in flight at once: each answer waits for the other request (sequential sends would
    # break the barrier and get a 500 that is not retried here).
    barrier = threading.Barrier(2, timeout=5)

    def both_in_flight(req: RecordedRequest) -> Reply:
        if req.route == "/bad":
            return Reply(400, "refused")
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return Reply(500, "not concurrent")
        return Reply(204)

    http_receiver.responder = both_in_flight
    channels = {
        "hook-a": {"type": "webhook", "url": f"{http_receiver.url}/a"},
        "hook-b": {"type": "webhook", "url": f"{http_receiver.url}/b"},
        "bad": {"type": "webhook", "url": f"{http_receiver.url}/bad"},
        "mail": mail_channel(smtp_server),
    }
    routes: list[dict[str, Any]] = [
        {"audiences": ["safety"], "channels": ["hook-a", "mail"]},
        {"min_severity": "critical", "channels": ["bad", "hook-b", "hook-a"]},
        {"audiences": ["environment"], "channels": ["mail"]},
    ]
    outcomes, _ = send(channels, routes=routes, retry={"attempts": 1})
    assert [(o.channel, o.ok) for o in outcomes] == [("hook-a", True), ("mail", True), ("bad", False), ("hook-b", True)]
    assert sorted(r.route for r in http_receiver.requests) == ["/a", "/b", "/bad"]
    assert len(smtp_server.wait_for(1)) == 1


def test_escalation_targets_replace_the_routes(http_receiver: HttpReceiver, smtp_server: SmtpServer) -> None:
    channels = {"hook": {"type": "webhook", "url": http_receiver.url}, "mail": mail_channel(smtp_server)}
    title, text = render(
        "escalation",
        "critical",
        "Combustible gas concentration",
        site="s1",
        device="gas-03",
        level=2,
        detail="unacknowledged for 900s",
    )
    message = gas_message(kind="escalation", title=title, text=text, targets=("mail",), level=2)
    outcomes, _ = send(channels, message, routes=[{"channels": ["hook"]}])
    assert [(o.channel, o.ok) for o in outcomes] == [("mail", True)]
    assert http_receiver.requests == []
    (got,) = smtp_server.wait_for(1)
    assert got.message["Subject"] == title
    assert "Kind:         escalation (level 2)" in got.message.get_content()
