"""Messages the agent could not use are kept, with where they came from and why: never dropped in silence."""

from __future__ import annotations

import base64
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger("lifeline.edge.deadletter")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    ts_ms: int
    topic: str
    payload: bytes
    error: str

    def to_json(self) -> bytes:
        try:
            text: str | None = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        record = {"ts": self.ts_ms, "topic": self.topic, "error": self.error}
        if text is not None:
            record["payload"] = text
        else:
            record["payload_b64"] = base64.b64encode(self.payload).decode("ascii")
        return orjson.dumps(record)


class DeadLetters:
    """The last ``keep`` dead letters in memory, and every one appended to ``path`` (JSON lines) if given."""

    def __init__(self, path: Path | None = None, keep: int = 1000) -> None:
        self.path = path
        self.recent: deque[DeadLetter] = deque(maxlen=keep)
        self.count = 0
        self._topics_logged: set[str] = set()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, letter: DeadLetter) -> None:
        self.count += 1
        self.recent.append(letter)
        if self.path is not None:
            with self.path.open("ab") as f:
                f.write(letter.to_json() + b"\n")
        if letter.topic not in self._topics_logged:  # log a bad source once, count the rest
            self._topics_logged.add(letter.topic)
            log.warning("dead letter topic=%s error=%r (further ones on this topic are counted)", letter.topic,
                        letter.error)  # fmt: skip
