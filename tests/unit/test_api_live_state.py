"""The honest device state: judged from sample times, the agent's birth and death and the device's own status, at a
clock the test moves."""

from __future__ import annotations

from pathlib import Path

from api import ApiService
from api.config import ApiConfig
from api.live import LiveCache, Thresholds, thresholds_for
from device_profiles import load_catalogue
from telemetry import AgentState, DeviceStatus, Telemetry

LIMITS = Thresholds(stale_ms=3_000, offline_ms=300_000)


def _cache() -> LiveCache:
    return LiveCache(lambda _profile: LIMITS)


def _reading(ts: int, device: str = "g1", seq: int = 1) -> Telemetry:
    return Telemetry.model_validate(
        {
            "site": "s1",
            "device": device,
            "profile": "sluice_gate_plc",
            "measurement": "sluice_gate",
            "seq": seq,
            "samples": [{"ts": ts, "values": {"gate_opening": 1.0}}],
        }
    )


def _agent(online: bool, ts: int) -> AgentState:
    return AgentState(site="s1", agent="edge-s1", online=online, ts=ts, reason="" if online else "lost")


def test_online_then_stale_then_offline_by_sample_time_alone() -> None:
    cache = _cache()
    cache.apply_telemetry(_reading(10_000))
    live = cache.live("s1", "g1", 11_000)
    assert live is not None
    assert (live.state, live.reason, live.since_ms) == ("online", "sampling", 10_000)
    assert live.last_sample_ms == 10_000
    stale = cache.live("s1", "g1", 13_000)  # a frozen agent: nothing arrives, no death message
    assert stale is not None
    assert (stale.state, stale.reason, stale.since_ms) == ("stale", "no_sample", 13_000)
    gone = cache.live("s1", "g1", 310_000)
    assert gone is not None
    assert (gone.state, gone.reason, gone.since_ms) == ("offline", "silent_too_long", 310_000)
    assert gone.last_sample_ms == 10_000


def test_the_samples_own_time_counts_not_the_time_it_arrived() -> None:
    cache = _cache()
    cache.apply_telemetry(_reading(1_000))  # arrives now (at 20 s) but was sampled 19 s ago: old data
    live = cache.live("s1", "g1", 20_000)
    assert live is not None
    assert live.state == "stale"


def test_online_since_stays_while_samples_keep_coming() -> None:
    cache = _cache()
    cache.apply_telemetry(_reading(10_000))
    assert cache.changes(10_500)[0][2].since_ms == 10_000
    cache.apply_telemetry(_reading(12_000, seq=2))
    live = cache.live("s1", "g1", 12_500)
    assert live is not None
    assert (live.state, live.since_ms, live.last_sample_ms) == ("online", 10_000, 12_000)


def test_agent_death_makes_its_devices_offline_and_birth_brings_back_sample_judgement() -> None:
    cache = _cache()
    cache.apply_telemetry(_reading(10_000))
    cache.apply_telemetry(_reading(10_000, device="g2"))
    cache.apply_agent(_agent(False, 2_000), received_ms=10_500)  # the will's ts is the time the agent connected
    for device in ("g1", "g2"):
        live = cache.live("s1", device, 10_600)
        assert live is not None
        assert (live.state, live.reason, live.since_ms, live.agent_online) == (
            "offline",
            "agent_offline",
            10_500,
            False,
        )
    cache.apply_agent(_agent(True, 20_000), received_ms=20_001)
    cache.apply_telemetry(_reading(20_100, seq=2))
    g1, g2 = cache.live("s1", "g1", 20_200), cache.live("s1", "g2", 20_200)
    assert g1 is not None
    assert (g1.state, g1.agent_online) == ("online", True)
    assert g2 is not None
    assert g2.state == "stale"


def test_the_devices_own_offline_status_wins_until_a_newer_sample() -> None:
    cache = _cache()
    cache.apply_telemetry(_reading(10_000))
    cache.apply_status(DeviceStatus(site="s1", device="g1", profile="sluice_gate_plc", online=False, ts=10_500))
    live = cache.live("s1", "g1", 10_600)
    assert live is not None
    assert (live.state, live.reason, live.since_ms) == ("offline", "device_offline", 10_500)
    cache.apply_telemetry(_reading(11_000, seq=2))
    live = cache.live("s1", "g1", 11_100)
    assert live is not None
    assert (live.state, live.since_ms) == ("online", 11_000)


def test_unknown_until_heard_and_none_for_a_device_never_named() -> None:
    cache = _cache()
    assert cache.live("s1", "g1", 0) is None
    cache.apply_status(DeviceStatus(site="s1", device="g1", profile="sluice_gate_plc", online=True, ts=5_000))
    live = cache.live("s1", "g1", 5_100)
    assert live is not None
    assert live.state == "online"
    assert live.last_sample_ms is None


def test_changes_announce_each_transition_once() -> None:
    cache = _cache()
    cache.apply_telemetry(_reading(10_000))
    assert [(d, c.state) for _, d, c in cache.changes(10_100)] == [("g1", "online")]
    assert cache.changes(10_200) == []
    assert [c.state for _, _, c in cache.changes(13_000)] == ["stale"]
    assert cache.changes(14_000) == []
    cache.apply_agent(_agent(False, 1_000), received_ms=14_500)
    assert [(c.state, c.reason) for _, _, c in cache.changes(14_600, "s1")] == [("offline", "agent_offline")]


def test_thresholds_come_from_the_profile() -> None:
    profiles = dict(load_catalogue())
    gate = thresholds_for(profiles["sluice_gate_plc"], stale_intervals=3, min_stale_s=5)
    assert gate.stale_ms == max(5_000, round(3 * profiles["sluice_gate_plc"].poll_interval_s * 1000))
    mqtt = next(p for p in profiles.values() if p.mqtt is not None)
    assert mqtt.mqtt is not None
    assert thresholds_for(mqtt).stale_ms == round(mqtt.mqtt.stale_after_s * 1000)
    hj212 = next(p for p in profiles.values() if p.hj212 is not None)
    assert thresholds_for(hj212, hj212_stale_s=180).stale_ms >= 180_000
    assert thresholds_for(None, offline_after_s=1).offline_ms >= thresholds_for(None).stale_ms


def test_the_config_sets_a_profiles_stale_time(tmp_path: Path) -> None:
    config = ApiConfig.model_validate(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'api.sqlite'}"},
            "live": {"stale_after_s": {"wastewater_outlet_hj212": 90}, "offline_after_s": 600},
        }
    )
    service = ApiService(config)
    try:
        assert service.thresholds("wastewater_outlet_hj212") == Thresholds(90_000, 600_000)
        gate = service.thresholds("sluice_gate_plc")
        assert gate.stale_ms == 5_000  # 3 polls of 1 s, never below min_stale_s (5 s)
        assert gate.offline_ms == 600_000
    finally:
        service.engine.dispose()


def test_the_devices_a_birth_names_are_known_but_unknown_until_heard() -> None:
    cache = _cache()
    birth = AgentState(site="s1", agent="edge-s1", online=True, ts=1_000, devices=["g1", "g2"])
    cache.apply_agent(birth, received_ms=1_000)
    assert [d.device for d in cache.devices("s1")] == ["g1", "g2"]
    live = cache.live("s1", "g2", 2_000)
    assert live is not None
    assert (live.state, live.reason, live.since_ms, live.agent_online) == ("unknown", "never_heard", None, True)
    cache.apply_telemetry(_reading(2_000))
    g1 = cache.live("s1", "g1", 2_100)
    assert g1 is not None
    assert g1.state == "online"
