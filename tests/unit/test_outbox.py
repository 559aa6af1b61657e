"""The disk outbox: written before sent, bounded window, telemetry kept until Stored, resent oldest first after a
reconnect or a time-out, backlog at a bounded rate behind live messages, a byte quota that drops the oldest and
says so. Time is a parameter (``now`` seconds, ``now_ms`` wall time)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import orjson
import pytest

from edge_agent._outbox_policy import TokenBucket
from edge_agent._outbox_store import OutboxStore
from edge_agent._outbox_writer import SampleJournal
from edge_agent.health import OutboxFault, classify
from edge_agent.outbox import Entry, Outbox, OutMessage


def make(path: Path | str = ":memory:", **kw: float) -> Outbox:
    opts: dict[str, float] = {
        "max_inflight": 100,
        "max_messages": 1000,
        "max_bytes": 10**9,
        "replay_rate": 1000.0,
        "ack_timeout_s": 30.0,
        **kw,
    }
    return Outbox(
        OutboxStore(path),
        max_inflight=int(opts["max_inflight"]),
        max_messages=int(opts["max_messages"]),
        max_bytes=int(opts["max_bytes"]),
        replay_rate=opts["replay_rate"],
        ack_timeout_s=opts["ack_timeout_s"],
        name="s1",
    )


def tele(seq: int, run: str = "r1", device: str = "d1") -> OutMessage:
    return OutMessage(f"t/{device}", f"{seq:06d}".encode(), key=(device, run, seq))


def status(n: int) -> OutMessage:
    return OutMessage("s", f"s{n}".encode(), retain=True)


class Wire:
    """A fake client: hands out message ids and records what was sent."""

    def __init__(self, box: Outbox) -> None:
        self.box = box
        self.token = 0
        self.out: dict[int, Entry] = {}

    def send(self, now: float = 0.0, limit: int = 10**6) -> list[bytes]:
        got: list[bytes] = []
        while len(got) < limit and (e := self.box.next_to_send(now)) is not None:
            self.token += 1
            self.box.sent(self.token, e, now)
            self.out[self.token] = e
            got.append(e.payload or b"")
        return got

    def ack_all(self) -> None:
        for token in list(self.out):
            self.box.acked(token)
        self.out.clear()


def fill(box: Outbox, messages: list[OutMessage], now_ms: int = 1000) -> None:
    for m in messages:
        box.put(m, now_ms)
    box.flush()


def seqs(payloads: list[bytes]) -> list[int]:
    return [int(p) for p in payloads]


def test_nothing_is_sent_before_it_is_written() -> None:
    box = make()
    box.put(tele(1), 0)
    assert box.next_to_send(0.0) is None
    box.flush()
    assert seqs(Wire(box).send()) == [1]


def test_window_bounds_unacknowledged_sends() -> None:
    box = make(max_inflight=3)
    fill(box, [tele(i) for i in range(1, 11)])
    wire = Wire(box)
    assert seqs(wire.send()) == [1, 2, 3]
    assert box.room == 0
    assert box.acked(2)
    assert seqs(wire.send()) == [4]


@pytest.mark.parametrize(
    ("message", "held_after_puback"),
    [pytest.param(tele(1), 1, id="telemetry-waits-for-stored"), pytest.param(status(1), 0, id="status-goes-at-puback")],
)
def test_what_puback_confirms(message: OutMessage, held_after_puback: int) -> None:
    box = make()
    fill(box, [message])
    wire = Wire(box)
    wire.send()
    wire.ack_all()
    box.flush()
    assert len(box) == held_after_puback
    assert box.store.summary()[0] == held_after_puback


@pytest.mark.parametrize(
    ("ranges", "left"),
    [
        pytest.param([("d1", "r1", 1, 5)], [], id="one-range-all"),
        pytest.param([("d1", "r1", 2, 3)], [1, 4, 5], id="middle"),
        pytest.param([("d1", "r1", 1, 1), ("d1", "r1", 3, 3), ("d1", "r1", 5, 5)], [2, 4], id="every-other-bridge"),
        pytest.param([("d1", "r0", 1, 5)], [1, 2, 3, 4, 5], id="other-run-confirms-nothing"),
        pytest.param([("d2", "r1", 1, 5)], [1, 2, 3, 4, 5], id="other-device-confirms-nothing"),
        pytest.param([("d1", "r1", 4, 10**12)], [1, 2, 3], id="huge-range-is-cheap"),
    ],
)
def test_stored_ranges_remove_exactly_what_they_cover(ranges: list[tuple[str, str, int, int]], left: list[int]) -> None:
    box = make(ack_timeout_s=1.0)
    fill(box, [tele(i) for i in range(1, 6)])
    wire = Wire(box)
    wire.send(now=0.0)
    wire.ack_all()
    box.stored(ranges)
    box.flush()
    assert len(box) == len(left)
    box.tick(5.0)  # what is left times out and comes back, oldest first
    assert seqs(wire.send(now=5.0)) == left


def test_stored_before_puback_frees_the_window_at_puback() -> None:
    box = make(max_inflight=1)
    fill(box, [tele(1), tele(2)])
    wire = Wire(box)
    assert seqs(wire.send()) == [1]
    box.stored([("d1", "r1", 1, 1)])
    assert wire.send() == []  # still in flight
    wire.ack_all()
    assert seqs(wire.send()) == [2]
    box.flush()
    assert len(box) == 1


def test_connection_lost_resends_in_flight_first_then_unconfirmed_oldest_first() -> None:
    box = make(max_inflight=4)
    fill(box, [tele(i) for i in range(1, 7)])
    wire = Wire(box)
    assert seqs(wire.send(limit=2)) == [1, 2]
    wire.ack_all()  # 1 and 2 PUBACKed, not stored
    assert seqs(wire.send()) == [3, 4, 5, 6]
    box.acked(2 + 2)  # message 4 PUBACKed
    assert box.connection_lost() == 6
    assert seqs(wire.send()) == [3, 5, 6, 1]  # in flight go first (live), the window holds 4
    wire.ack_all()
    assert seqs(wire.send()) == [2, 4]
    assert box.stats.resent == 6


def test_late_ack_from_old_connection_is_ignored() -> None:
    box = make()
    fill(box, [tele(1)])
    Wire(box).send()
    box.connection_lost()
    assert not box.acked(1)
    assert box.unacked == 1


def test_unsent_goes_back_to_the_front() -> None:
    box = make()
    fill(box, [tele(1), tele(2)])
    entry = box.next_to_send(0.0)
    assert entry is not None
    box.unsent(entry)
    assert seqs(Wire(box).send()) == [1, 2]


@pytest.mark.parametrize(
    ("last_sent", "now", "due"),
    [
        pytest.param(0.0, 29.9, 0, id="before-time-out"),
        pytest.param(0.0, 30.0, 3, id="at-time-out"),
        pytest.param(10.0, 39.0, 0, id="counted-from-last-send"),
    ],
)
def test_time_out_since_last_sent(last_sent: float, now: float, due: int) -> None:
    box = make()
    fill(box, [tele(1), tele(2), tele(3)])
    wire = Wire(box)
    wire.send(now=last_sent)
    wire.ack_all()
    assert box.tick(now) == due
    assert seqs(wire.send(now=now)) == [1, 2, 3][:due]


def test_backlog_goes_at_the_replay_rate_and_live_goes_first() -> None:
    box = make(replay_rate=10.0, max_inflight=1000)
    fill(box, [tele(i) for i in range(1, 51)])
    wire = Wire(box)
    wire.send(now=0.0)
    wire.ack_all()
    box.connection_lost()  # 50 unconfirmed: backlog
    fill(box, [tele(i) for i in range(51, 56)])  # live
    sent = seqs(wire.send(now=0.0))
    assert sent[:5] == [51, 52, 53, 54, 55]
    assert sent[5:] == [1, 2]  # a burst of 0.2 s at 10/s
    assert box.send_delay(0.0) == pytest.approx(0.1)
    assert seqs(wire.send(now=1.0)) == [3, 4]  # the burst is capped
    total = [s for t in range(2, 40) for s in seqs(wire.send(now=t * 0.5))]
    assert total == list(range(5, 51))


def test_quota_in_bytes_drops_the_oldest_counts_and_warns_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    one = len("t/d1") + 6
    box = make(max_bytes=one * 10)
    with caplog.at_level(logging.WARNING, logger="lifeline.edge.outbox"):
        for seq in range(1, 16):
            fill(box, [tele(seq)])
        assert box.stats.dropped == 5
        assert box.stats.dropped_bytes == 5 * one
        assert (len(box), box.bytes) == (10, 10 * one)
        assert seqs(Wire(box).send()) == list(range(6, 16))
        full = [r for r in caplog.records if "outbox full" in r.getMessage()]
        assert len(full) == 1
        box.stored([("d1", "r1", 6, 15)])
        box.flush()
    recovered = [r.getMessage() for r in caplog.records if "below its quota again" in r.getMessage()]
    assert len(recovered) == 1
    assert f"dropped=5 dropped_bytes={5 * one} " in recovered[0]


def test_quota_in_messages_drops_the_oldest() -> None:
    box = make(max_messages=3)
    fill(box, [tele(i) for i in range(1, 6)])
    assert box.stats.dropped == 2
    assert seqs(Wire(box).send()) == [3, 4, 5]


def test_the_file_keeps_everything_unconfirmed_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = make(path, max_messages=4)
    fill(box, [tele(i) for i in range(1, 7)] + [status(1)])  # 3 dropped over the quota
    wire = Wire(box)
    wire.send()
    wire.ack_all()  # the status goes at PUBACK; telemetry waits for Stored
    box.flush()
    box.stored([("d1", "r1", 4, 4)])
    box.store.close()  # as a crash would: no goodbye, no last flush
    again = make(path, max_messages=4)
    assert (len(again), again.stats.dropped) == (3, 3)
    assert seqs(Wire(again).send()) == [4, 5, 6]  # the Stored of 4 was not flushed: sent again, harmless
    again.stored([("d1", "r1", 4, 6)])  # only the file has the old run's messages now: deleted by key
    again.flush()
    assert len(again) == 0
    assert again.store.summary()[0] == 0
    again.close()


def test_oldest_unconfirmed_age() -> None:
    box = make()
    box.put(tele(1), 1_000)
    assert box.oldest_age_s(4_000) == 3.0
    box.flush()
    box.put(tele(2), 5_000)
    assert box.oldest_age_s(6_500) == 5.5


def test_a_confirmation_while_a_write_is_under_way_is_counted_once() -> None:
    one = len("t/d1") + 6
    box = make(max_bytes=one * 3)
    fill(box, [tele(1), tele(2), tele(3)])
    wire = Wire(box)
    wire.send()
    wire.ack_all()
    box.put(tele(4), 0)  # over the quota by one: this write drops message 1
    work = box.prepare()
    box.stored([("d1", "r1", 1, 1)])  # ... which the centre confirms while the write is under way
    box.apply(work, box.store.write(work.batch))
    box.flush()
    assert (len(box), box.bytes) == (3, 3 * one) == (box.store.summary()[0], box.store.summary()[1])
    assert box.stats.dropped == 0  # it was confirmed, not lost


def test_a_failed_write_keeps_everything_for_the_next() -> None:
    box = make()
    fill(box, [tele(1)])
    wire = Wire(box)
    wire.send()
    wire.ack_all()
    box.put(tele(2), 0)
    box.stored([("d1", "r1", 1, 1)])
    work = box.prepare()
    box.restore(work)  # as if store.write had raised
    assert box.next_to_send(0.0) is None  # not written: not sendable
    box.flush()
    assert seqs(wire.send()) == [2]
    assert box.store.summary()[0] == len(box) == 1


@pytest.mark.parametrize(
    ("rate", "times", "sent"),
    [
        pytest.param(10.0, [0.0] * 5, 2, id="burst-is-a-fifth-of-a-second"),
        pytest.param(10.0, [0.0, 0.15, 0.25, 0.35], 5, id="then-the-rate"),
        pytest.param(0.5, [0.0, 1.0, 2.0, 3.0], 2, id="slower-than-one-a-second"),
    ],
)
def test_token_bucket(rate: float, times: list[float], sent: int) -> None:
    bucket = TokenBucket(rate)
    went = 0
    for now in times:
        while bucket.ready(now):
            bucket.take()
            went += 1
    assert went == sent


def test_a_full_database_raises_the_real_error_not_a_failed_rollback() -> None:
    """SQLITE_FULL rolls the transaction back by itself: the store's rollback must not hide the error (it used to
    raise "cannot rollback - no transaction is active"). A real SQLITE_FULL, from a page limit on the file."""
    store = OutboxStore(":memory:")
    box = Outbox(store, max_inflight=10, max_messages=10**6, max_bytes=10**9, replay_rate=100.0, ack_timeout_s=30.0)
    box.put(tele(1), 0)
    box.flush()
    (pages,) = store._db.execute("PRAGMA page_count").fetchone()
    store._db.execute(f"PRAGMA max_page_count={pages}")  # the next page the file needs is refused: a full disk
    for seq in range(2, 200):
        box.put(OutMessage("t/d1", b"x" * 2000, key=("d1", "r1", seq)), 0)
    work = box.prepare()
    with pytest.raises(sqlite3.OperationalError) as raised:
        store.write(work.batch)
    assert "full" in str(raised.value)
    assert "rollback" not in str(raised.value)
    assert classify(raised.value) is OutboxFault.DISK_FULL
    assert not store._db.in_transaction
    box.restore(work)
    assert (box.unwritten, store.summary()[0]) == (198, 1)  # kept in memory, nothing half written
    store._db.execute("PRAGMA max_page_count=1073741823")  # room again
    box.flush()
    assert (box.unwritten, store.summary()[0], len(box)) == (0, 199, 199)


def test_messages_kept_in_memory_while_the_file_fails_are_bounded_and_counted() -> None:
    box = Outbox(
        OutboxStore(":memory:"),
        max_inflight=10,
        max_messages=10**6,
        max_bytes=10**9,
        replay_rate=100.0,
        ack_timeout_s=30.0,
        max_unwritten=5,
    )
    for seq in range(1, 5):
        box.put(tele(seq), 0)
    work = box.prepare()
    box.restore(work)  # as if the write had failed
    for seq in range(5, 9):
        box.put(tele(seq), 0)
    assert (box.unwritten, box.stats.memory_dropped, len(box)) == (5, 3, 5)  # the oldest three went
    box.flush()
    assert seqs(Wire(box).send()) == [4, 5, 6, 7, 8]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_the_sample_journal_is_counted_not_raised() -> None:
    """Every write to /dev/full fails with ENOSPC: the journal counts it and the writer goes on."""
    journal = SampleJournal(Path("/dev/full"))
    entry = Entry(1, "t/d1", orjson.dumps({"samples": [{"ts": 5}]}), False, ("d1", "r1", 1), 10)
    journal([entry])
    journal([entry])
    assert journal.failures == 2
    journal.close()
