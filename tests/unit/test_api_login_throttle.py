"""The login throttle (GB/T 22239-2019 §8.1.4.1 b)): per user name and address, and per address; time moved by
the test (a clock passed in)."""

from __future__ import annotations

import pytest

from api.auth import LoginThrottle, address_key

A, B = "198.51.100.7", "203.0.113.9"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(clock, pair_max_failures=5, address_max_failures=8, window_s=300, block_s=300)


def test_five_failures_block_the_name_from_that_address_only(throttle: LoginThrottle, clock: Clock) -> None:
    for i in range(4):
        assert throttle.failed("admin", A) == []
        assert throttle.refused("admin", A) is None, i
    assert throttle.failed("admin", A) == ["user"]  # the block starts (audited once)
    refusal = throttle.refused("ADMIN", A)
    assert refusal is not None
    assert refusal.scope == "user"
    assert refusal.wait_s == 300
    assert throttle.refused("admin", B) is None  # admin still logs in from elsewhere
    assert throttle.refused("viewer", A) is None
    clock.now += 299_000
    assert throttle.refused("admin", A) is not None
    clock.now += 1_000
    assert throttle.refused("admin", A) is None


def test_failures_across_names_block_the_address(throttle: LoginThrottle) -> None:
    started = [throttle.failed(f"user{i}", A) for i in range(8)]
    assert started[-1] == ["address"]
    assert started[:-1] == [[]] * 7
    refusal = throttle.refused("someone-new", A)
    assert refusal is not None
    assert refusal.scope == "address"
    assert throttle.refused("someone-new", B) is None


def test_a_success_clears_its_pair_but_not_the_address(clock: Clock) -> None:
    throttle = LoginThrottle(clock, pair_max_failures=5, address_max_failures=12)
    for _ in range(4):
        throttle.failed("admin", A)
    throttle.succeeded("admin", A)
    for _ in range(4):
        assert throttle.failed("admin", A) == []  # the pair counts from zero again
    assert throttle.refused("admin", A) is None
    for i in range(3):
        assert throttle.failed(f"guess{i}", A) == []
    # the address's 12th failure in the window: logging in to its own account did not reset its count
    assert throttle.failed("guess-x", A) == ["address"]
    assert throttle.refused("anyone", A) is not None


def test_old_failures_are_forgotten(throttle: LoginThrottle, clock: Clock) -> None:
    for _ in range(4):
        throttle.failed("admin", A)
    clock.now += 300_000
    assert throttle.failed("admin", A) == []
    assert throttle.refused("admin", A) is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::99", "2001:db8:1:2::/64"),  # one subscriber's /64 counts as one address
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("testclient", "testclient"),
    ],
    ids=["ipv4", "ipv6-a", "ipv6-same-64", "ipv4-mapped", "not-an-address"],
)
def test_address_key(address: str, key: str) -> None:
    assert address_key(address) == key


def test_memory_is_bounded(clock: Clock) -> None:
    throttle = LoginThrottle(clock, max_keys=100)
    for i in range(1000):
        throttle.failed(f"name{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(throttle._pairs._times) <= 101
    assert len(throttle._addresses._times) <= 101
