"""A rules partition's lease in the alert store: one engine runs a partition, a hot standby waits for it.

A partition's shared group must have exactly one member: a second member would get some of a device's samples and
judge them against a state of its own. So a standby joins the group (resumes the partition's MQTT session) only
once it holds the partition's lease, a row of ``rules_leases`` named by the partition's state name:

- the active engine renews it every ``renew_s``; it is valid for ``ttl_s`` from the renewal;
- a standby polls every ``poll_s`` and takes the row once it has expired (its ``epoch`` goes up by one), then reads
  the engine's saved state from the store and resumes the partition's session: the broker hands it what the old
  engine had not acknowledged, which the saved state has not seen (or has, and then raises nothing twice);
- every write of the active engine (a batch of transitions with its checkpoint, a checkpoint alone) first checks in
  its own transaction that the row still names it at its epoch (:meth:`Lease.fence`): an engine that lost its lease
  (paused, cut off from the store) never writes again, whatever the clocks say, and stops.

The check takes the row's lock (an UPDATE; SQLite's write transaction locks the whole file anyway), so a take waits
for a batch being written and then sees it: nothing committed is lost, nothing is judged twice. Clocks only bound how
soon a standby takes over (the expiry is in the holder's wall clock, so keep the machines' clocks in step, NTP).

An engine paused in the middle of a transaction (a stopped process, a frozen virtual machine) holds that lock. On
PostgreSQL the engine's sessions end a transaction left idle for the lease's time (:func:`guard_engine`:
``idle_in_transaction_session_timeout``), which frees the lock, and a take never waits for it (``NOWAIT``: the
standby looks again at its next poll). On SQLite a paused writer holds the whole file: nobody writes, the standby
included, until it resumes (and then it still holds the lease). SQLite is one machine's store; a standby that must
survive a machine, or a frozen one, needs PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from alerts import _tables as t
from alerts.store import AlertStore, Tx

__all__ = [
    "Lease",
    "LeaseKeeper",
    "LeaseLost",
    "LeaseRefused",
    "check",
    "guard_engine",
    "holder_id",
    "renew",
    "take",
]

_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for NOWAIT on a locked row

log = logging.getLogger("lifeline.rules.lease")


class LeaseLost(Exception):
    """This engine no longer holds its partition's lease (another took it): it must not write, and stops."""


class LeaseRefused(Exception):
    """The lease names another MQTT session: taking it would make this engine a second member of the group."""


@dataclass(frozen=True, slots=True)
class Lease:
    name: str  # the partition's state name (rules.engine.<label>)
    holder: str  # host:pid of the engine
    session: str  # the partition's MQTT client id
    epoch: int  # the fencing token: grows at every change of holder
    expires_ms: int
    previous: str | None = None  # the holder this one took over from (its claimed notifications are freed)


def holder_id() -> str:
    """This process, as a lease names its holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- the row, one transaction's work each (called through Tx) ----------------------------------------------------


def take(conn: Connection, name: str, holder: str, session: str, now_ms: int, ttl_ms: int) -> Lease | None:
    """Take the lease if nobody holds it or it has expired; None when another engine holds it. Raises
    :class:`LeaseRefused` when the row names another session (see :class:`LeaseRefused`)."""
    c = t.rules_leases.c
    stmt = select(t.rules_leases).where(c.name == name)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(nowait=True)  # the holder is writing (or paused mid-write): look again later
    row = conn.execute(stmt).one_or_none()
    if row is None:
        values = {"name": name, "holder": holder, "session": session, "epoch": 1}
        conn.execute(insert(t.rules_leases).values(**values, acquired_ms=now_ms, expires_ms=now_ms + ttl_ms))
        return Lease(name, holder, session, 1, now_ms + ttl_ms)
    if row.session != session:
        raise LeaseRefused(
            f"partition {name!r} runs with MQTT session {row.session!r}, this engine's is {session!r}: it would be a "
            "second member of the partition's shared group and split its devices' samples (give the standby the "
            "active engine's subscription.client_id and account)"
        )
    if row.holder != holder and row.expires_ms > now_ms:
        return None
    epoch = row.epoch if row.holder == holder else row.epoch + 1
    done = conn.execute(
        update(t.rules_leases)
        .where(c.name == name, c.epoch == row.epoch, c.holder == row.holder)
        .values(holder=holder, epoch=epoch, acquired_ms=now_ms, expires_ms=now_ms + ttl_ms)
    )
    if done.rowcount != 1:
        return None
    return Lease(name, holder, session, epoch, now_ms + ttl_ms, None if row.holder == holder else row.holder)


def renew(conn: Connection, lease: Lease, now_ms: int, ttl_ms: int) -> Lease | None:
    """Extend the lease by ``ttl_ms`` from now; None when it was taken over (the epoch moved on)."""
    c = t.rules_leases.c
    done = conn.execute(
        update(t.rules_leases)
        .where(c.name == lease.name, c.holder == lease.holder, c.epoch == lease.epoch)
        .values(expires_ms=now_ms + ttl_ms)
    )
    if done.rowcount != 1:
        return None
    return Lease(lease.name, lease.holder, lease.session, lease.epoch, now_ms + ttl_ms)


def check(conn: Connection, lease: Lease) -> None:
    """Raise :class:`LeaseLost` unless ``lease`` still holds (same holder and epoch). An UPDATE that changes nothing:
    it locks the row until the transaction ends, so a take waits for this transaction's writes."""
    c = t.rules_leases.c
    done = conn.execute(
        update(t.rules_leases)
        .where(c.name == lease.name, c.holder == lease.holder, c.epoch == lease.epoch)
        .values(epoch=c.epoch)
    )
    if done.rowcount != 1:
        raise LeaseLost(f"partition {lease.name!r}: lease epoch {lease.epoch} of {lease.holder} was taken over")


