"""The HJ 212 server's outbox is the edge agent's Outbox that also says which message the broker acknowledged (the
server answers a station only then). Pinned here because it relies on the Outbox's in-flight bookkeeping."""

from __future__ import annotations

from edge_agent.hj212.server import _AnsweringOutbox
from edge_agent.outbox import OutMessage


def test_ack_names_the_acknowledged_message_once() -> None:
    acked: list[OutMessage] = []
    box = _AnsweringOutbox(10, 5, acked.append)
    a, b = OutMessage("t/a", b"1"), OutMessage("t/b", b"2")
    box.put(a)
    box.put(b)
    first, second = box.next_to_send(), box.next_to_send()
    assert first is not None
    assert second is not None
    box.sent(7, first)
    box.sent(8, second)
    assert box.acked(8)
    assert acked == [b]
    assert not box.acked(8)  # a late duplicate ack tells nothing
    assert not box.acked(99)
    assert acked == [b]


def test_resent_message_is_named_when_its_new_send_is_acked() -> None:
    acked: list[OutMessage] = []
    box = _AnsweringOutbox(10, 5, acked.append)
    a = OutMessage("t/a", b"1")
    box.put(a)
    item = box.next_to_send()
    assert item is not None
    box.sent(1, item)
    assert box.connection_lost() == 1  # back in the queue, unanswered
    again = box.next_to_send()
    assert again is not None
    box.sent(2, again)
    assert box.acked(2)
    assert acked == [a]
    assert acked[0] is a  # the same object: the server finds the answer waiting for it
