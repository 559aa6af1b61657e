"""The API lists only devices the deployment's site files or an agent's birth know (issue 24: one edge account's
telemetry of 2,000 invented devices made the device list 2,204 long); others are counted and logged once each."""

from __future__ import annotations

import logging

import pytest

from api.live import MAX_REFUSED_LOGGED, LiveCache
from telemetry import AgentState

DECLARED = {"north": {"g-01", "g-02", "edge"}}


def birth(site: str, *devices: str) -> AgentState:
    return AgentState(site=site, agent=f"edge-{site}", online=True, ts=1000, devices=list(devices))


@pytest.mark.parametrize(
    ("declared", "births", "site", "device", "admitted"),
    [
        pytest.param(DECLARED, [], "north", "g-01", True, id="declared-device"),
        pytest.param(DECLARED, [], "north", "edge", True, id="declared-health-device"),
        pytest.param(DECLARED, [], "north", "invented-1", False, id="undeclared-device-of-a-declared-site"),
        pytest.param(DECLARED, [birth("north", "invented-1")], "north", "invented-1", False, id="birth-cannot-add"),
        pytest.param(DECLARED, [], "south", "g-01", False, id="unknown-site-no-birth"),
        pytest.param(DECLARED, [birth("south", "g-01")], "south", "g-01", True, id="undeclared-site-birth-names-it"),
        pytest.param(DECLARED, [birth("south", "g-01")], "south", "g-09", False, id="undeclared-site-birth-lacks-it"),
        pytest.param(None, [], "south", "anything", True, id="no-site-files-no-birth-any"),
        pytest.param(None, [birth("south", "g-01")], "south", "g-01", True, id="no-site-files-birth-names-it"),
        pytest.param(None, [birth("south", "g-01")], "south", "g-09", False, id="no-site-files-birth-lacks-it"),
    ],
)
def test_admits(
    declared: dict[str, set[str]] | None, births: list[AgentState], site: str, device: str, admitted: bool
) -> None:
    cache = LiveCache(declared=declared)
    for b in births:
        cache.apply_agent(b, 2000)
    before = cache.refused
    assert cache.admits(site, device) is admitted
    assert cache.refused - before == (0 if admitted else 1)


def test_a_birth_lists_only_the_declared_devices_of_a_declared_site() -> None:
    cache = LiveCache(declared=DECLARED)
    cache.apply_agent(birth("north", "g-01", *(f"invented-{i}" for i in range(50))), 2000)
    assert [d.device for d in cache.devices()] == ["g-01"]
    assert cache.refused == 50


def test_a_death_keeps_the_births_devices_known() -> None:
    cache = LiveCache(declared={})
    cache.apply_agent(birth("south", "g-01"), 2000)
    cache.apply_agent(AgentState(site="south", agent="edge-south", online=False, ts=1000), 3000)
    assert cache.admits("south", "g-01")


def test_each_unknown_device_is_logged_once_and_every_message_counted(caplog: pytest.LogCaptureFixture) -> None:
    cache = LiveCache(declared=DECLARED)
    with caplog.at_level(logging.WARNING, logger="lifeline.api"):
        for _ in range(3):
            for i in range(5):
                assert not cache.admits("north", f"invented-{i}")
    assert cache.refused == 15
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5
    assert "site=north device=invented-0 why=its site's files do not declare it" in lines[0]


def test_the_once_only_log_is_bounded() -> None:
    cache = LiveCache(declared=DECLARED)
    for i in range(MAX_REFUSED_LOGGED + 100):
        cache.admits("north", f"x{i}")
    assert cache.refused == MAX_REFUSED_LOGGED + 100
    assert len(cache._refused_logged) == MAX_REFUSED_LOGGED
