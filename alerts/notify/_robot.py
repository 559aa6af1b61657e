"""What the DingTalk and WeCom group robots answer: HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``."""

from __future__ import annotations

import httpx
import orjson

from alerts.notify.errors import DeliveryError


def check_errcode(resp: httpx.Response, where: str, retryable_codes: frozenset[int]) -> None:
    """Raise DeliveryError for a non-zero ``errcode`` (retryable when it is in ``retryable_codes``)."""
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError as exc:
        raise DeliveryError(
            f"{where} answered something that is not the robot's JSON: {resp.text[:120]!r}", retryable=False
        ) from exc
    if not isinstance(answer, dict) or not isinstance(answer.get("errcode"), int):
        raise DeliveryError(f"{where} answered without an errcode: {resp.text[:120]!r}", retryable=False)
    code = answer["errcode"]
    if code == 0:
        return
    errmsg = str(answer.get("errmsg", ""))[:200]
    raise DeliveryError(f"{where} refused the message: errcode {code}: {errmsg}", retryable=code in retryable_codes)
