"""Notify config validation, routing and the DingTalk signature: tables of cases, time passed in."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

import alerts.notify
from alerts.notify import (
    DingTalkConfig,
    EmailConfig,
    Message,
    NotifyConfig,
    WebhookConfig,
    WeComConfig,
    dingtalk_sign,
    load_notify_config,
    redact_url,
    route,
)
from alerts.notify.dingtalk import signed_url
from infra.config_loader import ConfigError


def at(local: str, tz: str = "Asia/Shanghai") -> int:
    """Epoch ms of a local time ``YYYY-MM-DD HH:MM`` (2026-01-02 is a Friday)."""
    return int(datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


HOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
MAIL = {"type": "email", "host": "127.0.0.1", "sender": "lifeline@example.org", "to": ["ops@example.org"]}


def config(routes: list[dict[str, Any]], **channels: dict[str, Any]) -> dict[str, Any]:
    return {"channels": channels or {"hook": HOOK, "mail": MAIL}, "routes": routes}


# --- validation -----------------------------------------------------------------------------------------------

INVALID = [
    pytest.param(
        config([{"channels": ["hook"]}, {"channels": ["mail", "pager"]}]),
        "routes.1.channels.1",
        "route 1: unknown channel 'pager'",
        id="unknown-channel-in-route",
    ),
    pytest.param(config([{"channels": []}]), "routes.0.channels", "at least 1", id="route-without-channels"),
    pytest.param(
        config([{"channels": ["hook"], "hours": {"from": "25:00", "to": "06:00"}}]),
        "routes.0.hours.from",
        "not a time of day",
        id="hour-25",
    ),
    pytest.param(
        config([{"channels": ["hook"], "hours": {"from": "8:00", "to": "18:00"}}]),
        "routes.0.hours.from",
        "not a time of day",
        id="hour-one-digit",
    ),
    pytest.param(
        config([{"channels": ["hook"], "hours": {"from": "08:00", "to": "08:00"}}]),
        "routes.0.hours",
        "window would be empty",
        id="empty-window",
    ),
    pytest.param(
        config([{"channels": ["hook"], "hours": {"from": "08:00", "to": "18:00", "days": ["monday"]}}]),
        "routes.0.hours.days.0",
        "'mon'",
        id="bad-day",
    ),
    pytest.param(
        config([{"channels": ["hook"], "timezone": "Mars/Olympus"}]),
        "routes.0.timezone",
        "unknown time zone",
        id="bad-timezone",
    ),
    pytest.param(
        config([{"channels": ["hook"], "min_severity": "high"}]), "routes.0.min_severity", "'info'", id="bad-severity"
    ),
    pytest.param(config([{"channels": ["hook"], "kinds": ["raise"]}]), "routes.0.kinds.0", "'raised'", id="bad-kind"),
    pytest.param(config([], sms={"type": "sms", "to": "123"}), "channels.sms", "'webhook'", id="bad-type"),
    pytest.param(
        config([], hook={**HOOK, "method": "PUT"}), "channels.hook.webhook.method", "Extra inputs", id="extra-field"
    ),
    pytest.param(
        config([], hook={**HOOK, "url": "ftp://host/x"}), "channels.hook.webhook.url", "http(s)", id="not-http-url"
    ),
    pytest.param(config([], mail={**MAIL, "to": []}), "channels.mail.email.to", "at least 1", id="email-no-recipient"),
    pytest.param(
        config([], mail={**MAIL, "username": "u"}),
        "channels.mail.email",
        "both username and password",
        id="email-login-half",
    ),
    pytest.param(
        config([], mail={**MAIL, "password": "env:LIFELINE_TEST_UNSET"}),
        "channels.mail.email.password",
        "password: environment variable LIFELINE_TEST_UNSET is not set",
        id="env-secret-missing",
    ),
    pytest.param(
        config([], ding={"type": "dingtalk", "url": "https://robot.invalid/send?access_token=env:"}),
        "channels.ding.dingtalk.url",
        "needs a variable name",
        id="env-without-name",
    ),
    pytest.param(
        config([], ding={"type": "dingtalk", "url": "https://robot.invalid/send?access_token=env:NOPE_X1"}),
        "channels.ding.dingtalk.url",
        "url query key 'access_token': environment variable NOPE_X1",
        id="env-url-key-missing",
    ),
    pytest.param(config([], **{"bad name": HOOK}), "channels.bad name", "pattern", id="bad-channel-name"),
    pytest.param(
        {**config([]), "retry": {"initial_s": 5, "max_s": 1}},
        "retry",
        "max_s must be at least",
        id="retry-max-below-initial",
    ),
]


@pytest.mark.parametrize(("data", "where", "reason"), INVALID)
def test_invalid_config_names_field_and_reason(
    data: dict[str, Any], where: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIFELINE_TEST_UNSET", raising=False)
    monkeypatch.delenv("NOPE_X1", raising=False)
    with pytest.raises(ValidationError) as info:
        NotifyConfig.model_validate(data)
    # a model-level check points below its model with ctx["at"] (as the YAML loader reads it)
    found = [
        (".".join(map(str, (*e["loc"], *(e.get("ctx") or {}).get("at", ())))), e["msg"]) for e in info.value.errors()
    ]
    assert any(loc.startswith(where) and reason in msg for loc, msg in found), found


def test_env_secrets_are_read_at_load_and_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LL_SMTP_PW", "s3cret")
    monkeypatch.setenv("LL_DING_TOKEN", "tok-123")
    monkeypatch.setenv("LL_DING_SECRET", "SECabc")
    monkeypatch.setenv("LL_HOOK_AUTH", "Bearer xyz")
    monkeypatch.setenv("LL_WECOM_URL", "https://robot.invalid/cgi-bin/webhook/send?key=k-9")
    cfg = NotifyConfig.model_validate(
        {
            "channels": {
                "mail": {**MAIL, "username": "lifeline", "password": "env:LL_SMTP_PW"},
                "ding": {
                    "type": "dingtalk",
                    "url": "https://robot.invalid/robot/send?access_token=env:LL_DING_TOKEN",
                    "secret": "env:LL_DING_SECRET",
                },
                "hook": {**HOOK, "headers": {"Authorization": "env:LL_HOOK_AUTH", "X-Plain": "env-not-a-secret"}},
                "wecom": {"type": "wecom", "url": "env:LL_WECOM_URL"},
            }
        }
    )
    mail, ding, hook, wecom = (cfg.channels[n] for n in ("mail", "ding", "hook", "wecom"))
    assert isinstance(mail, EmailConfig)
    assert mail.password is not None
    assert mail.password.reveal() == "s3cret"
    assert isinstance(ding, DingTalkConfig)
    assert ding.secret is not None
    assert parse_qs(urlsplit(ding.endpoint()).query) == {"access_token": ["tok-123"]}
    assert ding.secret.reveal() == "SECabc"
    assert isinstance(hook, WebhookConfig)
    assert hook.header_values() == {"Authorization": "Bearer xyz", "X-Plain": "env-not-a-secret"}
    assert isinstance(wecom, WeComConfig)
    assert wecom.endpoint().endswith("key=k-9")
    monkeypatch.setenv("LL_SMTP_PW", "rotated")  # read again when used
    assert mail.password.reveal() == "rotated"


def test_no_secret_of_a_channel_shows_in_repr_str_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LL_DING_SECRET", "SEC-from-env")
    cfg = NotifyConfig.model_validate(
        {
            "channels": {
                "mail": {**MAIL, "username": "lifeline", "password": "inline-pw-1"},
                "ding": {
                    "type": "dingtalk",
                    "url": "https://robot.invalid/robot/send?access_token=inline-tok-2",
                    "secret": "env:LL_DING_SECRET",
                },
                "hook": {**HOOK, "headers": {"Authorization": "Bearer inline-3"}},
            }
        }
    )
    shown = [repr(cfg), str(cfg), str(cfg.model_dump()), cfg.model_dump_json()]
    for text in shown:
        for secret in ("inline-pw-1", "inline-tok-2", "SEC-from-env", "inline-3"):
            assert secret not in text, text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "https://robot.invalid/robot/send?access_token=abc",
            "https://robot.invalid/robot/send?access_token=***",
            id="query-key",
        ),
        pytest.param(
            "http://user:pw@127.0.0.1:8080/x?a=1&b=2",
            "http://user:***@127.0.0.1:8080/x?a=***&b=***",
            id="password-and-query",
        ),
        pytest.param("http://127.0.0.1/hook", "http://127.0.0.1/hook", id="nothing-secret"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_load_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "channels:\n"
        "  hook: {type: webhook, url: 'http://127.0.0.1:9/x'}\n"
        "routes:\n"
        "  - channels: [hook]\n"
        "  - audiences: [safety]\n"
        "    channels: [hook, pager]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_notify_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:6: notify config, field routes[1].channels[1]:")
    assert "route 1: unknown channel 'pager'" in problem


def test_sample_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = ("HOOK_AUTH", "SMTP_PASSWORD", "DINGTALK_TOKEN", "DINGTALK_SECRET", "WECOM_KEY")
    for name in (f"LIFELINE_{s}" for s in secrets):
        monkeypatch.setenv(name, "x")
    cfg = load_notify_config(Path(alerts.notify.__file__).parent / "sample.yaml")
    assert set(cfg.channels) == {"ops-webhook", "safety-mail", "safety-dingtalk", "env-wecom", "bus"}
    assert cfg.routes


# --- routing --------------------------------------------------------------------------------------------------


def msg(**over: Any) -> Message:
    base: dict[str, Any] = {
        "id": "n-1",
        "kind": "raised",
        "audience": "safety",
        "area": "baoshan-north",
        "severity": "warning",
        "title": "t",
        "text": "t",
        "ts_ms": 0,
    }
    return Message(**{**base, **over})


ROUTES = [
    {"audiences": ["safety"], "channels": ["a"]},
    {"areas": ["baoshan-north"], "min_severity": "critical", "channels": ["b", "a"]},
    {"kinds": ["escalation"], "channels": ["c"]},
    {"audiences": ["environment"], "hours": {"from": "22:00", "to": "06:00", "days": ["fri"]}, "channels": ["night"]},
    {
        "audiences": ["environment"],
        "timezone": "UTC",
        "channels": ["office-utc"],
        "hours": {"from": "08:00", "to": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
    },
]
ROUTED = NotifyConfig.model_validate(
    {"channels": dict.fromkeys(("a", "b", "c", "night", "office-utc"), HOOK), "routes": ROUTES}
)
FRI_NOON = at("2026-01-02 12:00")

ROUTING = [
    pytest.param(msg(), FRI_NOON, ["a"], id="audience-matches"),
    pytest.param(msg(audience="water"), FRI_NOON, [], id="no-route-matches"),
    pytest.param(msg(severity="critical"), FRI_NOON, ["a", "b"], id="union-deduplicated-in-route-order"),
    pytest.param(msg(audience="water", severity="critical"), FRI_NOON, ["b", "a"], id="area-and-min-severity"),
    pytest.param(msg(audience="water", severity="critical", area=None), FRI_NOON, [], id="no-area-no-area-route"),
    pytest.param(msg(audience="water", severity="warning"), FRI_NOON, [], id="below-min-severity"),
    pytest.param(msg(audience="water", kind="escalation"), FRI_NOON, ["c"], id="kind-filter"),
    pytest.param(msg(audience="water", kind="cleared"), FRI_NOON, [], id="kind-filtered-out"),
    pytest.param(msg(targets=("c", "night", "c")), FRI_NOON, ["c", "night"], id="targets-override-routes"),
    pytest.param(msg(targets=("ghost",)), FRI_NOON, ["ghost"], id="unknown-target-kept-for-its-outcome"),
    # 22:00-06:00 starting Friday (Asia/Shanghai); office-utc 08:00-18:00 UTC = 16:00-02:00 Shanghai
    pytest.param(msg(audience="environment"), at("2026-01-02 21:59"), ["office-utc"], id="night-not-yet"),
    pytest.param(msg(audience="environment"), at("2026-01-02 22:00"), ["night", "office-utc"], id="night-starts"),
    pytest.param(msg(audience="environment"), at("2026-01-03 03:00"), ["night"], id="night-after-midnight-saturday"),
    pytest.param(msg(audience="environment"), at("2026-01-03 06:00"), [], id="night-ends-exclusive"),
    pytest.param(msg(audience="environment"), at("2026-01-03 23:00"), [], id="saturday-night-not-listed"),
    pytest.param(msg(audience="environment"), at("2026-01-02 03:00"), [], id="friday-early-belongs-to-thursday"),
    pytest.param(msg(audience="environment"), at("2026-01-02 15:59"), [], id="utc-office-not-yet"),
    pytest.param(msg(audience="environment"), at("2026-01-02 16:00"), ["office-utc"], id="utc-office-opens"),
    pytest.param(msg(audience="environment"), at("2026-01-03 12:00"), [], id="utc-office-saturday"),
]


@pytest.mark.parametrize(("message", "now_ms", "expected"), ROUTING)
def test_routing(message: Message, now_ms: int, expected: list[str]) -> None:
    assert route(ROUTED, message, now_ms) == expected


def test_route_defaults_match_everything() -> None:
    cfg = NotifyConfig.model_validate({"channels": {"a": HOOK}, "routes": [{"channels": ["a"]}]})
    for kind in ("raised", "severity", "cleared", "chattering", "flood", "escalation"):
        assert route(cfg, msg(kind=kind, severity="info", area=None, audience="x"), 0) == ["a"]


@pytest.mark.parametrize(
    ("field", "value"), [pytest.param("kind", "raise", id="kind"), pytest.param("severity", "high", id="severity")]
)
def test_message_refuses_unknown_kind_and_severity(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        msg(**{field: value})


# --- DingTalk signature ---------------------------------------------------------------------------------------


def test_dingtalk_signature_golden() -> None:
    secret, ts = "SEC0123456789abcdef", 1700000000000
    by_hand = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    # also checked once with: printf '1700000000000\nSEC0123456789abcdef' | openssl dgst -sha256 -hmac ... | base64
    assert by_hand == "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="
    assert dingtalk_sign(secret, ts) == by_hand
    assert signed_url("https://robot.invalid/robot/send?access_token=abc", secret, ts) == (
        "https://robot.invalid/robot/send?access_token=abc&timestamp=1700000000000"
        "&sign=TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"
    )
