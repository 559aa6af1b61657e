"""Many Modbus devices of one profile in one process, for benchmarks: ``python -m simulators.farm``.

Prints one JSON line ``{"ports": [...]}`` once every device listens, then serves until SIGTERM, SIGINT or the
end of standard input (so that it goes when its parent does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence

from device_profiles import load_catalogue
from simulators.behaviours import make_behaviour
from simulators.modbus import ModbusDevice
from simulators.scenario import device_seed


async def serve(profile_name: str, count: int, host: str, seed: int, step_interval_s: float) -> None:
    profile = load_catalogue()[profile_name]
    devices = [
        ModbusDevice(
            f"farm-{i:05d}",
            profile,
            make_behaviour(profile_name, device_seed(seed, f"farm-{i:05d}")),
            host=host,
            step_interval_s=step_interval_s,
        )
        for i in range(count)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(ValueError, OSError):  # no usable stdin: run until a signal
        fd = sys.stdin.fileno()
        loop.add_reader(fd, lambda: None if os.read(fd, 4096) else stop.set())
    try:
        for device in devices:
            await device.start()
        print(json.dumps({"ports": [d.port for d in devices]}), flush=True)
        await stop.wait()
    finally:
        for device in devices:
            await device.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.farm", description=__doc__)
    p.add_argument("--profile", required=True, help="a Modbus profile of the catalogue")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--step-interval", type=float, default=0.2, help="seconds between model steps of a device")
    args = p.parse_args(argv)
    asyncio.run(serve(args.profile, args.count, args.host, args.seed, args.step_interval))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