def guard_engine(engine: Engine, ttl_s: float) -> None:
    """On PostgreSQL, end this engine's transactions left idle longer than ``ttl_s`` (the server rolls them back and
    closes the session): a paused engine then frees the lease row's lock for its standby. An engine's own
    transactions run their statements back to back, far below a lease's time."""
    if engine.dialect.name != "postgresql":
        return
    timeout_ms = max(1000, int(ttl_s * 1000))

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
        cursor.close()
        dbapi_conn.commit()

    event.listen(engine, "connect", on_connect)


# --- the engine's side -----------------------------------------------------------------------------------------


class LeaseKeeper:
    """Wait for a partition's lease, then keep it (renew) until stopped or lost; ``fence`` checks it in a write."""

    def __init__(
        self,
        store: AlertStore,
        name: str,
        session: str,
        *,
        ttl_s: float,
        renew_s: float,
        poll_s: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.name = name
        self.session = session
        self.ttl_ms = int(ttl_s * 1000)
        self.renew_s = renew_s
        self.poll_s = poll_s
        self.holder = holder or holder_id()
        self.clock = clock
        self.lease: Lease | None = None
        self.lost = False
        self.waited_s = 0.0  # how long the last acquire waited

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _take(self) -> Lease | None:
        """Take the lease; on a takeover, free the notifications the previous holder had claimed (it is gone: they
        are due at once, not after the outbox's lease), in the same transaction."""
        try:
            with self.store.begin() as tx:
                lease = tx.run(take, self.name, self.holder, self.session, self._now_ms(), self.ttl_ms)
                if lease is not None and lease.previous is not None:
                    freed = tx.release_claims_of(lease.previous)
                    if freed:
                        log.info("notifications freed from %s count=%d", lease.previous, freed)
                return lease
        except IntegrityError:
            return None  # another engine inserted the row first (PostgreSQL): it holds the lease
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                return None  # the holder is in a transaction on the row: it is alive, or soon ended by the server
            raise

    def _renew(self, lease: Lease) -> Lease | None:
        with self.store.begin() as tx:
            return tx.run(renew, lease, self._now_ms(), self.ttl_ms)

    async def acquire(self, stop: asyncio.Event) -> Lease | None:
        """Poll until this engine holds the lease (returned) or ``stop`` is set (None). Raises
        :class:`LeaseRefused`."""
        started = time.monotonic()
        said = False
        while not stop.is_set():
            try:
                lease = await self.store.call(self._take)
            except SQLAlchemyError as exc:  # the store is away: a standby keeps waiting, logged once
                lease = None
                if not said:
                    log.warning("lease store unreachable partition=%s error=%s (retrying)", self.name, exc)
                    said = True
            if lease is not None:
                self.lease, self.lost = lease, False
                self.waited_s = time.monotonic() - started
                log.info(
                    "lease taken partition=%s holder=%s epoch=%d waited_s=%.1f",
                    self.name,
                    self.holder,
                    lease.epoch,
                    self.waited_s,
                )
                return lease
            if not said:
                log.info("standby: partition=%s is held by another engine; waiting for its lease", self.name)
                said = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
        return None

    async def keep(self, stop: asyncio.Event, on_lost: Callable[[], None]) -> None:
        """Renew every ``renew_s`` until ``stop``. When the lease was taken over, or could not be renewed before it
        ran out (the store away), mark it lost and call ``on_lost`` (the engine stops)."""
        lease = self.lease
        assert lease is not None, "acquire first"
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_s)
            if stop.is_set():
                return
            try:
                renewed = await self.store.call(self._renew, lease)
            except SQLAlchemyError as exc:
                if self._now_ms() < lease.expires_ms:
                    log.warning("lease not renewed partition=%s error=%s (retrying)", self.name, exc)
                    continue
                renewed = None
            if renewed is None:
                self.lost = True
                log.error("lease lost partition=%s holder=%s epoch=%d: stopping", self.name, self.holder, lease.epoch)
                on_lost()
                return
            self.lease = lease = renewed

    async def still_held(self) -> bool:
        """Whether the lease still names this engine (asked after a failure: was it taken over meanwhile?)."""
        lease = self.lease
        if lease is None or self.lost:
            return False

        def ask() -> bool:
            with self.store.begin() as tx:
                tx.run(check, lease)
            return True

        try:
            return await self.store.call(ask)
        except LeaseLost:
            self.lost = True
            return False
        except SQLAlchemyError:
            return True  # the store does not answer: nothing known (the caller's own error stands)

    def fence(self, tx: Tx) -> None:
        """In a write transaction of the engine: raise :class:`LeaseLost` unless this engine still holds the lease."""
        if self.lease is None or self.lost:
            raise LeaseLost(f"partition {self.name!r}: no lease held")
        tx.run(check, self.lease)

    async def release(self) -> None:
        """Let the lease expire now (a clean stop): a standby takes over at its next poll."""
        lease = self.lease
        if lease is None or self.lost:
            return

        def expire() -> None:
            with self.store.begin() as tx:
                tx.run(renew, lease, self._now_ms(), -1)

        try:
            await self.store.call(expire)
        except SQLAlchemyError as exc:
            log.warning("lease not released partition=%s error=%s (it runs out by itself)", self.name, exc)
        self.lease = None
