"""The HJ 212 server's outbox is the edge agent's Outbox (in memory) that also says which payload the broker
acknowledged (the server answers a station only then). Pinned here because it relies on the Outbox's in-flight
bookkeeping."""

from __future__ import annotations

from edge_agent.config import PublishConfig
from edge_agent.hj212.server import _AnsweringOutbox
from edge_agent.outbox import OutMessage


def _box(acked: list[bytes]) -> _AnsweringOutbox:
    return _AnsweringOutbox(PublishConfig(max_inflight=5, buffer_max_messages=10), acked.append)


def _written(box: _AnsweringOutbox, *messages: OutMessage) -> None:
    for message in messages:
        box.put(message, 0)
    box.flush()


def test_ack_names_the_acknowledged_payload_once() -> None:
    acked: list[bytes] = []
    box = _box(acked)
    a, b = OutMessage("t/a", b"1"), OutMessage("t/b", b"2")
    _written(box, a, b)
    first, second = box.next_to_send(0.0), box.next_to_send(0.0)
    assert first is not None
    assert second is not None
    box.sent(7, first, 0.0)
    box.sent(8, second, 0.0)
    assert box.acked(8)
    assert acked == [b.payload]
    assert not box.acked(8)  # a late duplicate ack tells nothing
    assert not box.acked(99)
    assert acked == [b.payload]


def test_resent_message_is_named_when_its_new_send_is_acked() -> None:
    acked: list[bytes] = []
    box = _box(acked)
    a = OutMessage("t/a", b"1")
    _written(box, a)
    item = box.next_to_send(0.0)
    assert item is not None
    box.sent(1, item, 0.0)
    assert box.connection_lost() == 1  # back in the queue, unanswered
    again = box.next_to_send(0.0)
    assert again is not None
    box.sent(2, again, 0.0)
    assert box.acked(2)
    assert acked == [a.payload]
    assert acked[0] is a.payload  # the same object: the server finds the answer waiting for it
