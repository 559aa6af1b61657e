"""A publisher for services that publish now and then (alert events, notifications, Stored confirmations): a
:class:`~infra.mqtt.link.Link` without subscriptions, started on the service's loop.

``publish`` waits for the broker's PUBACK and raises :class:`PublishError` when it does not come; the edge
agent's high-rate path is the link's windowed QoS 1 publish (edge_agent/outbox.py), not this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from infra.mqtt.link import Link, PublishError, Sendable
from infra.mqtt.settings import BrokerConfig

__all__ = ["Publish", "PublishError", "PublishNowait", "Publisher"]

# What a component that publishes is given (a ``Publisher``'s methods, or a fake in tests): topic, payload.
Publish = Callable[[str, bytes], Awaitable[None]]  # ``Publisher.publish``: returns once the broker has it, or raises
PublishNowait = Callable[[str, bytes], bool]  # ``Publisher.publish_nowait``: handed over, or False (count it)


class Publisher:
    """``start()`` on the running loop, ``await close()`` at the end."""

    def __init__(self, broker: BrokerConfig, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.link: Link[Sendable] = Link("publisher", broker, client_id)
        self._stop = asyncio.Event()
        self._task: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        return self.link.connected

    def start(self) -> None:
        """Connect in the background (and again after every loss) on the running loop; never blocks."""
        if self._task is None:
            self._task = asyncio.ensure_future(self.link.run(self._stop))

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout_s: float = 10.0
    ) -> None:
        """Publish and wait until the broker has it (QoS 1: its PUBACK); :class:`PublishError` otherwise."""
        await self.link.publish(topic, payload, qos=qos, retain=retain, timeout_s=timeout_s)

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Hand over without waiting; False when not connected or refused (the caller counts it)."""
        return self.link.publish_nowait(topic, payload, qos=qos, retain=retain)
