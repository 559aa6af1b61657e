"""The Notifier: route a message to channels and deliver to each concurrently, with its own bounded retries.

A channel's failure never raises out of :meth:`Notifier.send`: it is in that channel's :class:`Outcome`. A channel
that starts failing is logged once, and once more when it delivers again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx

from alerts.notify import dingtalk, mqtt, smtp, webhook, wecom
from alerts.notify.config import (
    ChannelConfig,
    DingTalkConfig,
    EmailConfig,
    MqttConfig,
    NotifyConfig,
    WebhookConfig,
    WeComConfig,
)
from alerts.notify.errors import DeliveryError
from alerts.notify.message import Message
from infra.clock import WallClock
from infra.metrics import Metric, counter, render
from infra.mqtt import Publish

log = logging.getLogger("lifeline.notify")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message on one channel. ``target``: where it went, without secrets (the URL with its
    query keys masked, the mail addresses, the MQTT topic)."""

    channel: str
    type: str
    ok: bool
    attempts: int
    error: str
    retryable: bool
    ts_ms: int
    target: str
    retry_after_s: float | None = None  # the receiver asked to wait this long (HTTP 429/503 Retry-After)


@dataclass(slots=True)
class ChannelCounters:
    sent: int = 0
    failed: int = 0
    retries: int = 0


def route(config: NotifyConfig, msg: Message, now_ms: int) -> list[str]:
    """The channels for ``msg``: its ``targets`` if it names any, else the union of the channels of every matching
    route, deduplicated, in the order of the routes."""
    if msg.targets:
        return list(dict.fromkeys(msg.targets))
    names: dict[str, None] = {}
    for r in config.routes:
        if r.matches(msg.audience, msg.area, msg.severity, msg.kind, now_ms):
            names.update(dict.fromkeys(r.channels))
    return list(names)


def _target(cfg: ChannelConfig, msg: Message) -> str:
    if isinstance(cfg, WebhookConfig):
        return webhook.target(cfg)
    if isinstance(cfg, EmailConfig):
        return smtp.target(cfg)
    if isinstance(cfg, MqttConfig):
        return mqtt.target(msg)
    if isinstance(cfg, DingTalkConfig):
        return dingtalk.target(cfg)
    return wecom.target(cfg)


def backoff_s(config: NotifyConfig, retry_number: int) -> float:
    """The wait before retry ``retry_number`` (1-based): initial_s doubled each time, at most max_s."""
    r = config.retry
    return float(min(r.max_s, r.initial_s * 2 ** (retry_number - 1)))


