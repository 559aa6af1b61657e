"""What a batch stored, coalesced into the Stored confirmations the edge reads (seq ranges per device and run)."""

from __future__ import annotations

import pytest

from broker_bridge.stored import Span, coalesce, stored_messages
from broker_bridge.validate import Origin
from telemetry import Stored, StoredRange, decode_stored, encode


def o(seq: int, device: str = "d1", run: str = "r1", site: str = "s1") -> Origin:
    return Origin(site, device, run, seq)


def r(first: int, last: int, device: str = "d1", run: str = "r1") -> Span:
    return Span(device, run, first, last)


@pytest.mark.parametrize(
    ("origins", "expected"),
    [
        pytest.param([o(5)], {"s1": [r(5, 5)]}, id="one-message"),
        pytest.param([o(1), o(2), o(3)], {"s1": [r(1, 3)]}, id="contiguous-one-range"),
        pytest.param([o(3), o(1), o(2)], {"s1": [r(1, 3)]}, id="any-order"),
        pytest.param([o(1), o(2), o(2), o(1)], {"s1": [r(1, 2)]}, id="redelivered-duplicates"),
        pytest.param([o(1), o(2), o(4), o(5)], {"s1": [r(1, 2), r(4, 5)]}, id="a-gap-makes-two-ranges"),
        pytest.param([o(0), o(2), o(4)], {"s1": [r(0, 0), r(2, 2), r(4, 4)]}, id="every-other-seq-shared-group"),
        pytest.param(
            [o(7, run="a"), o(0, run="b"), o(8, run="a"), o(1, run="b")],
            {"s1": [r(7, 8, run="a"), r(0, 1, run="b")]},
            id="two-runs-of-one-device-two-ranges",
        ),
        pytest.param(
            [o(1, device="d2"), o(1), o(2, device="d2")], {"s1": [r(1, 1), r(1, 2, device="d2")]}, id="two-devices"
        ),
        pytest.param([o(1, site="s2"), o(1)], {"s1": [r(1, 1)], "s2": [r(1, 1)]}, id="sites-apart"),
        pytest.param([o(3, run="")], {"s1": [r(3, 3, run="")]}, id="producer-without-runs"),
        pytest.param([], {}, id="nothing"),
    ],
)
def test_coalesce(origins: list[Origin], expected: dict[str, list[Span]]) -> None:
    assert coalesce(origins) == expected


def test_one_message_per_site_that_round_trips_the_contract() -> None:
    msgs = stored_messages([o(1), o(2), o(9, site="s2")], "bridge-a", 1_760_000_000_000)
    assert [(m.site, m.bridge, m.ts, m.ranges) for m in msgs] == [
        ("s1", "bridge-a", 1_760_000_000_000, [StoredRange(device="d1", run="r1", first=1, last=2)]),
        ("s2", "bridge-a", 1_760_000_000_000, [StoredRange(device="d1", run="r1", first=9, last=9)]),
    ]
    for m in msgs:
        assert decode_stored(encode(m)) == m


def test_many_ranges_are_split_into_bounded_messages() -> None:
    msgs = stored_messages([o(seq) for seq in range(0, 50, 2)], "b", 1, max_ranges=10)
    assert [len(m.ranges) for m in msgs] == [10, 10, 5]
    assert [rng.first for m in msgs for rng in m.ranges] == list(range(0, 50, 2))
    assert all(isinstance(m, Stored) and m.site == "s1" for m in msgs)
