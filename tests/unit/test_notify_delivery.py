"""Texts, failure classification and the Notifier's retries, without sockets: the mqtt channel's publish is a fake,
time and sleep are controlled."""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
import ssl
from email import message_from_bytes
from email.message import EmailMessage
from typing import Any

import httpx
import orjson
import pytest

from alerts.notify import (
    DeliveryError,
    EmailConfig,
    Message,
    Notifier,
    NotifyConfig,
    backoff_s,
    dingtalk,
    markdown,
    parse_retry_after,
    plain_text,
    render,
    smtp,
    to_dict,
    wecom,
)
from alerts.notify.errors import check_status

NOW_S = 1767326400.0  # 2026-01-02 12:00 Asia/Shanghai


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def gas_message(**over: Any) -> Message:
    title, text = render(
        "raised",
        "critical",
        "Combustible gas concentration",
        site="s1",
        device="gas-03",
        point="lel",
        value=57.0,
        unit="%LEL",
        detail="second-level alarm (二级)",
    )
    base: dict[str, Any] = {
        "id": "n-42",
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
        "value": 57.0,
        "ts_ms": int(NOW_S * 1000),
        "alert_id": 7,
    }
    return Message(**{**base, **over})


# --- texts ----------------------------------------------------------------------------------------------------

GAS = {"site": "s1", "device": "gas-03", "point": "lel", "unit": "%LEL"}
CGC = "Combustible gas concentration"
RENDER = [
    pytest.param(
        "raised",
        "critical",
        CGC,
        {**GAS, "value": 57},
        "[CRITICAL] Combustible gas concentration raised at site s1 device gas-03: lel = 57 %LEL",
        id="raised",
    ),
    pytest.param(
        "severity",
        "critical",
        "Combustible gas concentration",
        {**GAS, "value": 57.5},
        "[CRITICAL] Combustible gas concentration now critical at site s1 device gas-03: lel = 57.5 %LEL",
        id="severity",
    ),
    pytest.param(
        "cleared",
        "warning",
        CGC,
        {**GAS, "value": 3},
        "[CLEARED] Combustible gas concentration cleared at site s1 device gas-03: lel = 3 %LEL",
        id="cleared",
    ),
    pytest.param(
        "raised",
        "warning",
        "Fire alarm",
        {"site": "s2", "device": "fd-1", "point": "fire_alarm", "value": True},
        "[WARNING] Fire alarm raised at site s2 device fd-1: fire_alarm = true",
        id="bool-value-no-unit",
    ),
    pytest.param(
        "raised",
        "info",
        "Device silent",
        {"site": "s2", "device": "wq-1"},
        "[INFO] Device silent raised at site s2 device wq-1",
        id="no-point",
    ),
    pytest.param(
        "chattering",
        "warning",
        "Sluice gate fault",
        {"site": "s3", "device": "g1"},
        "[WARNING] Sluice gate fault chattering at site s3 device g1: notifications held until it is quiet",
        id="chattering",
    ),
    pytest.param(
        "flood", "warning", "safety", {}, "[WARNING] Alert flood for safety: individual alerts held", id="flood"
    ),
    pytest.param(
        "escalation",
        "critical",
        "Combustible gas concentration",
        {**GAS, "value": 57, "level": 2},
        "[CRITICAL] Escalation level 2: Combustible gas concentration unacknowledged at site s1 "
        "device gas-03: lel = 57 %LEL",
        id="escalation",
    ),
]


@pytest.mark.parametrize(("kind", "severity", "what", "extra", "title"), RENDER)
def test_render_titles(kind: str, severity: str, what: str, extra: dict[str, Any], title: str) -> None:
    got_title, got_text = render(kind, severity, what, **extra)
    assert got_title == title
    assert got_text == title


def test_render_detail_is_second_line() -> None:
    title, text = render("escalation", "critical", "Gas", level=1, detail="unacknowledged for 300s")
    assert text == f"{title}\nunacknowledged for 300s"


