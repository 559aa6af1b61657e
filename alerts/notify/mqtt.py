"""MQTT channel: the message JSON on ``lifeline/v1/alerts/notify/{audience}`` through the service's publisher.

The Notifier is given ``publish(topic, payload)``; it should return once the broker has the message (QoS 1) and
raise ``ConnectionError``/``OSError``/``TimeoutError`` when it cannot publish.
"""

from __future__ import annotations

import asyncio

from alerts.notify.config import MqttConfig
from alerts.notify.errors import DeliveryError
from alerts.notify.message import Message, to_json
from infra.mqtt import Publish
from telemetry import topics


def target(msg: Message) -> str:
    try:
        return topics.alert_notification(msg.audience)
    except topics.TopicError:
        return f"(no topic: audience {msg.audience!r})"


async def deliver(cfg: MqttConfig, msg: Message, publish: Publish | None) -> None:
    """Publish the message; raise DeliveryError (retryable when the broker could not be reached in time)."""
    if publish is None:
        raise DeliveryError(
            "the mqtt channel needs a publisher: the Notifier was created without publish=", retryable=False
        )
    try:
        topic = topics.alert_notification(msg.audience)
    except topics.TopicError as exc:
        raise DeliveryError(f"no MQTT topic for audience {msg.audience!r}: {exc}", retryable=False) from exc
    try:
        async with asyncio.timeout(cfg.timeout_s):
            await publish(topic, to_json(msg))
    except TimeoutError as exc:
        raise DeliveryError(f"time-out after {cfg.timeout_s:g} s publishing on {topic}", retryable=True) from exc
    except (ConnectionError, OSError) as exc:
        raise DeliveryError(f"cannot publish on {topic}: {exc or type(exc).__name__}", retryable=True) from exc
