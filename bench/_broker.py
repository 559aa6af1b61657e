"""The benchmarks' broker: closed, as in a deployment (no anonymous client, one account per client).

The services a benchmark runs connect with their real accounts (:mod:`lifeline.broker_auth`), so their access is
what it is in production; the benchmark's own load and probes connect with bench-only accounts that may do anything
(``open_account``, every one named ``bench-...``). A child process reads its password from a 0600 file, as
``lifeline broker config`` writes them, never from its config file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.mqtt import BrokerConfig, Client, client
from lifeline.broker_auth import Account, credential, write_credentials
from testing import Mosquitto, open_account

PREFIX = "bench-"  # every bench-only account's user name starts so


@contextmanager
def closed_broker(folder: Path, accounts: Sequence[Account] = ()) -> Iterator[Mosquitto]:
    """A running broker in ``folder / "mqtt"`` that knows the services' ``accounts`` (their passwords in
    ``folder / "credentials"``) and creates bench-only accounts at run time (:func:`bench_account`). On the way out
    it is stopped and its state folder removed (as root that folder may lie outside ``folder``)."""
    write_credentials(folder / "credentials", accounts)
    broker = Mosquitto(folder / "mqtt", accounts=accounts, control=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.remove()


def service_broker(folder: Path, broker: Mosquitto, username: str) -> dict[str, Any]:
    """A service's ``broker`` (or ``publisher``) section: this broker as ``username``, its password from a file."""
    base = BrokerConfig(host=broker.host, port=broker.port)
    return credential(folder / "credentials", username, base).model_dump(mode="json", exclude_defaults=True)


def bench_account(broker: Mosquitto, name: str) -> BrokerConfig:
    """Bench only: an account ``bench-<name>`` that may publish and subscribe anything (the same name, the same one)."""
    return broker.add(open_account(f"{PREFIX}{name}"))


def bench_client(broker: Mosquitto, name: str) -> Client:
    """An MQTT client (not yet connected) of the bench-only account ``bench-<name>``, from the transport's factory."""
    account = bench_account(broker, name)
    return client(account, account.username or "")
