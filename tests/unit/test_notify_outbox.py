"""The outbox's retry waits (infra.backoff, no fixed number of tries; Retry-After honoured up to max_s) and the
line a notification carries when an earlier one of its alert never reached the channel. Pure: no store is touched."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.delivery import Delivery, _reporting, message_from_outbox, message_to_outbox
from alerts.notify import Message, NotifyConfig, Outcome
from alerts.store import QueueRow

CONFIG = NotifyConfig.model_validate({"retry": {"initial_s": 1, "max_s": 30, "jitter": False}})


def row(attempts: int, **over: Any) -> QueueRow:
    fields: dict[str, Any] = {
        "id": 1,
        "message_id": "m1",
        "channel": "hook",
        "alert_id": 7,
        "kind": "raised",
        "created_ms": 1_800_000_000_000,
        "message": {},
        "status": "pending",
        "attempts": attempts,
        "next_ms": 0,
        "last_try_ms": None,
        "last_error": "",
    }
    return QueueRow(**{**fields, **over})


def failure(retry_after_s: float | None = None) -> Outcome:
    return Outcome("hook", "webhook", False, 1, "HTTP 503", True, 0, "x", retry_after_s)


@pytest.mark.parametrize(
    ("attempts", "retry_after_s", "wait_ms"),
    [
        pytest.param(0, None, 1000, id="first-retry-after-initial"),
        pytest.param(1, None, 2000, id="doubles"),
        pytest.param(4, None, 16000, id="doubles-again"),
        pytest.param(5, None, 30000, id="capped"),
        pytest.param(500, None, 30000, id="no-fixed-number-of-tries"),
        pytest.param(0, 7.0, 7000, id="retry-after-replaces-the-wait"),
        pytest.param(0, 3600.0, 30000, id="retry-after-at-most-max"),
    ],
)
def test_the_wait_before_the_next_try(attempts: int, retry_after_s: float | None, wait_ms: int) -> None:
    delivery = Delivery(store=None, notifier=None, config=CONFIG)  # type: ignore[arg-type]  # no store work here
    assert delivery._wait_ms(row(attempts), failure(retry_after_s)) == wait_ms


def test_jitter_draws_below_the_ceiling() -> None:
    config = NotifyConfig.model_validate({"retry": {"initial_s": 1, "max_s": 30}})
    delivery = Delivery(store=None, notifier=None, config=config, rand=lambda: 0.25)  # type: ignore[arg-type]
    assert delivery._wait_ms(row(3), failure()) == 2000  # a quarter of 8 s


def test_a_notification_says_which_earlier_one_of_its_alert_never_reached_the_channel() -> None:
    msg = Message(
        id="c1",
        kind="cleared",
        audience="safety",
        severity="critical",
        title="[CLEARED] gas",
        text="[CLEARED] gas",
        ts_ms=1_800_000_060_000,
        alert_id=7,
    )
    failed = row(1, status="failed", last_error="HTTP 400 from robot: bad key")
    out = _reporting(msg, [failed], "UTC")
    assert out.text.splitlines() == [
        "[CLEARED] gas",
        "Note: the earlier 'raised' notification of this alert (2027-01-15 08:00:00 +0000) could not be delivered "
        "on this channel: HTTP 400 from robot: bad key",
    ]
    assert message_from_outbox(message_to_outbox(out)) == out
