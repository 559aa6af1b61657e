"""The fault suite: while the mini district runs, one part at a time is killed, stopped or frozen and brought back;
after each, every sample an edge took is in InfluxDB exactly once (per device and sample time, against the edge's
sample journal), no alert is raised twice, an alarm whose reading was taken during an outage is raised after the
recovery, and the edge's memory stayed bounded. Loopback only; each case bounded (about a minute or less).
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import fill
from tests.faults.harness import FaultDistrict, now_ms
from tests.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
EDGE_RSS_MAX_KIB = 400 * 1024  # an edge agent holding a minute's backlog stays far below this (it is ~100 MB)


def _running(d: FaultDistrict, seconds: float = 4.0) -> None:
    d.running(seconds)


def _leak(d: FaultDistrict) -> int:
    return d.leak()


def _gas_alerts(d: FaultDistrict) -> list[object]:
    return [a for a in d.alerts() if a.alert.key.device == "gas-1" and a.alert.key.rule_id.startswith("gas.lel")]


def _raised_once(d: FaultDistrict) -> None:
    for alert in d.alerts():
        assert d.raises(alert.id) == 1, f"alert {alert.alert.key} raised more than once"


def test_edge_killed_and_restarted(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district()
    _running(d)
    edge = d.edges["mini-water"]
    killed = now_ms()
    edge.kill()
    time.sleep(3)
    edge.start()
    time.sleep(5)
    # between writing its outbox file and its journal a killed edge may leave a sample stored but not journalled
    assert d.check_stored(allow_unjournalled_ms=(killed - 2_000, killed + 500)) > 0


@pytest.mark.parametrize("outage_s", [20, 40], ids=["broker-down-20s", "broker-down-40s"])
def test_broker_killed_and_restarted_late(make_district, outage_s: int) -> None:  # type: ignore[no-untyped-def]
    d = make_district(sensor_broker=True)  # the sensors reach their edge through the site's own broker
    _running(d)
    d.kill_broker()  # Mosquitto kill -9: it forgets what it had not saved; the edges keep everything on disk
    time.sleep(2)
    _leak(d)  # taken during the outage: must be raised after it
    peak = 0
    deadline = time.monotonic() + outage_s - 2
    while time.monotonic() < deadline:
        peak = max(peak, *(e.rss_kib() for e in d.edges.values()))
        time.sleep(1)
    d.start_broker()
    assert d.check_stored() > 0
    wait_until(lambda: bool(_gas_alerts(d)), 30, "the gas alarm taken during the outage raised after it")
    _raised_once(d)
    assert peak < EDGE_RSS_MAX_KIB, f"an edge agent grew to {peak} KiB during the outage"


def test_broker_restarted_under_the_sensors(make_district) -> None:  # type: ignore[no-untyped-def]
    """The central broker restarts (same port, same persistence) while the MQTT sensors publish to it, as
    ``lifeline up`` runs them: every reading the broker acknowledged to a sensor is stored (the edge's sensor link
    keeps a persistent session, so what the sensors send before the link is back waits for it)."""
    d = make_district()  # the sensors on the central broker, beside the edges' uplinks
    _running(d)  # from here the edges' sensor links have subscribed: what the sensors publish has a listener
    listening = now_ms()
    for _ in range(3):
        d.broker.restart()  # SIGTERM: Mosquitto saves its sessions; the same port and persistence folder
        time.sleep(4)
    assert d.check_sensor_readings_stored(since_ms=listening) > 0
    assert d.check_stored() > 0


def test_bridge_killed_mid_stream(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district()
    _running(d)
    d.bridge.kill()
    time.sleep(4)
    d.bridge.start()
    assert d.check_stored() > 0


def test_rules_engine_killed_during_an_alarm(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district()
    _running(d)
    _leak(d)
    wait_until(lambda: bool(_gas_alerts(d)), 30, "the gas alarm raised")
    d.rules.kill()
    time.sleep(3)
    d.rules.start()
    time.sleep(5)  # the restarted engine replays what it had not committed
    _raised_once(d)
    assert d.check_stored() > 0


def test_influxd_killed_and_restarted(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district()
    _running(d)
    d.influx.kill()
    time.sleep(5)
    d.influx.start()
    assert d.check_stored() > 0


def test_influxd_frozen_for_a_minute(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district()
    _running(d)
    d.freeze_influx()  # SIGSTOP: connections hang instead of failing
    time.sleep(60)
    d.thaw_influx()
    assert d.check_stored(timeout_s=90) > 0


def test_edge_stopped_cleanly_during_a_broker_outage(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district()
    _running(d)
    d.kill_broker()
    time.sleep(3)
    edge = d.edges["mini-water"]
    edge.stop()  # SIGTERM while nothing can be sent: what is unconfirmed stays in its file
    time.sleep(2)
    edge.start()
    time.sleep(3)
    d.start_broker()
    assert d.check_stored() > 0


def test_bridge_away_while_the_broker_restarts(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district()
    _running(d)
    d.bridge.kill()
    time.sleep(2)
    d.kill_broker()
    time.sleep(3)
    d.start_broker()  # the bridge's session and its queue may be gone: the edges resend what was not confirmed
    time.sleep(3)
    d.bridge.start()
    assert d.check_stored() > 0


def test_a_full_outbox_drops_the_oldest_counts_and_alerts(make_district) -> None:  # type: ignore[no-untyped-def]
    d = make_district(outbox_max_bytes=40_000)  # about 20 s of the water site's readings
    _running(d)
    d.kill_broker()
    time.sleep(30)
    d.start_broker()
    journal, stored = d.wait_all_stored(timeout_s=30)
    lost = {dev: sorted(set(ts) - set(stored.get(dev, []))) for dev, ts in journal.items()}
    lost_total = sum(len(v) for v in lost.values())
    assert lost_total > 0, "the quota should have dropped something"
    for dev, gone in lost.items():
        if gone:  # the oldest go: every lost sample is older than every sample kept after the first loss
            kept_after = [ts for ts in stored[dev] if ts > gone[0]]
            assert not kept_after or max(gone) <= max(kept_after), dev
    log = (d.tmp / "edge-mini-water.log").read_text()
    assert any("level=WARNING" in line and "dropp" in line for line in log.splitlines()), "logged at WARNING"
    wait_until(
        lambda: any(a.alert.key.rule_id == "edge.outbox.dropping" for a in d.alerts()),
        40,
        "the dropping raised as an alert",
    )


def test_edge_disk_full_is_alerted_and_loses_nothing(make_district, small_disk) -> None:  # type: ignore[no-untyped-def]
    """The water edge's outbox on a small disk of its own, filled to the last byte while the district runs: the
    shipped edge pack raises "outbox cannot write" for that site, and once space is back every sample is stored."""
    d = make_district(packs="shipped", state_dirs={"mini-water": small_disk / "edge"})
    _running(d)
    filler = fill(small_disk)

    def alerted() -> bool:
        fill(small_disk)  # kept full: what the edge frees (a journal checkpoint) is taken again
        return any(
            a.alert.key.rule_id == "edge.outbox.cannot_write" and a.alert.key.site == "mini-water" for a in d.alerts()
        )

    wait_until(alerted, 60, "the full disk raised as an alert")
    filler.unlink()
    assert d.check_stored(timeout_s=90) > 0
