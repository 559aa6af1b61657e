"""The one retry delay every Lifeline loop uses: exponential, capped, with full jitter.

Full jitter (the delay drawn uniformly from ``[0, min(cap, initial * 2**n)]``) keeps a crowd of clients that lost
the same server from coming back in step: after a broker restart, a thousand sensors and edges spread their
reconnects over the window instead of all knocking at once. The first retry comes within ``initial_s`` (about a
second by default), the wait never exceeds ``max_s``, and ``reset`` starts over after a success.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BackoffConfig(BaseModel):
    """How a loop waits between failed attempts (a component's config embeds it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_s: float = Field(default=1.0, gt=0, le=600, description="the first retry comes within this many seconds")
    max_s: float = Field(default=30.0, gt=0, le=86400, description="the longest wait between two attempts")
    jitter: bool = Field(default=True, description="full jitter (uniform in [0, delay]); off only for tests")

    @model_validator(mode="after")
    def _order(self) -> BackoffConfig:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s:g}) is less than initial_s ({self.initial_s:g})")
        return self


@dataclass(slots=True)
class Backoff:
    """Delays for one retry loop: ``next()`` after a failure, ``reset()`` after a success.

    ``rand`` is passed in so tests can fix it (``lambda: 1.0`` gives the ceiling of each step)."""

    initial_s: float = 1.0
    max_s: float = 30.0
    jitter: bool = True
    rand: Callable[[], float] = field(default=random.random)
    attempts: int = 0

    @classmethod
    def of(cls, config: BackoffConfig, rand: Callable[[], float] = random.random) -> Backoff:
        return cls(config.initial_s, config.max_s, config.jitter, rand)

    def ceiling(self) -> float:
        """The upper bound of the next delay (no jitter applied)."""
        return min(self.max_s, self.initial_s * float(2 ** min(self.attempts, 62)))

    def next(self) -> float:
        """The delay before the next attempt, and one failure more counted."""
        top = self.ceiling()
        self.attempts += 1
        return top * self.rand() if self.jitter else top

    def reset(self) -> None:
        self.attempts = 0
