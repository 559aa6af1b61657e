"""The edge's dead letters (sensor messages it cannot decode, refused commands and confirmations, refused HJ 212
packets): kept in the one dead-letter store (``infra.deadletter``), never dropped in silence."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from infra.deadletter import DeadLetterStore

__all__ = ["DeadLetters"]

log = logging.getLogger("lifeline.edge.deadletter")

IN_MEMORY_KEEP = 1000  # letters kept without a file (an agent configured to keep none on disk)


class DeadLetters:
    """The store in ``path`` (``None``: the last ``IN_MEMORY_KEEP`` in memory), with the edge's habits: a bad source
    is logged once and counted after; a store that cannot write (a full disk) is counted and logged, never raised
    into the message path (the message was unusable either way: nothing else is lost)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        source: str = "edge",
        max_letters: int = 100_000,
        max_bytes: int | None = None,
    ) -> None:
        """``max_bytes``: the store's byte quota (payloads and reasons; the oldest go past it, counted)."""
        self.store = DeadLetterStore(
            path, source=source, max_letters=max_letters if path else IN_MEMORY_KEEP, max_bytes=max_bytes
        )
        self.count = 0  # kept by this process (the dead_letters_total metric)
        self.keep_failures = 0
        self._topics_logged: set[str] = set()

    @property
    def path(self) -> Path | None:
        return self.store.path

    def add(
        self, received_ms: int, topic: str, payload: bytes, reason: str, *, stage: str, replayable: bool = False
    ) -> None:
        """Keep a letter; ``replayable``: publishing it again on ``topic`` is a meaningful retry (a sensor message
        once its profile is fixed), not so a command (it was refused for a reason and has a time to live)."""
        try:
            self.store.add(received_ms, topic, payload, reason, stage=stage, replayable=replayable)
        except sqlite3.Error as exc:
            self.keep_failures += 1
            if self.keep_failures in (1, 10, 100, 1000) or self.keep_failures % 10000 == 0:
                log.error(  # noqa: TRY400 - a classified failure with a named action: no traceback
                    "dead-letter store failing path=%s topic=%s reason=%r action=count total=%d",
                    self.store.path,
                    topic,
                    str(exc),
                    self.keep_failures,
                )
            return
        self.count += 1
        if topic not in self._topics_logged:  # log a bad source once, count the rest
            self._topics_logged.add(topic)
            log.warning(
                "dead letter topic=%s stage=%s reason=%r (further ones on this topic are counted)", topic, stage, reason
            )

    def close(self) -> None:
        self.store.close()
