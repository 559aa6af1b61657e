"""The pipeline on the real store: the alert manager (rows, stage state and outbox in one SQLite or PostgreSQL
transaction) decides what the pipeline alone decides, and its store work never stalls the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts import AlertKey, AlertsConfig, ChatterConfig, Kind, Pipeline, Severity
from alerts.config import AlertServiceConfig
from alerts.db import make_engine
from alerts.lifecycle import Alert
from alerts.manager import AlertManager
from alerts.store import AlertStore
from device_profiles import load_catalogue
from rules import PACKS, Transition, load_rules
from rules.schema import severity_of
from tests.helpers import FakeStateTx

pytestmark = pytest.mark.integration

T0_S = 1_800_000_000
POINTS = ("lel", "o2")  # two points of one device


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[AlertStore]:
    s = AlertStore(url)
    yield s
    s.close()


def _manager(url: str, store: AlertStore, max_toggles: int = 2) -> AlertManager:
    cfg = AlertServiceConfig.model_validate(
        {"store_url": url, "policy": {"chatter": {"max_toggles": max_toggles}}, "publish_events": False}
    )
    return AlertManager(cfg, store, load_rules([PACKS]), load_catalogue(), None, clock=lambda: T0_S + 3600)


def _transition(point: str, severity: str | None, ts_ms: int) -> Transition:
    return Transition(
        rule="gas.lel",
        site="plant-1",
        device="gas-1",
        point=point,
        severity=severity_of(severity),
        previous=None,
        value=1.0,
        ts=ts_ms,
        reason="test",
        profile="gas_detector",
    )


# Both points toggle, interleaved: lel 3 times (over the limit of 2), o2 twice (at the limit).
SCRIPT = [("lel", "warning"), ("o2", "warning"), ("lel", None), ("o2", None), ("lel", "warning")]


def _pipeline_alone(audience: str) -> tuple[dict[str, bool], list[tuple[str, str | None]]]:
    pipeline, tx = Pipeline(AlertsConfig(chatter=ChatterConfig(max_toggles=2))), FakeStateTx()
    alerts = {p: Alert(AlertKey("gas.lel", "plant-1", "gas-1", p)) for p in POINTS}
    out: list[tuple[str, str | None]] = []
    for i, (point, severity) in enumerate(SCRIPT):
        sev = None if severity is None else Severity.WARNING
        change = pipeline.on_rule(tx, alerts[point], audience, sev, 1.0, T0_S * 1000 + i * 1000)
        assert change is not None
        out += [(n.kind.value, n.key.point if n.key else None) for n in change.out]
    return {p: a.chattering for p, a in alerts.items()}, out


def test_two_chattering_points_of_one_device_agree_between_pipeline_and_store(url: str, store: AlertStore) -> None:
    """Decided: chattering is per alert (ISA-18.2's chattering alarm is one alarm going in and out of alarm), so
    each point is marked by its own toggles: lel (3 toggles > 2) chatters, o2 (2 toggles) does not. Before, the
    in-memory book marked both and the stored path only lel; now there is one path."""
    mgr = _manager(url, store)

    async def scenario() -> None:
        for i, (point, severity) in enumerate(SCRIPT):
            await mgr.on_transitions([_transition(point, severity, T0_S * 1000 + i * 1000)])
        await mgr.drain(5)

    asyncio.run(scenario())
    stored = {s.alert.key.point: s for s in store.list_alerts()}
    by_id = {s.id: p for p, s in stored.items()}
    logged = sorted((n.kind, by_id.get(n.alert_id or -1)) for n in store.notifications())  # unrouted: one row each
    flags, decided = _pipeline_alone(stored["lel"].meta.audience)

    assert {p: s.alert.chattering for p, s in stored.items()} == flags == {"lel": True, "o2": False}
    assert logged == sorted(decided)
    assert (Kind.CHATTERING.value, "lel") in decided
    assert (Kind.CHATTERING.value, "o2") not in decided
    assert [h.action for h in store.history(stored["lel"].id)][-1] == "chattering"


def test_a_conflict_rolls_the_stage_state_back_with_the_alerts(url: str, store: AlertStore) -> None:
    """The batch and the stages' state commit together: a batch that fails leaves neither behind."""
    mgr = _manager(url, store, max_toggles=5)
    name = 'alerts.chatter:["gas.lel","plant-1","gas-1","lel"]'
    seen_inside: list[object] = []

    def batch_that_fails() -> None:
        with store.begin() as tx:
            mgr._apply(tx, _transition("lel", "warning", T0_S * 1000))
            seen_inside.append(tx.get_state(name))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        batch_that_fails()
    assert seen_inside != [None], "the stage wrote no state: the test proves nothing"
    assert store.get_state(name) is None
    assert store.count_alerts() == 0


def test_a_locked_sqlite_file_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    """Another writer holds the SQLite write lock for 1 s; the manager waits for it on the store's worker thread
    while the loop goes on ticking every 10 ms."""
    path = tmp_path / "alerts.db"
    store = AlertStore(make_engine(f"sqlite:///{path}"))
    mgr = _manager(f"sqlite:///{path}", store)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")

    async def scenario() -> tuple[float, float]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        async def unlock_later() -> None:
            await asyncio.sleep(1.0)
            locker.execute("COMMIT")

        started = time.monotonic()
        tick_task = asyncio.create_task(ticker())
        unlock = asyncio.create_task(unlock_later())
        await mgr.on_transitions([_transition("lel", "warning", T0_S * 1000)])
        waited = time.monotonic() - started
        done.set()
        await asyncio.gather(tick_task, unlock)
        return waited, max(gaps)

    try:
        waited, worst_gap = asyncio.run(scenario())
    finally:
        locker.close()
        store.close()
    assert waited >= 0.9, "the change did not wait for the lock: the test proves nothing"
    assert worst_gap < 0.2, f"the event loop stalled {worst_gap:.3f}s"
