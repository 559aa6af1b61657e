"""The outbox: bounded buffer, bounded in-flight window, oldest first, nothing lost on a dropped connection."""

from __future__ import annotations

from edge_agent.outbox import Outbox, OutMessage


def msg(i: int) -> OutMessage:
    return OutMessage("t", str(i).encode())


def drain(box: Outbox, first_token: int = 1) -> list[int]:
    """Send what the window allows; return the payload numbers sent."""
    sent = []
    token = first_token
    while (item := box.next_to_send()) is not None:
        box.sent(token, item)
        sent.append(int(item[1].payload))
        token += 1
    return sent


def test_window_bounds_unacknowledged_sends() -> None:
    box = Outbox(max_messages=100, max_inflight=3)
    for i in range(10):
        box.put(msg(i))
    assert drain(box) == [0, 1, 2]
    assert box.room == 0
    assert box.acked(2)
    assert drain(box, first_token=10) == [3]


def test_connection_lost_puts_unacked_back_in_order() -> None:
    box = Outbox(max_messages=100, max_inflight=4)
    for i in range(6):
        box.put(msg(i))
    assert drain(box) == [0, 1, 2, 3]
    box.acked(2)  # message 1 was acknowledged
    assert box.connection_lost() == 3
    assert drain(box, first_token=1) == [0, 2, 3, 4]
    assert box.stats.resent == 3


def test_late_ack_from_old_connection_is_ignored() -> None:
    box = Outbox(max_messages=10, max_inflight=2)
    box.put(msg(0))
    drain(box)
    box.connection_lost()
    assert not box.acked(1)
    assert box.queued == 1


def test_full_buffer_drops_oldest_and_counts() -> None:
    box = Outbox(max_messages=3, max_inflight=1)
    dropped = [box.put(msg(i)) for i in range(5)]
    assert [d.payload if d else None for d in dropped] == [None, None, None, b"0", b"1"]
    assert box.stats.dropped == 2
    assert drain(box) == [2]


def test_unsent_goes_back_to_the_front() -> None:
    box = Outbox(max_messages=10, max_inflight=5)
    box.put(msg(0))
    box.put(msg(1))
    item = box.next_to_send()
    assert item is not None
    box.unsent(item)
    assert drain(box) == [0, 1]