def test_json_object_has_every_field_but_targets() -> None:
    data = to_dict(gas_message(targets=("x",), level=1))
    assert list(data) == [
        "id",
        "kind",
        "audience",
        "area",
        "severity",
        "title",
        "text",
        "site",
        "device",
        "rule",
        "point",
        "value",
        "ts_ms",
        "alert_id",
        "level",
    ]
    assert data["value"] == 57.0
    assert data["level"] == 1


def test_plain_text_and_markdown() -> None:
    m = gas_message()
    body = plain_text(m)
    assert body.startswith(m.text + "\n\n")
    for line in (
        "Site:         s1",
        "Device:       gas-03",
        "Rule:         gas.lel_high",
        "Value:        57",
        "Time:         2026-01-02 12:00:00 +0800",
        "Alert:        7",
        "Notification: n-42",
    ):
        assert line in body
    md = markdown(m)
    assert md.startswith(f"### {m.title}\n\nsecond-level alarm (二级)\n")
    assert "- **Device**: gas-03" in md
    assert markdown(m, wecom=True).startswith(f'### <font color="warning">{m.title}</font>')


def test_robot_bodies() -> None:
    cfg = NotifyConfig.model_validate(
        {
            "channels": {
                "d": {
                    "type": "dingtalk",
                    "url": "https://robot.invalid/robot/send?access_token=t",
                    "at_mobiles": ["13800000000"],
                }
            }
        }
    )
    ding = dingtalk.body(cfg.channels["d"], gas_message(), "Asia/Shanghai")  # type: ignore[arg-type]
    assert ding["msgtype"] == "markdown"
    assert ding["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
    assert ding["markdown"]["title"] == gas_message().title  # type: ignore[index]
    assert ding["markdown"]["text"].endswith("@13800000000")  # type: ignore[index]
    long = gas_message(text="长" * 3000)
    content = wecom.body(long, "Asia/Shanghai")["markdown"]["content"]  # type: ignore[index]
    assert len(content.encode()) <= wecom.MAX_CONTENT_BYTES


def test_email_headers_and_utf8() -> None:
    cfg = EmailConfig(type="email", host="127.0.0.1", sender="lifeline@example.org", to=["a@example.org", "b@x.cn"])
    m = gas_message(title="[CRITICAL] 可燃气体浓度 raised at site s1")
    mail = smtp.build(cfg, m, NOW_S, "Asia/Shanghai")
    parsed = message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)  # what the default policy parses into
    assert parsed["Subject"] == m.title
    assert "=?utf-8?" in mail.as_string()  # the subject is RFC 2047-encoded on the wire
    assert parsed["To"] == "a@example.org, b@x.cn"
    assert parsed["Date"] == "Fri, 02 Jan 2026 12:00:00 +0800"
    assert parsed["Message-ID"].endswith("@example.org>")
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert "Device:       gas-03" in parsed.get_content()


# --- classification -------------------------------------------------------------------------------------------

STATUS = [
    pytest.param(200, {}, None, id="200-ok"),
    pytest.param(204, {}, None, id="204-ok"),
    pytest.param(400, {}, (False, None), id="400-not-retryable"),
    pytest.param(401, {}, (False, None), id="401-not-retryable"),
    pytest.param(404, {}, (False, None), id="404-not-retryable"),
    pytest.param(302, {}, (False, None), id="redirect-not-followed"),
    pytest.param(408, {}, (True, None), id="408-retryable"),
    pytest.param(429, {"Retry-After": "7"}, (True, 7.0), id="429-retry-after-seconds"),
    pytest.param(429, {"Retry-After": "Fri, 02 Jan 2026 04:00:20 GMT"}, (True, 20.0), id="429-retry-after-date"),
    pytest.param(500, {"Retry-After": "7"}, (True, None), id="500-ignores-retry-after"),
    pytest.param(503, {"Retry-After": "12"}, (True, 12.0), id="503-retry-after"),
    pytest.param(503, {"Retry-After": "soon"}, (True, None), id="503-bad-retry-after"),
]


