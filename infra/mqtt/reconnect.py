"""The one reconnect loop every Lifeline MQTT client comes back through."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from infra.backoff import Backoff

Wait = Callable[[asyncio.Event, float], Awaitable[None]]  # wait until the event is set or the delay has passed


async def _wait(stop: asyncio.Event, delay_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)


async def keep_connected(
    session: Callable[[], Awaitable[bool]], backoff: Backoff, stop: asyncio.Event, wait: Wait = _wait
) -> None:
    """Run ``session()`` (one connection: connect, serve until it is lost) again and again until ``stop`` is set.

    ``session`` returns whether the broker accepted the connection; after one that was, the backoff starts over,
    so the first retry after a lost broker comes within the backoff's first step (about a second), and failed
    attempts then wait exponentially longer, fully jittered, up to its cap. ``wait`` is passed in by tests."""
    while not stop.is_set():
        if await session():
            backoff.reset()
        if stop.is_set():
            return
        await wait(stop, backoff.next())
