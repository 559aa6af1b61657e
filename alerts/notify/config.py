"""Notification channels and routes, validated at load before any socket opens.

Every secret of a channel (an SMTP password, a DingTalk signing secret, a header value, a robot's URL with its
``access_token`` or ``key``) is an ``infra.secret.Secret``: inline, ``{file: PATH}`` (mode 0600) or
``{env: NAME}``, and the legacy ``env:NAME``; a robot URL may also name a variable per query value
(``...?access_token=env:NAME``). None of them shows in a ``repr``, a log line or a ``model_dump`` (``***``, or where
it comes from). Each is read once at load, so that a variable that is not set or an unreadable file is an error
naming the field before any socket opens, and read again when a message is sent (a rotated file is picked up).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from infra.config_loader import read_yaml, validate
from infra.secret import CredentialError, Secret
from rules.schema import Severity

KindName = Literal["raised", "severity", "cleared", "chattering", "flood", "escalation"]
KINDS: tuple[KindName, ...] = ("raised", "severity", "cleared", "chattering", "flood", "escalation")
DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[DayName, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "Asia/Shanghai"

_ENV = "env:"
_SEVERITIES = frozenset(Severity)
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# A channel's name appears in logs, metrics labels and escalation targets: keep it a plain identifier.
ChannelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def _problem(message: str, *at: int | str) -> PydanticCustomError:
    """A model-level error pointing at ``at`` below the model, so that a YAML error names its line."""
    return PydanticCustomError("value_error", message, {"at": at})


def _from_env(value: str, field: str) -> str:
    """``env:NAME`` -> the variable's value; anything else unchanged."""
    if not value.startswith(_ENV):
        return value
    name = value[len(_ENV) :]
    if not name:
        raise ValueError(f"{field}: 'env:' needs a variable name, e.g. env:LIFELINE_SMTP_PASSWORD")
    found = os.environ.get(name)
    if found is None:
        raise ValueError(f"{field}: environment variable {name} is not set")
    return found


def _url_from_env(value: str, field: str) -> str:
    """Resolve ``env:NAME`` for the whole URL, then for each value of its query (robot keys and tokens)."""
    url = _from_env(value, field)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{field}: not an http(s) URL")
    if _ENV not in parts.query:
        return url
    query = [(k, _from_env(v, f"{field} query key {k!r}")) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _readable(secret: Secret | None, field: str) -> None:
    """Read ``secret`` now (at load), so that an unset variable or an unreadable file names its field."""
    if secret is None:
        return
    if secret.value == _ENV:
        raise _problem("'env:' needs a variable name, e.g. env:LIFELINE_SMTP_PASSWORD", field)
    try:
        secret.reveal(field)
    except CredentialError as exc:
        raise _problem(str(exc), field) from exc


def redact_url(url: str) -> str:
    """The URL for logs and outcomes: query values and any password replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else netloc
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- channels -------------------------------------------------------------------------------------------------


class _UrlChannel(_Model):
    """A channel that posts to a URL that may hold a token (a robot's ``access_token`` or ``key``)."""

    url: Secret = Field(description="the URL: inline, {file: PATH}, {env: NAME}, or with env:NAME query values")

    @model_validator(mode="after")
    def _url_ok(self) -> Self:
        _readable(self.url, "url")
        try:
            self.endpoint()
        except ValueError as exc:
            raise _problem(str(exc), "url") from exc
        return self

    def endpoint(self) -> str:
        """The URL to post to, every ``env:NAME`` in it read now."""
        return _url_from_env(self.url.reveal("url"), "url")


class WebhookConfig(_UrlChannel):
    """POST the message as a JSON object to ``url``."""

    type: Literal["webhook"]
    headers: dict[str, Secret] = Field(default_factory=dict, description="each value a secret (it may be a token)")
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _headers_ok(self) -> WebhookConfig:
        for name, value in self.headers.items():
            _readable(value, f"headers.{name}")
        return self

    def header_values(self) -> dict[str, str]:
        """The headers to send, each value read now."""
        return {name: value.reveal(f"header {name}") for name, value in self.headers.items()}


class EmailConfig(_Model):
    """Plain-text mail through an SMTP server (optionally STARTTLS and login)."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password: Secret | None = None
    timeout_s: float = Field(default=15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _login_pair(self) -> EmailConfig:
        _readable(self.password, "password")
        if (self.username is None) != (self.password is None):
            raise _problem("give both username and password, or neither", "password" if self.username else "username")
        return self


class MqttConfig(_Model):
    """Publish the message JSON on ``telemetry.topics.alert_notification(audience)``."""

    type: Literal["mqtt"]
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class DingTalkConfig(_UrlChannel):
    """A DingTalk group robot (custom robot webhook with its ``access_token``), optionally signed."""

    type: Literal["dingtalk"]
    secret: Secret | None = Field(default=None, description="the robot's signing secret (SEC...)")
    at_mobiles: list[str] = Field(default_factory=list)
    at_all: bool = False
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _secret_ok(self) -> DingTalkConfig:
        _readable(self.secret, "secret")
        return self


class WeComConfig(_UrlChannel):
    """A WeCom (WeChat Work) group robot webhook with its ``key``."""

    type: Literal["wecom"]
    timeout_s: float = Field(default=10.0, gt=0, le=300)


ChannelConfig = Annotated[
    WebhookConfig | EmailConfig | MqttConfig | DingTalkConfig | WeComConfig, Field(discriminator="type")
]


# --- routes ---------------------------------------------------------------------------------------------------


class HoursConfig(_Model):
    """A daily window ``from`` (inclusive) to ``to`` (exclusive), local time; ``from`` after ``to`` runs over
    midnight. ``days`` names the day a window *starts*: with 22:00-06:00 on ``fri``, Saturday 03:00 matches."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    days: list[DayName] = Field(default_factory=lambda: list(DAYS), min_length=1)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time of day HH:MM (00:00 to 23:59)")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> HoursConfig:
        if self.start == self.end:
            raise _problem("from and to are equal: the window would be empty (leave hours out for all day)", "to")
        return self

    def contains(self, local: datetime) -> bool:
        start, end = _minutes(self.start), _minutes(self.end)
        now = local.hour * 60 + local.minute
        today = DAYS[local.weekday()]
        if start < end:
            return start <= now < end and today in self.days
        if now >= start:  # evening part of a window over midnight: it started today
            return today in self.days
        yesterday = DAYS[(local.weekday() - 1) % 7]
        return now < end and yesterday in self.days


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)") from exc
    return name


