"""Notification channels: deliver alert notifications by webhook, email, MQTT, DingTalk and WeCom robots.

One module per notifier (after Prometheus Alertmanager), each with its own config model and a ``deliver`` that
raises :class:`DeliveryError` saying whether the failure is worth retrying. :class:`Notifier` routes a
:class:`Message` to channels (:class:`RouteConfig`, or the message's own ``targets``); :meth:`Notifier.attempt`
tries one channel once (the alert store's outbox, ``alerts.delivery``, retries until the channel confirms), and
:meth:`Notifier.send` delivers to every routed channel with bounded retries (a direct send with no outbox behind it).
"""

from __future__ import annotations

from alerts.notify.config import (
    DEFAULT_TIMEZONE,
    KINDS,
    ChannelConfig,
    DingTalkConfig,
    EmailConfig,
    HoursConfig,
    MqttConfig,
    NotifyConfig,
    OutboxConfig,
    RetryConfig,
    RouteConfig,
    WebhookConfig,
    WeComConfig,
    load_notify_config,
    redact_url,
)
from alerts.notify.dingtalk import sign as dingtalk_sign
from alerts.notify.errors import DeliveryError, parse_retry_after
from alerts.notify.message import Message, format_value, markdown, plain_text, render, to_dict, to_json
from alerts.notify.notifier import ChannelCounters, Notifier, Outcome, backoff_s, route

__all__ = [
    "DEFAULT_TIMEZONE",
    "KINDS",
    "ChannelConfig",
    "ChannelCounters",
    "DeliveryError",
    "DingTalkConfig",
    "EmailConfig",
    "HoursConfig",
    "Message",
    "MqttConfig",
    "Notifier",
    "NotifyConfig",
    "OutboxConfig",
    "Outcome",
    "RetryConfig",
    "RouteConfig",
    "WeComConfig",
    "WebhookConfig",
    "backoff_s",
    "dingtalk_sign",
    "format_value",
    "load_notify_config",
    "markdown",
    "parse_retry_after",
    "plain_text",
    "redact_url",
    "render",
    "route",
    "to_dict",
    "to_json",
]
