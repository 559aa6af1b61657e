"""The agent's own health, pure: what went wrong with the outbox file or the sensor link, in a word for rules and
metrics and in a sentence for people.

The agent publishes it as telemetry of its pseudo-device ``edge`` (profile ``edge_agent``), so it travels the way
every reading does (the bridge stores it, the rules engine judges it: rules/packs/edge.yaml), and exposes the same
counts as Prometheus metrics. The sentences are what an operator reads in the alert, e.g. "outbox disk full: 0 bytes
free on /var/lib/lifeline/edge/s1; keeping 2,310 messages in memory" (``outbox_write_problem``).
"""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edge_agent.stats import DeviceStats


class OutboxFault(StrEnum):
    """Why the outbox file cannot be written (health point ``outbox_fault``; none: ``""``)."""

    DISK_FULL = "disk_full"  # SQLITE_FULL, ENOSPC, EDQUOT: the file system (or the user's quota) is full
    WRITE_FAILED = "write_failed"  # any other SQLite or OS error (I/O error, read-only file system, locked, ...)


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def classify(exc: BaseException) -> OutboxFault | None:
    """The fault behind a failed outbox write; None when it is no storage error at all (a bug: let it rise)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc):
            return OutboxFault.DISK_FULL
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError) and cause.errno in _FULL_ERRNOS:
            return OutboxFault.DISK_FULL
        return OutboxFault.WRITE_FAILED
    if isinstance(exc, OSError):
        return OutboxFault.DISK_FULL if exc.errno in _FULL_ERRNOS else OutboxFault.WRITE_FAILED
    return None


def free_bytes(folder: Path | None) -> int | None:
    """Bytes free to this process in ``folder``'s file system (None: no folder, or it cannot be asked)."""
    if folder is None:
        return None
    try:
        return shutil.disk_usage(folder).free
    except OSError:  # the folder went away or cannot be read: the health says "unknown", not a wrong number
        return None


DEFAULT_MIN_FREE_BYTES = 1 << 20  # publish.outbox_min_free_bytes


@dataclass(slots=True)
class OutboxFaultLatch:
    """The outbox fault as the health reports it: raised by a failed write, latched until a report, held while the
    disk stays short; time is a parameter.

    A full disk does not fail every write: SQLite reuses the pages its journal frees (a checkpoint), so between two
    failures writes succeed at 0 bytes free, and a fault cleared by the next good write lasted about a second, which
    a health report every ``health_interval_s`` mostly missed; and while acknowledged rows free pages in the file,
    no write may fail at all. So: a report says what failed since the report before (a failure for lack of space
    wins: "disk full"); with less than ``min_free_bytes`` free on the outbox's file system a report says "disk full"
    though no write failed yet, and a fault is held as long; it clears at a report only after ``hold_s`` (a report
    interval) without a failed write, with the last write good and the space back."""

    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES
    hold_s: float = 10.0
    fault: OutboxFault | None = None  # as reported (and as the metric shows it); None: none held
    error: str = ""  # the held fault's error, as SQLite or the OS said it
    _since_report: OutboxFault | None = None  # the worst failure since the last report
    _since_report_error: str = ""
    _last_failure: float | None = None  # monotonic
    _last_write_ok: bool = True

    def failed(self, fault: OutboxFault, error: str, now: float) -> None:
        """A write failed: the fault is raised at once (and kept for the next report, whatever comes meanwhile)."""
        self._last_failure, self._last_write_ok = now, False
        if self._since_report is not OutboxFault.DISK_FULL:
            self._since_report, self._since_report_error = fault, error
        if self.fault is not OutboxFault.DISK_FULL or fault is OutboxFault.DISK_FULL:
            self.fault, self.error = fault, error

    def written(self) -> None:
        """A write went in."""
        self._last_write_ok = True

    def report(self, now: float, free: int | None) -> OutboxFault | None:
        """The fault for the report made now (``free``: bytes free on the outbox's file system, None: unknown)."""
        if self._since_report is not None:
            self.fault, self.error = self._since_report, self._since_report_error
            self._since_report, self._since_report_error = None, ""
            return self.fault
        space = free is None or free >= self.min_free_bytes
        if self.fault is None:
            if not space:  # the next write that must grow a file fails: full already, though none failed yet
                self.fault, self.error = OutboxFault.DISK_FULL, f"{free:,} bytes free, under {self.min_free_bytes:,}"
            return self.fault
        quiet = self._last_failure is None or now - self._last_failure >= self.hold_s
        if self._last_write_ok and space and quiet:
            self.fault, self.error = None, ""
        return self.fault


