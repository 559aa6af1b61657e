"""``lifeline alerts notifications``: what the notification outbox holds (pending and failed, with why), or the
delivery log (``--log``). The parser of ``lifeline alerts`` is in ``lifeline.rules_cli``; this is its
notifications view."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic) is imported when a command runs, not when the CLI starts
    from alerts.store import AlertStore, QueueRow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--channel", help="only this channel")
    parser.add_argument("--pending", action="store_true", help="only pending notifications")
    parser.add_argument("--failed", action="store_true", help="only failed notifications (refused for good)")
    parser.add_argument("--log", action="store_true", help="the delivery log instead, newest first")


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _line(r: QueueRow, now_ms: int) -> str:
    next_try = _when(r.next_ms) if r.status == "pending" else "never (failed)"
    waited = f"{(now_ms - r.created_ms) / 1000:.0f}s"
    return (
        f"{r.id:>6} {r.status:<7} {r.channel:<16} alert={r.alert_id} {r.kind:<10} since={_when(r.created_ms)} "
        f"({waited}) attempts={r.attempts} next={next_try} error={r.last_error or '-'}"
    )


def show(store: AlertStore, args: argparse.Namespace) -> int:
    """Print the outbox (default) or the delivery log (``--log``); exit status 0."""
    if args.log:
        for n in store.notifications(limit=args.limit):
            flag = "ok " if n.ok else "FAIL"
            print(
                f"{_when(n.ts_ms)} {flag} {n.channel or '-':<16} {n.kind:<10} alert={n.alert_id} "
                f"attempts={n.attempts} {n.error}"
            )
        return 0
    from alerts.store import FAILED, PENDING

    statuses = [s for s, on in ((PENDING, args.pending), (FAILED, args.failed)) if on] or None
    rows = store.notification_queue(statuses=statuses, channel=args.channel, limit=args.limit)
    queues = store.channel_queues()
    now_ms = int(time.time() * 1000)
    for q in queues:
        oldest = f", oldest pending since {_when(q.oldest_pending_ms)}" if q.oldest_pending_ms is not None else ""
        print(f"channel {q.channel}: {q.pending} pending, {q.failed} failed{oldest}")
    if not queues:
        print("the notification outbox is empty: every notification was delivered")
    for r in rows:
        print(_line(r, now_ms))
    return 0
