"""Worker sharding of the edge agent (pure parts): how many workers, which devices each polls."""

from __future__ import annotations

from device_profiles import load_catalogue
from edge_agent.config import DeviceConfig, ModbusDefaults
from edge_agent.workers import AUTO_MIN_DEVICES, resolve_workers, shard, usable_cores


def test_resolve_workers() -> None:
    assert resolve_workers(1, 10_000) == 1
    assert resolve_workers(4, 3) == 3, "never more workers than devices"
    assert resolve_workers("auto", AUTO_MIN_DEVICES - 1) == 1, "auto keeps small sites in one process"
    assert resolve_workers("auto", 10_000) == usable_cores()


def test_shard_round_robin_keeps_every_device_once() -> None:
    profile = load_catalogue()["water_quality_station"]
    devices = [(DeviceConfig(id=f"wq-{i}", profile=profile.name, host="127.0.0.1"), profile, i / 10) for i in range(10)]
    shards = shard(devices, 3, ModbusDefaults(), "s", 0)
    ids = [[d.id for d, _, _ in s.devices] for s in shards]
    assert ids == [["wq-0", "wq-3", "wq-6", "wq-9"], ["wq-1", "wq-4", "wq-7"], ["wq-2", "wq-5", "wq-8"]]
    assert shards[1].devices[0][2] == 0.1, "a device keeps its phase"
