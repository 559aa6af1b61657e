"""The notification outbox's delivery: every notification is kept in the alert store until its channel confirms it.

A change writes one row per notification and channel (``notification_queue``) in its own transaction
(``alerts.manager``); this loop claims the rows that are due, tries each once through the channel
(:meth:`alerts.notify.Notifier.attempt`) and records what came of it:

- confirmed: the row leaves the outbox and the delivery is recorded in the notification log;
- a failure worth retrying (time-out, connection refused, 5xx, 429): due again after an ``infra.backoff.Backoff``
  delay (exponential from ``retry.initial_s`` up to ``retry.max_s``, fully jittered; ``Retry-After`` honoured), for
  as long as it takes: there is no fixed number of tries;
- refused for good (``DeliveryError(retryable=False)``: a bad config, a 4xx a robot will never accept): kept as
  ``failed`` with the reason, visible to ``lifeline alerts notifications`` and the API, not tried again.

Order: a row waits while an older row of the same alert and channel is pending, so a channel gets one alert's
raise before its clear. When an older row of the alert failed for good, the next one delivered on that channel
says so in its text. What is dropped: an escalation whose alert has since been acknowledged or has returned to
normal (it asks for an acknowledgement nobody needs to give any more); it is recorded in the log as dropped. Nothing
else is: a raise is delivered even after its alert cleared (people see raise, then clear).

Several rules instances on one store share the outbox: a claim leases rows (``outbox.lease_s``), under SQLite's
write lock or PostgreSQL's ``FOR UPDATE SKIP LOCKED``, and a row whose instance died is due again when its lease
ends. A restart picks the pending rows up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from alerts.lease import holder_id
from alerts.lifecycle import State
from alerts.notify import Message, Notifier, NotifyConfig, Outcome
from alerts.notify.message import format_time
from alerts.store import AlertStore, ChannelQueue, QueueRow, Tx
from infra.backoff import Backoff
from infra.clock import WallClock
from infra.metrics import Metric, counter, gauge

__all__ = ["Claimed", "Delivery", "DeliveryCounters", "message_from_outbox", "message_to_outbox"]

log = logging.getLogger("lifeline.notify.outbox")


def message_to_outbox(msg: Message) -> dict[str, object]:
    data = dataclasses.asdict(msg)
    data["targets"] = list(msg.targets)
    return data


def message_from_outbox(data: dict[str, Any]) -> Message:
    return Message(**{**data, "targets": tuple(data.get("targets") or ())})


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row claimed for one try, its message as it goes out, and the failed rows its text reports."""

    row: QueueRow
    msg: Message
    reports: tuple[int, ...] = ()


@dataclass(slots=True)
class DeliveryCounters:
    delivered: int = 0
    failed: int = 0  # refused for good
    retried: int = 0  # tries that failed and will be tried again
    dropped: int = 0


