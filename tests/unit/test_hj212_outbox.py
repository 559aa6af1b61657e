"""The HJ 212 server's QoS 1 window (edge_agent.hj212._window): it says which payload the broker acknowledged (the
server answers a station only then), sends again what a lost connection did not acknowledge, and keeps its quota by
dropping the oldest waiting messages (counted, and named, so that their answers are forgotten)."""

from __future__ import annotations

from edge_agent.config import PublishConfig
from edge_agent.hj212._window import AnsweringWindow
from edge_agent.outbox import OutMessage


def _box(acked: list[bytes], dropped: list[bytes] | None = None, **publish: int) -> AnsweringWindow:
    cfg = PublishConfig(**{"max_inflight": 5, "buffer_max_messages": 10, **publish})
    return AnsweringWindow(cfg, acked.append, None if dropped is None else dropped.append)


def test_ack_names_the_acknowledged_payload_once() -> None:
    acked: list[bytes] = []
    box = _box(acked)
    a, b = OutMessage("t/a", b"1"), OutMessage("t/b", b"2")
    box.put(a)
    box.put(b)
    first, second = box.next_to_send(0.0), box.next_to_send(0.0)
    assert (first, second) == (a, b)
    assert first is not None
    assert second is not None
    box.sent(7, first, 0.0)
    box.sent(8, second, 0.0)
    assert box.acked(8)
    assert acked == [b.payload]
    assert not box.acked(8)  # a late duplicate ack tells nothing
    assert not box.acked(99)
    assert acked == [b.payload]
    assert (len(box), box.inflight) == (1, 1)


def test_resent_message_is_named_when_its_new_send_is_acked() -> None:
    acked: list[bytes] = []
    box = _box(acked)
    a, b = OutMessage("t/a", b"1"), OutMessage("t/b", b"2")
    box.put(a)
    box.put(b)
    item = box.next_to_send(0.0)
    assert item is not None
    box.sent(1, item, 0.0)
    assert box.connection_lost() == 1  # back in the queue, first, unanswered
    assert not box.acked(1)  # an ack of the old connection
    again = box.next_to_send(0.0)
    assert again is a
    box.sent(2, again, 0.0)
    assert box.acked(2)
    assert acked == [a.payload]
    assert acked[0] is a.payload  # the same object: the server finds the answer waiting for it
    assert box.stats.resent == 1


def test_window_sends_no_more_than_max_inflight() -> None:
    box = _box([], max_inflight=2)
    for i in range(3):
        box.put(OutMessage("t", b"%d" % i))
    for token in (1, 2):
        entry = box.next_to_send(0.0)
        assert entry is not None
        box.sent(token, entry, 0.0)
    assert box.next_to_send(0.0) is None
    assert box.acked(1)
    assert box.next_to_send(0.0) == OutMessage("t", b"2")


def test_over_the_quota_the_oldest_waiting_messages_go_and_are_named() -> None:
    dropped: list[bytes] = []
    box = _box([], dropped, buffer_max_messages=10)
    for i in range(12):
        box.put(OutMessage("t", b"%02d" % i))
    assert dropped == [b"00", b"01"]
    assert (box.stats.dropped, box.stats.dropped_bytes, len(box)) == (2, 4, 10)
    assert box.next_to_send(0.0) == OutMessage("t", b"02")
