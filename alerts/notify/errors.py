"""How a delivery fails, and whether it is worth trying again (after Alertmanager's notifiers)."""

from __future__ import annotations

import contextlib
from email.utils import parsedate_to_datetime

import httpx


class DeliveryError(Exception):
    """A channel could not deliver. ``retryable``: the same request may succeed later (time-outs, connection
    errors, 5xx, 408, 429, a robot's rate limit); ``retry_after_s``: how long the receiver asked us to wait."""

    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = parsedate_to_datetime(value)
        if when.tzinfo is not None:
            return max(0.0, when.timestamp() - now_s)
    return None


def check_status(resp: httpx.Response, where: str, now_s: float) -> None:
    """Raise DeliveryError unless ``resp`` is a 2xx: 408, 429 and 5xx may be retried, other codes may not."""
    status = resp.status_code
    if 200 <= status < 300:
        return
    body = resp.text.strip().replace("\n", " ")[:200]
    reason = f"HTTP {status} from {where}" + (f": {body}" if body else "")
    if status in (408, 429) or status >= 500:
        wait = parse_retry_after(resp.headers.get("Retry-After"), now_s) if status in (429, 503) else None
        raise DeliveryError(reason, retryable=True, retry_after_s=wait)
    raise DeliveryError(reason, retryable=False)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    where: str,
    timeout_s: float,
    now_s: float,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` as JSON; a 2xx answer is returned, anything else raises a classified DeliveryError.

    ``where`` names the receiver in errors (the URL without its secrets)."""
    sent_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    try:
        resp = await client.post(url, content=body, headers=sent_headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"time-out after {timeout_s:g} s posting to {where}", retryable=True) from exc
    except httpx.TransportError as exc:
        raise DeliveryError(f"cannot reach {where}: {exc or type(exc).__name__}", retryable=True) from exc
    check_status(resp, where, now_s)
    return resp