class Delivery:
    """Delivers the outbox's rows; :meth:`run` until stopped, :meth:`wake` when rows were added."""

    def __init__(
        self,
        store: AlertStore,
        notifier: Notifier | None,
        config: NotifyConfig,
        clock: WallClock = time.time,
        rand: Callable[[], float] = random.random,
        claimant: str | None = None,
    ) -> None:
        """``claimant`` names this process on the rows it claims (default host:pid, as a partition's lease does)."""
        self.store = store
        self.claimant = claimant or holder_id()
        self.notifier = notifier
        self.config = config
        self.clock = clock
        self.rand = rand
        self.counters: dict[str, DeliveryCounters] = {name: DeliveryCounters() for name in config.channels}
        self.queues: list[ChannelQueue] = []  # the outbox per channel at the last pass
        self.queues_seen = False  # a pass has read the outbox (before that, ``queues`` says nothing)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._claimed: dict[asyncio.Task[None], int] = {}  # a try under way -> its row
        self._link_up: dict[str, bool] = {}
        self._start_logged = False

    def wake(self) -> None:
        """Rows were added: look now rather than at the next poll."""
        self._wake.set()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- the loop ----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, settle_s: float = 10.0) -> None:
        """Deliver until ``stop``; then wait up to ``settle_s`` for the tries under way, and release the rows of
        those still unfinished."""
        store_ok = True
        while not stop.is_set():
            self._wake.clear()  # before the pass: rows added during it wake the next one
            try:
                await self.pass_once()
            except SQLAlchemyError as exc:  # the store is unreachable or locked: the rows wait there, look again
                if store_ok:
                    log.warning("notification outbox unreachable error=%s (logged once until it answers)", exc)
                store_ok = False
            else:
                if not self._start_logged:
                    self._start_logged = True
                    waiting = sum(q.pending for q in self.queues)
                    if waiting:
                        log.info("notifications waiting in the outbox at start count=%d", waiting)
                if not store_ok:
                    log.info("notification outbox reachable again")
                store_ok = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self._wake), self.config.outbox.poll_s)
        await self.settle(settle_s)
        await self._release_unfinished()

    async def _release_unfinished(self) -> None:
        """At a stop: tries still under way are cancelled and their rows released (due at once for the next start
        or another instance, instead of after their lease)."""
        unfinished = dict(self._claimed)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(set(unfinished))
            await self.store.call(self._release, list(unfinished.values()))
            log.info("notification tries cut short by the stop count=%d (released)", len(unfinished))

    def _release(self, row_ids: list[int]) -> None:
        with self.store.begin() as tx:
            tx.release_notifications(row_ids)

    async def pass_once(self) -> int:
        """Send what the broker link's return made due, claim the rows due now and start a try for each (each
        in its own task, so a slow channel holds up no other). Returns how many were claimed."""
        if self.notifier is None:
            return 0
        now = self._now_ms()
        await self._watch_links(now)
        room = self.config.outbox.batch - len(self._tasks)
        claimed = await self.store.call(self._claim, now, room) if room > 0 else []
        for c in claimed:
            task = asyncio.ensure_future(self._try(c))
            self._tasks.add(task)
            self._claimed[task] = c.row.id
            task.add_done_callback(self._done)
        self.queues = await self.store.call(self.store.channel_queues)
        self.queues_seen = True
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._claimed.pop(task, None)

    async def settle(self, timeout_s: float) -> None:
        """Wait (bounded) for the tries under way."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def drain(self, timeout_s: float) -> None:
        """Deliver everything due now, in order, and wait for it (tests, and a stop): passes until one claims
        nothing and no try is under way, or ``timeout_s`` ran out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            claimed = await self.pass_once()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - loop.time()))
            elif not claimed:
                return

    async def _watch_links(self, now: int) -> None:
        assert self.notifier is not None
        for name in self.config.channels:
            up = self.notifier.link_up(name)
            if up and self._link_up.get(name) is False:
                woken = await self.store.call(self._wake_channel, name, now)
                log.info("notify channel=%s link is back: %d waiting notification(s) due now", name, woken)
            self._link_up[name] = up

    def _wake_channel(self, name: str, now: int) -> int:
        with self.store.begin() as tx:
            return tx.wake_channel(name, now)

    # -- store work (the store's worker thread) --------------------------------------------------------------

    def _claim(self, now: int, limit: int) -> list[Claimed]:
        with self.store.begin() as tx:
            out = []
            for row in tx.claim_notifications(now, int(self.config.outbox.lease_s * 1000), limit, self.claimant):
                why = _superseded(tx, row)
                if why:
                    self._drop(tx, row, why, now)
                    continue
                msg = message_from_outbox(row.message)
                failed = tx.unreported_failures(row.alert_id, row.channel, row.id) if row.alert_id else []
                if failed:
                    msg = _reporting(msg, failed, self.config.timezone)
                out.append(Claimed(row, msg, tuple(f.id for f in failed)))
            return out

    def _drop(self, tx: Tx, row: QueueRow, why: str, now: int) -> None:
        tx.notification_delivered(row.id)
        msg = message_from_outbox(row.message)
        self._log(tx, msg, row.channel, "", "", ok=False, attempts=row.attempts, error=f"dropped: {why}", now=now)
        self._counter(row.channel).dropped += 1
        log.info("notification dropped channel=%s alert=%s kind=%s reason=%s", row.channel, row.alert_id, row.kind, why)

    def _record(self, c: Claimed, o: Outcome, now: int) -> None:
        row, attempts = c.row, c.row.attempts + 1
        with self.store.begin() as tx:
            if o.ok:
                tx.notification_delivered(row.id)
                tx.mark_reported(c.reports)
                self._log(tx, c.msg, o.channel, o.type, o.target, ok=True, attempts=attempts, error="", now=now)
                return
            if not o.retryable:
                tx.notification_failed(row.id, attempts=attempts, error=o.error, now_ms=now)
                self._log(tx, c.msg, o.channel, o.type, o.target, ok=False, attempts=attempts, error=o.error, now=now)
                return
            tx.notification_retry(
                row.id, attempts=attempts, next_ms=now + self._wait_ms(row, o), error=o.error, now_ms=now
            )

    def _wait_ms(self, row: QueueRow, o: Outcome) -> int:
        retry = self.config.retry
        wait = Backoff(retry.initial_s, retry.max_s, retry.jitter, self.rand, attempts=row.attempts).next()
        if retry.honour_retry_after and o.retry_after_s is not None:
            wait = min(o.retry_after_s, retry.max_s)
        return int(wait * 1000)

    @staticmethod
    def _log(
        tx: Tx, msg: Message, channel: str, ctype: str, target: str, *, ok: bool, attempts: int, error: str, now: int
    ) -> None:
        tx.add_notification(
            ts_ms=now,
            message_id=msg.id,
            kind=msg.kind,
            audience=msg.audience,
            channel=channel,
            channel_type=ctype,
            target=target,
            ok=ok,
            attempts=attempts,
            error=error,
            alert_id=msg.alert_id,
            text=msg.text,
        )

    # -- one try ---------------------------------------------------------------------------------------------

    async def _try(self, c: Claimed) -> None:
        assert self.notifier is not None
        try:
            o = await self.notifier.attempt(c.row.channel, c.msg)
        except Exception as exc:  # a bug in a channel: kept as failed with the reason, the other rows go on
            log.exception("notify channel=%s failed unexpectedly", c.row.channel)
            o = Outcome(c.row.channel, "unknown", False, 1, f"internal error: {exc!r}", False, self._now_ms(), "")
        counters = self._counter(c.row.channel)
        if o.ok:
            counters.delivered += 1
        elif o.retryable:
            counters.retried += 1
        else:
            counters.failed += 1
            log.warning(
                "notification refused for good channel=%s alert=%s kind=%s error=%s (kept as failed)",
                c.row.channel,
                c.row.alert_id,
                c.row.kind,
                o.error,
            )
        try:
            await self.store.call(self._record, c, o, self._now_ms())
            self.wake()  # the next row of this alert on this channel may go now
        except SQLAlchemyError as exc:  # the outcome is lost: the row's lease runs out and it is tried again
            log.warning(
                "outcome not recorded channel=%s row=%d error=%s (tried again after the lease)",
                c.row.channel,
                c.row.id,
                exc,
            )

    def _counter(self, channel: str) -> DeliveryCounters:
        return self.counters.setdefault(channel, DeliveryCounters())

    # -- metrics ---------------------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        series = {
            "delivered": "notifications their channel confirmed",
            "failed": "notifications their channel refused for good (kept as failed)",
            "retried": "tries that failed and will be tried again",
            "dropped": "notifications dropped as no longer worth sending (an escalation of an acknowledged alert)",
        }
        for name, help_text in series.items():
            rows = {(ch,): getattr(c, name) for ch, c in self.counters.items()}
            yield counter(f"lifeline_notify_outbox_{name}_total", help_text, rows, ("channel",))
        now = self._now_ms()
        queues = {q.channel: q for q in self.queues}
        names = sorted(set(self.config.channels) | set(queues))
        empty = ChannelQueue("", 0, 0, None)
        pending = {(n,): queues.get(n, empty).pending for n in names}
        failed = {(n,): queues.get(n, empty).failed for n in names}
        age = {(n,): _age_s(queues.get(n, empty), now) for n in names}
        yield gauge("lifeline_notify_outbox_pending", "notifications waiting for their channel", pending, ("channel",))
        yield gauge("lifeline_notify_outbox_failed_rows", "notifications kept as failed", failed, ("channel",))
        yield gauge(
            "lifeline_notify_outbox_oldest_pending_age_seconds",
            "how long the oldest waiting notification has waited (0: none waiting)",
            age,
            ("channel",),
        )


def _age_s(q: ChannelQueue, now: int) -> float:
    return 0.0 if q.oldest_pending_ms is None else max(0.0, (now - q.oldest_pending_ms) / 1000)


def _superseded(tx: Tx, row: QueueRow) -> str:
    """Why ``row`` is no longer worth sending ('' when it is): an escalation of an alert that has since been
    acknowledged or returned to normal."""
    if row.kind != "escalation" or row.alert_id is None:
        return ""
    stored = tx.get_id(row.alert_id)
    if stored is None or stored.alert.state is State.ACTIVE_UNACK:
        return ""
    return f"alert {row.alert_id} is {stored.alert.state.value} now: the escalation asks for nothing any more"


def _reporting(msg: Message, failed: list[QueueRow], timezone: str) -> Message:
    """``msg`` with a line saying which earlier notifications of its alert this channel never got, and why."""
    lines = [
        f"Note: the earlier '{f.kind}' notification of this alert ({format_time(f.created_ms, timezone)}) could not "
        f"be delivered on this channel: {f.last_error}"
        for f in failed
    ]
    return dataclasses.replace(msg, text="\n".join([msg.text, *lines]))


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