@dataclass(frozen=True, slots=True)
class OutboxCondition:
    """What the outbox is going through, as the agent sees it when it publishes its health."""

    fault: OutboxFault | None
    error: str  # the last write's error, as SQLite or the OS said it
    folder: Path | None
    free_bytes: int | None
    unwritten: int  # messages held in memory only, waiting for the file
    memory_dropped: int  # of those, dropped over memory_max_messages (this run)
    quota_full: bool
    messages: int
    max_messages: int
    bytes: int
    max_bytes: int
    dropped: int  # over the quota, since the file was made


def write_problem(c: OutboxCondition) -> str:
    """The outbox file cannot be written, in one sentence ("" when it can)."""
    if c.fault is None:
        return ""
    where = str(c.folder) if c.folder is not None else "its folder"
    if c.fault is OutboxFault.DISK_FULL:
        free = f"{c.free_bytes:,} bytes" if c.free_bytes is not None else "no space"
        head = f"outbox disk full: {free} free on {where}"
    else:
        head = f"outbox cannot write its file in {where} ({c.error})"
    held = f"keeping {c.unwritten:,} messages in memory"
    if c.memory_dropped:
        held += f" ({c.memory_dropped:,} oldest dropped over the memory limit)"
    return f"{head}; {held}"


def quota_problem(c: OutboxCondition) -> str:
    """The outbox is over its quota, in one sentence ("" when it is not)."""
    if not c.quota_full:
        return ""
    return (
        f"outbox quota full: {c.messages:,} of {c.max_messages:,} messages, {c.bytes:,} of {c.max_bytes:,} bytes; "
        f"dropping the oldest ({c.dropped:,} dropped so far)"
    )


@dataclass(slots=True)
class LinkWatch:
    """The sensor link's ups and downs (fed by the link's ``on_state``), counted; time is a parameter."""

    where: str  # the broker, for the sentence
    connected: bool = False
    losses: int = 0  # connections lost (this run)
    sessions_lost: int = 0  # reconnects where the broker no longer had the link's session: what was sent is gone
    down_since: float | None = None  # monotonic; None while connected
    _ever_up: bool = False

    def changed(self, up: bool, now: float, session_present: bool) -> None:
        if up:
            if self._ever_up and not session_present:
                self.sessions_lost += 1
            self._ever_up = True
            self.connected, self.down_since = True, None
            return
        if self.connected:
            self.losses += 1
        self.connected = False
        if self.down_since is None:
            self.down_since = now

    def down_s(self, now: float) -> float:
        return 0.0 if self.down_since is None else max(0.0, now - self.down_since)

    def problem(self, now: float) -> str:
        """The link is down, in one sentence ("" while it is up)."""
        if self.connected:
            return ""
        return f"sensor link down for {self.down_s(now):.0f} s (broker {self.where}), lost {self.losses} times this run"


MODBUS_HEALTH_MAX_DEVICES = 20  # modbus_health lists the troubled devices, at most this many (the worst first)


def modbus_health(stats: Mapping[str, DeviceStats]) -> dict[str, dict[str, object]]:
    """Each troubled Modbus device's health (answers, exceptions by code, retries, last error), worst first."""
    troubled = [(device, st) for device, st in stats.items() if st.requests and st.troubled]
    troubled.sort(key=lambda item: (not item[1].last_error, -sum(item[1].exceptions().values()), item[0]))
    return {device: st.health() for device, st in troubled[:MODBUS_HEALTH_MAX_DEVICES]}


def modbus_problem(stats: Mapping[str, DeviceStats]) -> str:
    """The Modbus devices that are offline, in one sentence with each one's reason ("" when none is), e.g.
    "1 Modbus device(s) offline: drive1: gateway: target did not answer (check unit id, RS-485 wiring, baud rate)
    (exceptions 12 × 0B)"."""
    offline = sorted((device, st) for device, st in stats.items() if st.offline_reason)
    if not offline:
        return ""
    parts = []
    for device, st in offline[:5]:
        codes = ", ".join(f"{n} × {code}" for code, n in st.exceptions().items())
        parts.append(f"{device}: {st.offline_reason}" + (f" (exceptions {codes})" if codes else ""))
    more = f"; and {len(offline) - 5} more" if len(offline) > 5 else ""
    return f"{len(offline)} Modbus device(s) offline: " + "; ".join(parts) + more


