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


def test_fast_block_decoding_equals_the_general_path() -> None:
    """decode_block's precompiled decoders give what decode_point_reading gives, for every catalogue point."""
    import math
    import random

    from edge_agent.decode import decode_block, decode_point_reading
    from edge_agent.planner import plan

    rng = random.Random(14)
    for profile in load_catalogue().values():
        if profile.modbus is None:
            continue
        for request in plan(profile.modbus):
            if request.function.is_bit:
                continue
            for _ in range(50):
                words = [rng.choice((0, 1, 0x7FFF, 0x8000, 0xFFFF, rng.randrange(65536))) for _ in range(request.count)]
                fast = decode_block(request, words)
                for p in request.points:
                    o = p.address - request.start
                    want = decode_point_reading(p, words[o : o + p.count])
                    got = fast[p.name]
                    assert got[1] == want[1], (profile.name, p.name, words)
                    same_nan = isinstance(want[0], float) and isinstance(got[0], float) and math.isnan(want[0])
                    assert same_nan or got[0] == want[0], (profile.name, p.name, got, want)
