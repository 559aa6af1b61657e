"""The edge's disk full, for real: the agent's state folder on a small tmpfs of its own, filled to the last byte.

The outbox's writes fail with SQLite's own "database or disk is full"; the agent says so as a metric, as its health
telemetry (sent around the outbox, which cannot take it) and so as the shipped pack's alert, keeps what it reads in
memory, and once space is back writes and sends all of it: nothing is lost. The mount needs root (CAP_SYS_ADMIN);
without it the test is skipped, and tests/unit/test_outbox.py still raises a real SQLITE_FULL from a page limit.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import HEALTH_DEVICE
from edge_agent.health import OutboxFault
from lifeline.broker_auth import edge_account, edge_sensor_account
from rules import PACKS, Engine, load_rules
from telemetry import Telemetry, decode_telemetry, topics
from testing import Mosquitto
from tests.helpers import Subscriber, wait_until
from tests.integration.test_edge_outbox import (
    SITE,
    T0,
    VENDOR_TOPIC,
    Acker,
    Vendor,
    broker_of,
    gas_of,
    site_config,
    start_agent,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def site_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The site's own broker, which the gas sensor publishes to."""
    broker = Mosquitto(tmp_path / "site-mosquitto", control=True)
    broker.start()
    broker_of(broker, edge_sensor_account(SITE, [VENDOR_TOPIC]))
    yield broker
    broker.remove()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of this test's own (its own folder: parallel tests each mount theirs), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)  # still busy: detach now, freed once closed


def fill(disk: Path) -> Path:
    """Write a file until the file system has no byte left (ENOSPC)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left on device"):
            _write_forever(fd)
    finally:
        os.close(fd)
    return filler


def _write_forever(fd: int) -> None:
    while True:
        os.write(fd, b"\0" * 4096)


def test_disk_full_is_a_metric_health_telemetry_and_an_alert_and_loses_nothing(
    mosquitto: Mosquitto, site_broker: Mosquitto, small_disk: Path
) -> None:
    broker_of(mosquitto, edge_account(SITE))
    state = small_disk / "state"
    config = site_config(mosquitto, site_broker, state, health_interval_s=0.3)
    # the sample journal on the same disk: its appends fail too, and must not stall the agent
    config = config.model_copy(update={"sample_journal": small_disk / "journal.jsonl"})
    sub = Subscriber(mosquitto, topics.telemetry_filter(SITE))
    acker = Acker(mosquitto)
    agent, thread = start_agent(config)
    vendor = Vendor(site_broker)
    health_topic = topics.telemetry(SITE, HEALTH_DEVICE)

    def health() -> list[Telemetry]:
        return [decode_telemetry(m.payload) for m in sub.snapshot() if m.topic == health_topic]

    try:
        vendor.send(range(1, 21))
        wait_until(lambda: len(gas_of(sub)) == 20, what="20 sent while the disk has room")
        filler = fill(small_disk)
        sent = 20
        deadline = time.monotonic() + 30
        while not agent.writer.failing and time.monotonic() < deadline:  # until the WAL must grow
            vendor.send(range(sent + 1, sent + 51))
            sent += 50
        assert agent.writer.fault is OutboxFault.DISK_FULL, agent.writer.error
        assert "full" in agent.writer.error
        assert "rollback" not in agent.writer.error
        vendor.send(range(sent + 1, sent + 51))  # heard while the disk is full: kept in memory
        sent += 50
        wait_until(lambda: agent.outbox.unwritten >= 50, what="messages kept in memory")

        # the metric
        metrics = agent.metrics_text()
        assert f'lifeline_edge_outbox_disk_full{{site="{SITE}"}} 1' in metrics
        assert f'lifeline_edge_outbox_write_failing{{site="{SITE}"}} 1' in metrics
        assert f'lifeline_edge_outbox_disk_full_total{{site="{SITE}"}} 0' not in metrics

        # the health telemetry, which reached the broker although the outbox takes nothing
        def full_reports() -> list[Telemetry]:
            return [t for t in health() if t.samples[0].values.get("outbox_fault") == "disk_full"]

        sub.wait_for(lambda _: bool(full_reports()), timeout=10)
        report = full_reports()[-1].samples[0].values
        text = report["outbox_write_problem"]
        assert isinstance(text, str)
        assert text.startswith(
            f"outbox disk full: {report['outbox_disk_free_bytes']:,} bytes free on {state}; keeping "
        )
        assert text.endswith(" messages in memory")
        assert isinstance(report["outbox_unwritten"], int)
        assert report["outbox_unwritten"] > 0

        # the alert: the shipped pack judges the telemetry as received
        engine = Engine(load_rules([PACKS / "edge.yaml"]))
        raised = [t for m in health() for t in engine.observe(m) if t.rule == "edge.outbox.cannot_write"]
        assert [(t.severity, t.device, t.point) for t in raised] == [("critical", "edge", "outbox_write_problem")]
        assert isinstance(raised[0].value, str)
        assert raised[0].value.startswith("outbox disk full: ")

        # space again: everything kept in memory is written, sent and confirmed; the alert clears
        filler.unlink()
        wait_until(lambda: not agent.writer.failing, timeout=10, what="writes again")
        wait_until(lambda: len(agent.outbox) == 0, timeout=20, what="everything confirmed")
        got = gas_of(sub)
        assert got == {(agent.run_id, seq): T0 + seq for seq in range(1, sent + 1)}  # nothing lost
        sub.wait_for(lambda _: health()[-1].samples[0].values.get("outbox_fault") == "", timeout=10)
        cleared = [t for m in health() for t in engine.observe(m) if t.rule == "edge.outbox.cannot_write"]
        assert [t.severity for t in cleared] == [None]
        assert agent.outbox.stats.memory_dropped == 0
        assert f'lifeline_edge_outbox_disk_full{{site="{SITE}"}} 0' in agent.metrics_text()
    finally:
        vendor.close()
        thread.stop()
        acker.close()
        sub.close()