def modbus_values(stats: Mapping[str, DeviceStats]) -> dict[str, int | str]:
    """The health points of the site's Modbus devices (catalogue/edge_agent.yaml); none without Modbus devices."""
    modbus = {device: st for device, st in stats.items() if st.requests}
    if not modbus:
        return {}
    return {
        "modbus_devices_offline": sum(1 for st in modbus.values() if st.offline_reason),
        "modbus_exceptions": sum(sum(st.exceptions().values()) for st in modbus.values()),
        "modbus_problem": modbus_problem(modbus),
        "modbus_health": json.dumps(modbus_health(modbus), separators=(",", ":"), ensure_ascii=False),
    }


TAKEOVER_HOLD_S = 600.0  # a takeover stays in the health (and its alert raised) for 10 minutes after the last one
BROKER_UPTIME_TOPIC = "$SYS/broker/uptime"  # Mosquitto's, retained, "<n> seconds", every sys_interval
_SESSION_TAKEN_OVER = 0x8E  # MQTT 5 §3.14.2.1 (infra.mqtt.SESSION_TAKEN_OVER)


def parse_uptime(payload: bytes) -> int | None:
    """Seconds from Mosquitto's ``$SYS/broker/uptime`` ("1234 seconds"); None when it says something else."""
    head = payload.split(b" ", 1)[0]
    return int(head) if head.isdigit() else None


@dataclass(slots=True)
class TakeoverWatch:
    """Sessions of the uplink taken over: another client connected with the edge's identity, so someone else holds
    this edge's certificate and key (or password). Counted, and a sentence for the alert held ``hold_s`` after the
    last one; time is a parameter.

    Two ways to know. A broker that follows MQTT 5 §3.1.4 sends the edge a DISCONNECT with reason 0x8E "Session
    taken over". Mosquitto 2.0.11 (Debian's) sends nothing and closes the connection, as it does when it shuts down;
    so a connection the broker closed is held as suspect, and judged when the edge is back and hears the broker's
    uptime (retained, ``BROKER_UPTIME_TOPIC``): a broker up for longer than the edge was away did not restart, it
    closed this one connection for another client of the same identity. (A broker that has been up for less than its
    ``sys_interval`` may be taken for a restarted one: a takeover in that window is missed, never invented.)"""

    where: str  # the broker, for the sentence
    hold_s: float = TAKEOVER_HOLD_S
    count: int = 0  # takeovers (this run)
    restarts: int = 0  # connections the broker closed because it restarted (judged by its uptime; this run)
    uptimes_heard: int = 0  # the broker's uptime messages heard (one a sys_interval while connected)
    last: float | None = None  # monotonic, the last takeover
    _closed_at: float | None = None  # monotonic: the broker closed the connection then, for a reason not yet known

    def connection_ended(self, now: float, reason_code: int | None, by_broker: bool) -> bool:
        """The uplink's connection ended (not by the agent's own stop); True when it is known taken over now."""
        if reason_code == _SESSION_TAKEN_OVER:
            self._closed_at = None
            self.taken_over(now)
            return True
        self._closed_at = now if by_broker else None
        return False

    def broker_uptime(self, uptime_s: int, now: float) -> bool:
        """The broker's uptime, heard after a reconnect; True when it shows the last connection was taken over."""
        self.uptimes_heard += 1
        closed, self._closed_at = self._closed_at, None
        if closed is None:  # nothing suspect
            return False
        if uptime_s < now - closed:  # the broker started after it closed the connection: a restart
            self.restarts += 1
            return False
        self.taken_over(now)
        return True

    def taken_over(self, now: float) -> None:
        self.count += 1
        self.last = now

    def problem(self, now: float) -> str:
        """The takeover, in one sentence ("" once ``hold_s`` passed without one)."""
        if self.last is None or now - self.last >= self.hold_s:
            return ""
        return (
            f"uplink session taken over {self.count} times this run, last {now - self.last:.0f} s ago (broker "
            f"{self.where}): another client connected with this edge's identity"
        )
