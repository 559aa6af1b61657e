"""Two small policies of the outbox, pure: the backlog's replay rate, and drop episodes logged once each."""

from __future__ import annotations

import logging

log = logging.getLogger("lifeline.edge.outbox")

RECOVER = 0.9  # a full episode ends once the outbox is back under 90 % of its quota


class TokenBucket:
    """At most ``rate`` a second, in bursts of at most a fifth of a second's worth; time is a parameter."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate * 0.2)
        self._tokens = self.burst
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def ready(self, now: float) -> bool:
        """One may go now."""
        self._refill(now)
        return self._tokens >= 1.0

    def take(self) -> None:
        self._tokens -= 1.0

    def wait_s(self, now: float) -> float:
        """Seconds until the next may go; at least 20 ms, so that a wake sends a batch."""
        self._refill(now)
        return max(0.02, (1.0 - self._tokens) / self.rate)


class DropEpisodes:
    """Logs a full outbox once when it starts dropping and once when it is back under RECOVER of its quota."""

    def __init__(self, site: str, max_messages: int, max_bytes: int) -> None:
        self.site = site
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.current: tuple[int, int] | None = None  # (dropped, bytes) in the episode under way

    def dropped(self, n: int, size: int, total: int) -> None:
        if self.current is None:
            self.current = (0, 0)
            log.warning(
                "outbox full site=%s max_bytes=%d max_messages=%d action=dropping the oldest (counted in "
                "outbox_dropped, logged again when it recovers) dropped_now=%d dropped_total=%d",
                self.site,
                self.max_bytes,
                self.max_messages,
                n,
                total,
            )
        self.current = (self.current[0] + n, self.current[1] + size)

    def held(self, count: int, size: int, total: int) -> None:
        """What the outbox holds after a write that dropped nothing."""
        if self.current is None or count > RECOVER * self.max_messages or size > RECOVER * self.max_bytes:
            return
        n, freed = self.current
        self.current = None
        log.warning(
            "outbox below its quota again site=%s dropped=%d dropped_bytes=%d (this episode) dropped_total=%d "
            "messages=%d bytes=%d",
            self.site,
            n,
            freed,
            total,
            count,
            size,
        )