@pytest.mark.parametrize(("status", "headers", "expected"), STATUS)
def test_http_status_classification(status: int, headers: dict[str, str], expected: tuple[bool, Any] | None) -> None:
    resp = httpx.Response(status, headers=headers, text="nope")
    if expected is None:
        check_status(resp, "receiver", NOW_S)
        return
    with pytest.raises(DeliveryError) as info:
        check_status(resp, "receiver", NOW_S)
    assert (info.value.retryable, info.value.retry_after_s) == expected
    assert f"HTTP {status} from receiver: nope" == info.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("120", 120.0), ("Fri, 02 Jan 2026 03:59:00 GMT", 0.0), ("", None), ("-1", None), ("1.5", None)],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW_S) == expected


SMTP_ERRORS = [
    pytest.param(smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), False, id="auth-535"),
    pytest.param(smtplib.SMTPDataError(451, b"4.3.0 try later"), True, id="data-451"),
    pytest.param(smtplib.SMTPDataError(554, b"5.7.1 rejected"), False, id="data-554"),
    pytest.param(smtplib.SMTPSenderRefused(421, b"busy", "a@b"), True, id="sender-421"),
    pytest.param(smtplib.SMTPConnectError(-1, b"closed"), True, id="connect-closed"),
    pytest.param(smtplib.SMTPRecipientsRefused({"a@b": (550, b"no such user")}), False, id="rcpt-550"),
    pytest.param(smtplib.SMTPRecipientsRefused({"a@b": (450, b"mailbox busy")}), True, id="rcpt-450"),
    pytest.param(smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."), False, id="no-tls"),
    pytest.param(smtplib.SMTPServerDisconnected("gone"), True, id="disconnected"),
    pytest.param(ssl.SSLCertVerificationError("certificate verify failed"), False, id="bad-certificate"),
    pytest.param(ConnectionRefusedError(111, "Connection refused"), True, id="refused"),
    pytest.param(TimeoutError("timed out"), True, id="time-out"),
]


@pytest.mark.parametrize(("exc", "retryable"), SMTP_ERRORS)
def test_smtp_classification(exc: Exception, retryable: bool) -> None:
    assert smtp._classify(exc, "SMTP server h:25").retryable is retryable


# --- the Notifier, with a fake publisher ----------------------------------------------------------------------


