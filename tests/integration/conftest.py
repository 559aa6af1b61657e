"""Fixtures for end-to-end tests: the mini district's simulators and edge agents on a real Mosquitto."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edge_agent import EdgeAgent, EdgeConfig, build_site
from lifeline.broker_auth import district_deployment, edge_account, edge_sensor_account
from simulators import District, load_scenario
from testing import Influxd, Mosquitto
from tests.helpers import LoopThread, Publisher, account_for, client_account
from tests.integration.influx_db import Db


class RunningDistrict:
    """A District served on its own loop thread; ``on_loop`` runs a call there (faults, forced values)."""

    def __init__(self, broker: Mosquitto, scenario: str = "mini") -> None:
        self.broker = broker
        self.district: District | None = None
        started = asyncio.Event()

        async def main(stop: asyncio.Event) -> None:
            self.district = District(
                load_scenario(scenario),
                broker.host,
                broker.port,
                step_interval_s=0.05,
                sensor_credentials=client_account(broker, "sim-sensors"),
            )
            await self.district.start()
            started.set()
            try:
                await stop.wait()
            finally:
                await self.district.stop()

        self.thread = LoopThread(main)
        deadline = time.monotonic() + 15
        while not started.is_set() and time.monotonic() < deadline and self.thread.error is None:
            time.sleep(0.01)
        assert started.is_set(), f"district did not start: {self.thread.error}"
        assert self.district is not None

    def on_loop(self, fn: Callable[[], Any]) -> None:
        done = []
        self.thread.call(lambda: done.append(fn()))
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.005)
        assert done, "call on the district's loop did not run"

    def site_config(self, site: str, **overrides: Any) -> EdgeConfig:
        assert self.district is not None
        data = self.district.site_config(site)
        data["modbus"] = {
            "timeout_s": 0.5,
            "connect_timeout_s": 0.5,
            "backoff_initial_s": 0.2,
            "backoff_max_s": 1.0,
            **overrides.pop("modbus", {}),
        }
        quick = {"reconnect_initial_s": 0.1, "reconnect_max_s": 0.5}
        data["broker"] = account_for(self.broker, edge_account(site), **quick).model_dump(mode="json")
        sensor_topics = district_deployment(self.district.planned).sensor_topics.get(site)
        if sensor_topics:
            sensors = edge_sensor_account(site, sensor_topics)
            data["sensor_broker"] = account_for(self.broker, sensors, **quick).model_dump(mode="json")
        data.update(overrides)
        return EdgeConfig.model_validate(data)

    def stop(self) -> None:
        self.thread.stop()


@pytest.fixture
def mini(mosquitto: Mosquitto) -> Iterator[RunningDistrict]:
    district = RunningDistrict(mosquitto)
    yield district
    district.stop()


class RunningAgent:
    def __init__(self, config: EdgeConfig, keep_lateness: int = 0) -> None:
        self.agent = EdgeAgent(build_site(config), keep_lateness=keep_lateness)
        self.thread = LoopThread(self.agent.run)

    def stop(self) -> None:
        self.thread.stop()


StartAgent = Callable[..., RunningAgent]  # the start_agent fixture: (config, keep_lateness=0) -> a running agent


@pytest.fixture
def start_agent() -> Iterator[StartAgent]:
    agents: list[RunningAgent] = []

    def start(config: EdgeConfig, keep_lateness: int = 0) -> RunningAgent:
        agent = RunningAgent(config, keep_lateness)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()


@pytest.fixture
def db(shared_influxdb: Influxd) -> Db:
    """A database of this test's own on the worker's shared InfluxDB."""
    return Db(shared_influxdb)


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    """A test publisher on the broker (``tests.helpers.Publisher``)."""
    pub = Publisher(mosquitto)
    yield pub
    pub.close()