class RouteConfig(_Model):
    """Which notifications go to which channels; a filter left out matches everything."""

    audiences: list[str] | None = Field(default=None, min_length=1)
    areas: list[str] | None = Field(default=None, min_length=1)
    min_severity: Severity = Severity.INFO
    kinds: list[KindName] = Field(default_factory=lambda: list(KINDS), min_length=1)
    hours: HoursConfig | None = None
    timezone: str = DEFAULT_TIMEZONE
    channels: list[ChannelName] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        return _zone(v)

    def matches(self, audience: str, area: str | None, severity: str, kind: str, now_ms: int) -> bool:
        if self.audiences is not None and audience not in self.audiences:
            return False
        if self.areas is not None and area not in self.areas:
            return False
        if severity not in _SEVERITIES or Severity(severity) < self.min_severity:
            return False
        if kind not in self.kinds:
            return False
        if self.hours is None:
            return True
        return self.hours.contains(datetime.fromtimestamp(now_ms / 1000, ZoneInfo(self.timezone)))


class RetryConfig(_Model):
    """How a channel is tried again. The outbox (``alerts.delivery``) retries a notification until its channel
    confirms it, waiting ``infra.backoff.Backoff`` delays from ``initial_s`` doubling up to ``max_s``, fully
    jittered; a ``Retry-After`` of an HTTP 429/503 answer replaces the wait (still at most ``max_s``).
    ``attempts`` bounds only :meth:`alerts.notify.Notifier.send` (a direct send with no outbox behind it, such as a
    test message)."""

    attempts: int = Field(default=5, ge=1, le=20)
    initial_s: float = Field(default=0.5, gt=0)
    max_s: float = Field(default=30.0, gt=0)
    honour_retry_after: bool = True
    jitter: bool = Field(default=True, description="full jitter on each wait; off only for tests")

    @model_validator(mode="after")
    def _order(self) -> RetryConfig:
        if self.max_s < self.initial_s:
            raise _problem("max_s must be at least initial_s", "max_s")
        return self


class OutboxConfig(_Model):
    """The notification outbox in the alert store (``alerts.delivery``)."""

    failing_after_s: float = Field(
        default=300.0,
        gt=0,
        description="a notification undelivered this long raises 'notification channel X failing' on the others",
    )
    lease_s: float = Field(
        default=120.0, gt=0, le=3600, description="a claimed row is another instance's to retry after this long"
    )
    poll_s: float = Field(default=1.0, gt=0, le=60, description="how often the outbox is looked at for due rows")
    batch: int = Field(default=50, ge=1, le=1000, description="rows claimed at a time")


class NotifyConfig(_Model):
    channels: dict[ChannelName, ChannelConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    timezone: str = Field(default=DEFAULT_TIMEZONE, description="for times shown in texts")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        return _zone(v)

    @model_validator(mode="after")
    def _known_channels(self) -> NotifyConfig:
        for i, route in enumerate(self.routes):
            for j, name in enumerate(route.channels):
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none defined"
                    raise _problem(
                        f"route {i}: unknown channel {name!r} (channels: {known})", "routes", i, "channels", j
                    )
        longest = max((c.timeout_s for c in self.channels.values()), default=0.0)
        if self.outbox.lease_s <= longest:
            raise _problem(
                f"outbox.lease_s ({self.outbox.lease_s:g}) must be longer than the longest channel time-out "
                f"({longest:g} s): a row still being tried would be taken by another instance",
                "outbox",
                "lease_s",
            )
        return self


def load_notify_config(path: Path) -> NotifyConfig:
    """Load and validate a notify config file; ConfigError names file, line, field and reason."""
    return validate(NotifyConfig, read_yaml(path), "notify config")