class FakePublish:
    """Fails with each of ``failures`` in turn, then records what it is given."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.published: list[tuple[str, bytes]] = []
        self.calls = 0

    async def __call__(self, topic: str, payload: bytes) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.published.append((topic, payload))


class Clock:
    def __init__(self) -> None:
        self.now = NOW_S
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def notifier(
    publish: FakePublish | None, retry: dict[str, Any] | None = None, **channels: Any
) -> tuple[Notifier, Clock]:
    cfg = NotifyConfig.model_validate(
        {
            "channels": channels or {"bus": {"type": "mqtt"}},
            "routes": [{"channels": list(channels or ["bus"])}],
            "retry": retry or {},
        }
    )
    clock = Clock()
    return Notifier(cfg, publish=publish, clock=clock, sleep=clock.sleep), clock


async def send(n: Notifier, m: Message) -> Any:
    try:
        return await n.send(m)
    finally:
        await n.aclose()


def test_mqtt_publishes_json_on_the_audience_topic() -> None:
    publish = FakePublish()
    n, _ = notifier(publish)
    (outcome,) = run(send(n, gas_message()))
    assert outcome.ok
    assert outcome.attempts == 1
    assert outcome.target == "lifeline/v1/alerts/notify/safety"
    assert outcome.ts_ms == int(NOW_S * 1000)
    ((topic, payload),) = publish.published
    assert topic == "lifeline/v1/alerts/notify/safety"
    assert orjson.loads(payload) == to_dict(gas_message())


RETRIES = [
    pytest.param([ConnectionError("down")] * 2, {}, True, 3, [0.5, 1.0], id="two-failures-then-ok"),
    pytest.param([OSError("down")] * 9, {}, False, 5, [0.5, 1.0, 2.0, 4.0], id="out-of-attempts"),
    pytest.param(
        [TimeoutError()] * 9,
        {"attempts": 6, "initial_s": 1, "max_s": 3},
        False,
        6,
        [1.0, 2.0, 3.0, 3.0, 3.0],
        id="backoff-capped-at-max",
    ),
    pytest.param([ConnectionError()] * 9, {"attempts": 1}, False, 1, [], id="one-attempt-no-retry"),
]


@pytest.mark.parametrize(("failures", "retry", "ok", "attempts", "sleeps"), RETRIES)
def test_retries_with_backoff(
    failures: list[BaseException], retry: dict[str, Any], ok: bool, attempts: int, sleeps: list[float]
) -> None:
    publish = FakePublish(*failures)
    n, clock = notifier(publish, retry)
    (outcome,) = run(send(n, gas_message()))
    assert (outcome.ok, outcome.attempts, outcome.retryable) == (ok, attempts, not ok)
    assert clock.sleeps == sleeps
    assert publish.calls == attempts
    assert n.counters["bus"].retries == len(sleeps)
    assert n.counters["bus"].failed == (0 if ok else 1)


def test_backoff_schedule() -> None:
    cfg = NotifyConfig.model_validate({"retry": {"initial_s": 0.5, "max_s": 30}})
    assert [backoff_s(cfg, i) for i in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_mqtt_without_publisher_fails_clearly() -> None:
    n, clock = notifier(None)
    (outcome,) = run(send(n, gas_message()))
    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.attempts == 1
    assert "needs a publisher" in outcome.error
    assert clock.sleeps == []


def test_mqtt_audience_without_topic_is_not_retried() -> None:
    n, _ = notifier(FakePublish())
    (outcome,) = run(send(n, gas_message(audience="Safety Team")))
    assert not outcome.ok
    assert not outcome.retryable
    assert "no MQTT topic" in outcome.error


def test_unknown_target_gives_an_outcome_and_others_still_deliver() -> None:
    publish = FakePublish()
    n, _ = notifier(publish)
    outcomes = run(send(n, gas_message(targets=("ghost", "bus"))))
    assert [(o.channel, o.ok) for o in outcomes] == [("ghost", False), ("bus", True)]
    assert "no channel named 'ghost'" in outcomes[0].error
    assert len(publish.published) == 1


def test_no_route_sends_nothing() -> None:
    cfg = NotifyConfig.model_validate(
        {"channels": {"bus": {"type": "mqtt"}}, "routes": [{"audiences": ["water"], "channels": ["bus"]}]}
    )
    n = Notifier(cfg, publish=FakePublish())
    assert run(send(n, gas_message())) == []


def test_a_bug_in_a_channel_becomes_an_outcome(caplog: pytest.LogCaptureFixture) -> None:
    publish = FakePublish(ZeroDivisionError("bug"))
    n, _ = notifier(publish)
    (outcome,) = run(send(n, gas_message()))
    assert not outcome.ok
    assert "internal error" in outcome.error
    assert "failed unexpectedly" in caplog.text


def test_failing_channel_logged_once_and_recovery_logged(caplog: pytest.LogCaptureFixture) -> None:
    publish = FakePublish(*[ConnectionError("down")] * 4)
    n, _ = notifier(publish, {"attempts": 2})

    async def three() -> list[bool]:
        try:
            return [(await n.send(gas_message(id=f"n-{i}")))[0].ok for i in range(3)]
        finally:
            await n.aclose()

    with caplog.at_level("INFO", logger="lifeline.notify"):
        assert run(three()) == [False, False, True]
    messages = [r.getMessage() for r in caplog.records if r.name == "lifeline.notify"]
    assert len(messages) == 2
    assert "failing message=n-0" in messages[0]
    assert messages[1].endswith("delivers again")
    assert 'lifeline_notify_failed_total{channel="bus"} 2' in n.metrics_text()
    assert 'lifeline_notify_sent_total{channel="bus"} 1' in n.metrics_text()
