"""DingTalk channel: a custom group robot's webhook, markdown message, optional signing.

Signing (the robot's "additional signature" security setting): ``string_to_sign = f"{timestamp}\\n{secret}"`` with
the timestamp in ms, HMAC-SHA256 keyed by the secret, base64, URL-encoded, appended as ``&timestamp=..&sign=..``.
The robot refuses a timestamp more than an hour away from its clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

import httpx
import orjson

from alerts.notify._robot import check_errcode
from alerts.notify.config import DingTalkConfig, redact_url
from alerts.notify.errors import post_json
from alerts.notify.message import Message, markdown

# 130101: sending too fast (20 messages a minute per robot); -1: system busy. 310000 (keyword, signature or IP
# allow-list not satisfied) and 300001 (token unknown) need a config change: not retried.
RETRYABLE_CODES = frozenset({-1, 130101})


def sign(secret: str, timestamp_ms: int) -> str:
    """The robot's signature (base64, not yet URL-encoded)."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={quote_plus(sign(secret, timestamp_ms))}"


def body(cfg: DingTalkConfig, msg: Message, timezone: str) -> dict[str, object]:
    text = markdown(msg, timezone)
    if cfg.at_mobiles:  # the robot only highlights a mobile that also appears in the text as @mobile
        text += "\n\n" + " ".join(f"@{m}" for m in cfg.at_mobiles)
    return {
        "msgtype": "markdown",
        "markdown": {"title": msg.title, "text": text},
        "at": {"atMobiles": list(cfg.at_mobiles), "isAtAll": cfg.at_all},
    }


def target(cfg: DingTalkConfig) -> str:
    return redact_url(cfg.endpoint())


async def deliver(cfg: DingTalkConfig, msg: Message, client: httpx.AsyncClient, now_s: float, timezone: str) -> None:
    """Post the markdown card; raise DeliveryError for HTTP problems and for a non-zero ``errcode``."""
    url = cfg.endpoint()
    if cfg.secret is not None:
        url = signed_url(url, cfg.secret.reveal("DingTalk signing secret"), int(now_s * 1000))
    where = target(cfg)
    resp = await post_json(
        client, url, orjson.dumps(body(cfg, msg, timezone)), where=where, timeout_s=cfg.timeout_s, now_s=now_s
    )
    check_errcode(resp, where, RETRYABLE_CODES)
