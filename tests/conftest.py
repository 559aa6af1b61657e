"""Shared fixtures: a real Mosquitto, InfluxDB 1.6.7, the nginx 2.x-compat proxy and PostgreSQL on free loopback
ports, with their data in temporary folders."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing import Influxd, Mosquitto
from tests.servers import InfluxCompatProxy, LockedInflux, Postgres


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own (tests may stop and restart it). Closed like a production one: no anonymous client;
    tests add the accounts they need (``broker.add(edge_account(site))``, ``tests.helpers.test_client``)."""
    broker = Mosquitto(tmp_path / "mosquitto", control=True)
    broker.start()
    yield broker
    broker.remove()


@pytest.fixture(scope="session")
def shared_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the tests of one worker that only publish and subscribe (never restart it)."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto-shared"), control=True)
    broker.start()
    yield broker
    broker.remove()


IDENTITY_SITES = ("s1", "s2")  # the sites of ``identity_mosquitto``'s deployment


@pytest.fixture
def identity_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker as ``lifeline up`` runs it (issue 24): TLS, a client certificate required and its CN taken as the user
    name, with every account of a deployment of sites ``IDENTITY_SITES``. Each account's password and certificate are
    in ``data_dir / "credentials"`` (``lifeline.broker_auth.credential`` gives a client's settings). The default
    ``mosquitto`` fixtures are closed (no anonymous client, one account per client) but plain TCP with passwords."""
    from lifeline.broker_auth import Inventory, platform_accounts, write_client_certs, write_credentials
    from lifeline.tls import ensure_ca, issue

    accounts = platform_accounts(Inventory(sites=IDENTITY_SITES))
    ca = ensure_ca(tmp_path / "tls")
    write_credentials(tmp_path / "mosquitto" / "credentials", accounts)
    write_client_certs(tmp_path / "mosquitto" / "credentials", accounts, ca)
    tls = issue(tmp_path / "tls", ca, "mosquitto")
    broker = Mosquitto(tmp_path / "mosquitto", accounts=accounts, tls=tls, require_certificate=True)
    broker.start()
    yield broker
    broker.remove()


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[Influxd]:
    """An InfluxDB of this test's own with the database ``lifeline`` (tests may stop, kill and restart it)."""
    server = Influxd(tmp_path / "influxdb")
    server.start()
    server.create_database("lifeline")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One InfluxDB for the tests of one worker that write and read databases of their own (never restart it)."""
    server = Influxd(tmp_path_factory.mktemp("influxdb-shared"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One PostgreSQL server for the tests of one worker; each test gets a database of its own (``postgres_url``)."""
    server = Postgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.remove()


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(shared_postgres: Postgres) -> str:
    """A SQLAlchemy URL of a new, empty PostgreSQL database for this test."""
    return shared_postgres.create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
def influx_compat(tmp_path: Path, influxdb: Influxd) -> Iterator[InfluxCompatProxy]:
    """The nginx 2.x-compat proxy in front of this test's ``influxdb``."""
    proxy = InfluxCompatProxy(tmp_path / "influx-compat", influxdb.url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def locked_influxdb(tmp_path: Path) -> Iterator[LockedInflux]:
    """InfluxDB as ``lifeline up`` runs it (``tests.servers.LockedInflux``): no network of its own, writes only
    through the write gateway, the database ``lifeline``."""
    locked = LockedInflux(tmp_path / "locked")
    locked.start()
    yield locked
    locked.stop()


pytest_plugins = ["tests.notify_servers"]
