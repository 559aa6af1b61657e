"""Shared fixtures: a real Mosquitto on a free loopback port with its data in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeline.services import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own (tests may stop and restart it)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def shared_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the tests of one worker that only publish and subscribe (never restart it)."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto-shared"))
    broker.start()
    yield broker
    broker.stop()