class Notifier:
    """Delivers messages to the channels of ``config``.

    ``publish`` serves the mqtt channel; ``clock`` (epoch seconds) and ``sleep`` are injectable so that tests
    control time. Call :meth:`aclose` at the end (it closes the shared HTTP client)."""

    def __init__(
        self,
        config: NotifyConfig,
        publish: Publish | None = None,
        clock: WallClock = time.time,
        sleep: Sleep = asyncio.sleep,
        connected: Callable[[], bool] | None = None,
    ) -> None:
        """``connected`` says whether the mqtt channel's broker link is up (``Publisher.connected``): the outbox
        sends what waited on the mqtt channel as soon as it comes back."""
        self.config = config
        self.publish = publish
        self.connected = connected
        self.clock = clock
        self.sleep = sleep
        self.counters: dict[str, ChannelCounters] = {name: ChannelCounters() for name in config.channels}
        self.failing: set[str] = set()
        self._client = httpx.AsyncClient(follow_redirects=False)

    def route(self, msg: Message, now_ms: int) -> list[str]:
        return route(self.config, msg, now_ms)

    async def send(self, msg: Message) -> list[Outcome]:
        """Deliver ``msg`` to every routed channel concurrently; one Outcome per channel, in routing order."""
        names = self.route(msg, int(self.clock() * 1000))
        results = await asyncio.gather(*(self._send_one(name, msg) for name in names), return_exceptions=True)
        outcomes: list[Outcome] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Outcome):
                outcomes.append(result)
                continue
            if not isinstance(result, Exception):  # cancellation and the like: not ours to turn into an outcome
                raise result
            # A bug in a notifier must not cost the other channels their outcome: report it, with the traceback.
            log.error("notify channel=%s message=%s failed unexpectedly", name, msg.id, exc_info=result)
            outcomes.append(self._outcome(name, msg, False, 1, f"internal error: {result!r}", False))
        return outcomes

    async def attempt(self, name: str, msg: Message) -> Outcome:
        """One try of ``msg`` on channel ``name``, no retry (the outbox, ``alerts.delivery``, retries); a failure
        is in the Outcome (``retryable``, ``retry_after_s``), never raised."""
        cfg = self.config.channels.get(name)
        if cfg is None:
            return Outcome(
                name, "unknown", False, 1, f"no channel named {name!r} in the notify config", False, self._now_ms(), ""
            )
        counters = self.counters[name]
        try:
            await self._deliver(cfg, msg)
        except DeliveryError as exc:
            counters.failed += 1
            self._note_failure(name, cfg, msg, exc, 1)
            outcome = self._outcome(name, msg, False, 1, exc.message, exc.retryable)
            return dataclasses.replace(outcome, retry_after_s=exc.retry_after_s)
        counters.sent += 1
        if name in self.failing:
            self.failing.discard(name)
            log.info("notify channel=%s type=%s delivers again", name, cfg.type)
        return self._outcome(name, msg, True, 1, "", False)

    def link_up(self, name: str) -> bool:
        """Whether the channel's own link is up: the mqtt channel's broker connection; True for the others (they
        connect per message)."""
        cfg = self.config.channels.get(name)
        if isinstance(cfg, MqttConfig) and self.connected is not None:
            return self.connected()
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- one channel ---------------------------------------------------------------------------------------------

    async def _send_one(self, name: str, msg: Message) -> Outcome:
        cfg = self.config.channels.get(name)
        if cfg is None:
            return Outcome(
                name, "unknown", False, 0, f"no channel named {name!r} in the notify config", False, self._now_ms(), ""
            )
        counters = self.counters[name]
        retry = self.config.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._deliver(cfg, msg)
            except DeliveryError as exc:
                if not exc.retryable or attempt >= retry.attempts:
                    counters.failed += 1
                    self._note_failure(name, cfg, msg, exc, attempt)
                    return self._outcome(name, msg, False, attempt, exc.message, exc.retryable)
                counters.retries += 1
                wait = backoff_s(self.config, attempt)
                if retry.honour_retry_after and exc.retry_after_s is not None:
                    wait = min(exc.retry_after_s, retry.max_s)
                await self.sleep(wait)
                continue
            counters.sent += 1
            if name in self.failing:
                self.failing.discard(name)
                log.info("notify channel=%s type=%s delivers again", name, cfg.type)
            return self._outcome(name, msg, True, attempt, "", False)

    async def _deliver(self, cfg: ChannelConfig, msg: Message) -> None:
        now_s, tz = self.clock(), self.config.timezone
        if isinstance(cfg, WebhookConfig):
            await webhook.deliver(cfg, msg, self._client, now_s)
        elif isinstance(cfg, EmailConfig):
            await smtp.deliver(cfg, msg, now_s, tz)
        elif isinstance(cfg, MqttConfig):
            await mqtt.deliver(cfg, msg, self.publish)
        elif isinstance(cfg, DingTalkConfig):
            await dingtalk.deliver(cfg, msg, self._client, now_s, tz)
        elif isinstance(cfg, WeComConfig):
            await wecom.deliver(cfg, msg, self._client, now_s, tz)

    def _note_failure(self, name: str, cfg: ChannelConfig, msg: Message, exc: DeliveryError, attempts: int) -> None:
        if name in self.failing:
            return  # logged when it started failing
        self.failing.add(name)
        log.warning(
            "notify channel=%s type=%s failing message=%s audience=%s site=%s device=%s attempts=%d retryable=%s "
            "error=%r (logged once until it delivers again)",
            name,
            cfg.type,
            msg.id,
            msg.audience,
            msg.site,
            msg.device,
            attempts,
            exc.retryable,
            exc.message,
        )

    def _outcome(self, name: str, msg: Message, ok: bool, attempts: int, error: str, retryable: bool) -> Outcome:
        cfg = self.config.channels[name]
        return Outcome(name, cfg.type, ok, attempts, error, retryable, self._now_ms(), _target(cfg, msg))

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- metrics -------------------------------------------------------------------------------------------------

    def metrics_text(self) -> str:
        """Per-channel counters in Prometheus text format."""
        return render(self)

    def collect(self) -> Iterator[Metric]:
        series = {
            "sent_total": "messages delivered",
            "failed_total": "messages given up on (not retryable, or out of attempts)",
            "retries_total": "delivery attempts that were tried again",
        }
        for metric, help_text in series.items():
            attr = metric.removesuffix("_total")
            rows = {(name,): getattr(c, attr) for name, c in self.counters.items()}
            yield counter(f"lifeline_notify_{metric}", help_text, rows, ("channel",))
