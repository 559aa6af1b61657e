"""Broker accounts only tests and benchmarks use: one that may do anything (how a test plays a device, a vendor
sensor or an attacker; a benchmark's load) and one that creates accounts at run time. The product's accounts, each
with only its role's access, are in :mod:`lifeline.broker_auth`."""

from __future__ import annotations

from lifeline.broker_auth import Access, Account, Grant

CONTROL_TOPIC = "$CONTROL/dynamic-security/#"


def open_account(name: str) -> Account:
    """A client that may publish, subscribe (shared subscriptions too) and receive anything."""
    return Account(
        name,
        "test",
        (
            Grant(Access.SUBSCRIBE, "#"),
            Grant(Access.RECEIVE, "#"),
            Grant(Access.PUBLISH, "#"),
            Grant(Access.SUBSCRIBE, "$share/#"),
        ),
    )


def control_account(name: str) -> Account:
    """A client that may create accounts at run time through the dynamic-security plugin's ``$CONTROL`` topic."""
    return Account(
        name,
        "control",
        (
            Grant(Access.PUBLISH, CONTROL_TOPIC),
            Grant(Access.SUBSCRIBE, CONTROL_TOPIC),
            Grant(Access.RECEIVE, CONTROL_TOPIC),
        ),
    )
