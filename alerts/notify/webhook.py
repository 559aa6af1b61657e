"""Webhook channel: POST the message as a JSON object (:func:`alerts.notify.message.to_dict`)."""

from __future__ import annotations

import httpx

from alerts.notify.config import WebhookConfig, redact_url
from alerts.notify.errors import post_json
from alerts.notify.message import Message, to_json


def target(cfg: WebhookConfig) -> str:
    return redact_url(cfg.endpoint())


async def deliver(cfg: WebhookConfig, msg: Message, client: httpx.AsyncClient, now_s: float) -> None:
    """POST the message; raise DeliveryError (retryable for time-outs, connection errors, 408, 429 and 5xx)."""
    await post_json(
        client,
        cfg.endpoint(),
        to_json(msg),
        where=target(cfg),
        timeout_s=cfg.timeout_s,
        now_s=now_s,
        headers=cfg.header_values(),
    )
