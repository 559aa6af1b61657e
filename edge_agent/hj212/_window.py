"""The HJ 212 server's QoS 1 window: messages wait in memory, go out through the transport's Link, and the server
is told which payload the broker acknowledged (it answers the station only then).

Memory is enough, and no file is written: a station keeps its data until it is answered, and sends it again when it
is not (HJ 212-2017 §6.5), so a crash loses nothing the station has not kept. The edge agent's Outbox (a SQLite file
written by a thread at most every 20 ms) held each message about 25 ms before it could be sent, and cost about a
fifth of the server's CPU a packet; this window sends a message as soon as the link has room.

Bounded like the Outbox: past ``max_messages`` or ``max_bytes`` the oldest waiting messages go (counted in
``stats.dropped`` and logged with the totals now and then): never answered, so their stations send them again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.config import PublishConfig
from edge_agent.outbox import OutMessage

log = logging.getLogger("lifeline.hj212")


@dataclass(slots=True)
class WindowStats:
    queued: int = 0
    sent: int = 0
    acked: int = 0
    resent: int = 0  # sent again after a lost connection
    dropped: int = 0  # the oldest waiting ones, over the quota
    dropped_bytes: int = 0


class AnsweringWindow:
    """``Window`` (infra.mqtt.link) of OutMessages; ``on_acked(payload)`` once the broker acknowledged one."""

    def __init__(
        self,
        publish: PublishConfig,
        on_acked: Callable[[bytes], None],
        on_dropped: Callable[[bytes], None] | None = None,
    ) -> None:
        """``on_dropped(payload)``: a waiting message went over the quota (it will never be acknowledged)."""
        self.max_inflight = publish.max_inflight
        self.max_messages = publish.buffer_max_messages
        self.max_bytes = publish.outbox_max_bytes
        self.stats = WindowStats()
        self._on_acked = on_acked
        self._on_dropped = on_dropped
        self._queue: deque[OutMessage] = deque()
        self._inflight: dict[int, OutMessage] = {}  # packet id -> message, in the order sent
        self._bytes = 0  # of the queued and in-flight payloads

    def put(self, message: OutMessage) -> None:
        self._queue.append(message)
        self._bytes += len(message.payload)
        self.stats.queued += 1
        if len(self) > self.max_messages or self._bytes > self.max_bytes:
            self._drop()

    def _drop(self) -> None:
        dropped = 0
        while self._queue and (len(self) > self.max_messages or self._bytes > self.max_bytes):
            old = self._queue.popleft()
            self._bytes -= len(old.payload)
            self.stats.dropped_bytes += len(old.payload)
            dropped += 1
            if self._on_dropped is not None:
                self._on_dropped(old.payload)
        self.stats.dropped += dropped
        if dropped and (self.stats.dropped == dropped or self.stats.dropped % 1000 < dropped):
            log.warning(
                "hj212 window full: oldest unsent messages dropped (their stations are not answered and send again)"
                " dropped_total=%d max_messages=%d max_bytes=%d",
                self.stats.dropped,
                self.max_messages,
                self.max_bytes,
            )

    # -- Window --------------------------------------------------------------------------------------------------
    def next_to_send(self, now: float) -> OutMessage | None:
        if not self._queue or len(self._inflight) >= self.max_inflight:
            return None
        return self._queue.popleft()

    def send_delay(self, now: float) -> float | None:
        return None  # nothing is paced: wait to be notified (a put, an ack)

    def sent(self, token: int, entry: OutMessage, now: float) -> None:
        self._inflight[token] = entry
        self.stats.sent += 1

    def unsent(self, entry: OutMessage) -> None:
        self._queue.appendleft(entry)

    def acked(self, token: int) -> bool:
        """The broker acknowledged ``token``; False if it was not in flight (a late ack from an old connection)."""
        entry = self._inflight.pop(token, None)
        if entry is None:
            return False
        self.stats.acked += 1
        self._bytes -= len(entry.payload)
        self._on_acked(entry.payload)
        return True

    def connection_lost(self) -> int:
        """What was in flight goes first again, in the order it was sent."""
        back = list(self._inflight.values())
        self._inflight.clear()
        self._queue.extendleft(reversed(back))
        self.stats.resent += len(back)
        return len(back)

    # -- counts -----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._queue) + len(self._inflight)

    @property
    def inflight(self) -> int:
        return len(self._inflight)
