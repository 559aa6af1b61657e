"""WeCom (WeChat Work) channel: a group robot's webhook with its ``key``, markdown message."""

from __future__ import annotations

import httpx
import orjson

from alerts.notify._robot import check_errcode
from alerts.notify.config import WeComConfig, redact_url
from alerts.notify.errors import post_json
from alerts.notify.message import Message, markdown

# 45009: API frequency limit (20 messages a minute per robot); -1: system busy. 93000 (invalid webhook URL or key)
# and other codes need a config change: not retried.
RETRYABLE_CODES = frozenset({-1, 45009})
MAX_CONTENT_BYTES = 4096  # the robot refuses longer markdown content


def body(msg: Message, timezone: str) -> dict[str, object]:
    content = markdown(msg, timezone, wecom=True)
    raw = content.encode("utf-8")
    if len(raw) > MAX_CONTENT_BYTES:
        content = raw[: MAX_CONTENT_BYTES - 3].decode("utf-8", errors="ignore") + "..."
    return {"msgtype": "markdown", "markdown": {"content": content}}


def target(cfg: WeComConfig) -> str:
    return redact_url(cfg.endpoint())


async def deliver(cfg: WeComConfig, msg: Message, client: httpx.AsyncClient, now_s: float, timezone: str) -> None:
    """Post the markdown card; raise DeliveryError for HTTP problems and for a non-zero ``errcode``."""
    where = target(cfg)
    resp = await post_json(
        client, cfg.endpoint(), orjson.dumps(body(msg, timezone)), where=where, timeout_s=cfg.timeout_s, now_s=now_s
    )
    check_errcode(resp, where, RETRYABLE_CODES)
