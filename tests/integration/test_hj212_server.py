"""The HJ 212 server on real sockets and a real Mosquitto: 500 concurrent stations answered, the simulator end to
end (station -> server -> broker -> subscriber, right values), faults dead-lettered in stream order with the good
packets still through, answers held until the broker acknowledged, and the CLI's events file."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from device_profiles import Profile, load_catalogue
from edge_agent.hj212 import Hj212Config, Hj212Server, LoadedConfig, build_config
from infra.deadletter import DeadLetter, DeadLetterStore
from lifeline.broker_auth import hj212_account
from simulators.behaviours.flue_gas_cems import CemsParams, FlueGasCems
from simulators.hj212 import Hj212Station
from simulators.hj212 import frame as hj212_frame
from telemetry import decode_status, decode_telemetry
from testing import Mosquitto, free_port, wait_for_port
from tests.helpers import LoopThread, Subscriber, account_for, wait_until

pytestmark = pytest.mark.integration

PW = "pw2026"
CATALOGUE = load_catalogue()


def _broker(mosquitto: Mosquitto) -> dict[str, object]:
    """Every broker connection of this module is configured here: the HJ 212 server's account for its sites."""
    account = account_for(mosquitto, hj212_account(["many", "plant-7"]), reconnect_initial_s=0.1, reconnect_max_s=0.5)
    return account.model_dump(mode="json")


def _subscriber(mosquitto: Mosquitto, topic_filter: str) -> Subscriber:
    return Subscriber(mosquitto, topic_filter)


def _packet(segment: str) -> bytes:  # framed by the simulator's own encoder, not the server's code
    return hj212_frame(segment.encode())


def _config(mosquitto: Mosquitto, stations: list[dict[str, object]], tmp_path: Path, **extra: object) -> LoadedConfig:
    pw = tmp_path / "passwords.yaml"
    pw.write_text(yaml.safe_dump({str(s["mn"]): PW for s in stations}))
    pw.chmod(0o600)
    config = Hj212Config.model_validate(
        {
            "listen": {"port": 0},
            "broker": _broker(mosquitto),
            "client_id": f"hj212-test-{os.getpid()}",
            "passwords_file": str(pw),
            "dead_letter_path": str(tmp_path / "deadletter.sqlite"),
            "stations": stations,
            **extra,
        }
    )
    return build_config(config, catalogue=CATALOGUE)


class RunningServer:
    def __init__(self, loaded: LoadedConfig, events: Path | None = None) -> None:
        self.server = Hj212Server(loaded, events_path=events)
        self.thread = LoopThread(self.server.run)
        wait_until(lambda: self.server.port is not None and self.server.link.connected, 10, "server up")

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def stop(self) -> None:
        self.thread.stop()


@pytest.fixture
def running(request: pytest.FixtureRequest) -> Iterator[list[RunningServer]]:
    servers: list[RunningServer] = []
    yield servers
    for s in servers:
        s.stop()


def _dead_letters(tmp_path: Path) -> list[DeadLetter]:
    store = DeadLetterStore(tmp_path / "deadletter.sqlite")
    try:
        return store.oldest()
    finally:
        store.close()


# -- 500 stations -------------------------------------------------------------------------------------------------
N = 500


def test_500_concurrent_stations_are_all_answered(
    mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]
) -> None:
    stations: list[dict[str, object]] = [
        {"mn": f"ST{i:05d}", "site": "many", "device": f"ww-{i:03d}", "profile": "wastewater_outlet_hj212"}
        for i in range(N)
    ]
    srv = RunningServer(_config(mosquitto, stations, tmp_path))
    running.append(srv)
    sub = _subscriber(mosquitto, "lifeline/v1/many/+/telemetry")

    async def station(i: int, all_connected: asyncio.Event, answers: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        connected.append(i)
        if len(connected) == N:
            all_connected.set()
        await all_connected.wait()
        for k in range(2):
            qn = f"2026112510000{k}{i % 1000:03d}"[:17].ljust(17, "0")
            writer.write(
                _packet(
                    f"QN={qn};ST=32;CN=2011;PW={PW};MN=ST{i:05d};Flag=5;"
                    f"CP=&&DataTime=2026112510000{k};w01018-Rtd={i}.{k},w01018-Flag=N&&"
                )
            )
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), 20)
            assert f"QN={qn};ST=91;CN=9014;".encode() in answer
            answers.append(i)
        writer.close()

    connected: list[int] = []
    answers: list[int] = []

    async def main() -> int:
        all_connected = asyncio.Event()
        tasks = [asyncio.ensure_future(station(i, all_connected, answers)) for i in range(N)]
        await asyncio.wait_for(all_connected.wait(), 30)
        peak = srv.server.connections
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        return peak

    peak = asyncio.run(main())
    assert peak == N  # all 500 connected at once, on the server's side too
    assert sorted(answers) == sorted([*range(N), *range(N)])
    got = sub.wait_for(lambda m: len(m) >= 2 * N, timeout=20)
    values = sorted(decode_telemetry(m.payload).samples[0].values["cod"] for m in got)  # type: ignore[type-var]
    assert values == sorted(float(f"{i}.{k}") for i in range(N) for k in range(2))
    assert srv.server.counts["packets_accept"] == 2 * N
    assert srv.server.counts["packets_reject"] == 0
    sub.close()


# -- the simulator end to end ---------------------------------------------------------------------------------------
def _sent_values(packet: bytes, profile: Profile) -> dict[str, float]:
    """What the station put in a real-time packet, read with a regex of the test's own."""
    assert profile.hj212 is not None
    names = {p.code: p.name for p in profile.hj212.points}
    return {
        names[c]: float(v) for c, v in re.findall(rb"([a-z][0-9]{5})-Rtd=(-?[0-9.]+)", packet) for c in [c.decode()]
    }


def test_simulated_cems_end_to_end(mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]) -> None:
    profile = CATALOGUE["flue_gas_cems_hj212"]
    mn = "010000A8900016F000169DC0"
    srv = RunningServer(
        _config(mosquitto, [{"mn": mn, "site": "plant-7", "device": "cems-1", "profile": profile.name}], tmp_path)
    )
    running.append(srv)
    sub = _subscriber(mosquitto, "lifeline/v1/plant-7/#")
    no_calibration = FlueGasCems(1, CemsParams(calibration_min=0))  # its daily check (03:00) would flag the data C
    station = Hj212Station(
        mn,
        PW,
        profile,
        "127.0.0.1",
        srv.port,
        rtd_interval_s=0.2,
        minute_every_s=0.5,
        hour_every_s=None,
        answer=True,
        timeout_s=2,
        behaviour=no_calibration,
    )

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(station.run(stop))
        await asyncio.sleep(1.3)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    rtd = [p for p in station.sent_log if b"CN=2011" in p]
    assert len(rtd) >= 5
    assert station.counts["answered"] == station.counts["sent"]
    telemetry = sub.wait_for(lambda m: sum(x.topic.endswith("/telemetry") for x in m) >= len(rtd) + 1, 10)
    messages = [decode_telemetry(m.payload) for m in telemetry if m.topic.endswith("/telemetry")]
    realtime = [m.samples[0].values for m in messages if "so2" in m.samples[0].values]
    sent = [_sent_values(p, profile) for p in rtd]
    assert [{k: v for k, v in r.items() if k in s} for r, s in zip(realtime, sent, strict=True)] == sent
    assert all(r["so2_load"] > 0 for r in realtime)  # type: ignore[operator]  # derived at the ingest (no o2_ref: no _zs)
    assert all(m.measurement == "flue_gas" and m.profile == profile.name for m in messages)
    minute = [m.samples[0].values for m in messages if "so2_minute_avg" in m.samples[0].values]
    assert minute
    assert minute[0]["flue_flow_minute_total"] > 0  # type: ignore[operator]
    statuses = sub.wait_for(lambda m: any(x.topic.endswith("/status") and b'"online":false' in x.payload for x in m))
    online = [decode_status(m.payload).online for m in statuses if m.topic.endswith("/status")]
    assert online == [True, False]
    sub.close()


def test_simulator_faults_are_dead_lettered_in_stream_order(
    mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]
) -> None:
    profile = CATALOGUE["wastewater_outlet_hj212"]
    events = tmp_path / "events.jsonl"
    srv = RunningServer(
        _config(mosquitto, [{"mn": "WW1", "site": "plant-7", "device": "outlet-1", "profile": profile.name}], tmp_path),
        events,
    )
    running.append(srv)
    sub = _subscriber(mosquitto, "lifeline/v1/plant-7/+/telemetry")
    station = Hj212Station(
        "WW1",
        PW,
        profile,
        "127.0.0.1",
        srv.port,
        rtd_interval_s=0.05,
        minute_every_s=None,
        hour_every_s=None,
        answer=True,
        timeout_s=2,
        legacy_codes=True,
    )
    for fault in ("garbage", "bad_crc", "split_writes", "byte_by_byte", "bad_password", "unknown_code"):
        station.inject(fault)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(station.run(stop))

        async def eight_sent() -> None:
            while len(station.sent_log) < 8:  # noqa: ASYNC110 (the simulator has no event for it; bounded below)
                await asyncio.sleep(0.02)

        await asyncio.wait_for(eight_sent(), 10)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    wait_until(lambda: len(events.read_bytes().splitlines()) >= 9, 5, "events written")
    lines = [orjson.loads(x) for x in events.read_bytes().splitlines()]
    outcomes = [x.get("reason", x["outcome"]) for x in lines][:9]
    # garbage: the bytes before its '##' (bad_header), its '##' (bad_length), then the packet behind it
    assert outcomes == [
        "bad_header",
        "bad_length",
        "accept",
        "bad_crc",
        "accept",
        "accept",
        "bad_password",
        "accept",
        "accept",
    ]
    assert all(x["packet"]["PW"] == "******" for x in lines if x["outcome"] == "accept")
    assert lines[2]["packet"]["readings"][0]["code"] == "011"  # the HJ/T 212-2005 code, as the parser read it
    letters = _dead_letters(tmp_path)
    assert [x.reason.split(":")[0] for x in letters] == [
        "bad_header",
        "bad_length",
        "bad_crc",
        "bad_password",
        "unmapped",
    ]
    assert all(PW not in x.reason and PW.encode() not in x.payload for x in letters)
    assert {(x.source, x.stage, x.replayable) for x in letters} == {("hj212", "hj212", False)}
    assert "zz9999-Rtd: code not in the profile" in letters[-1].reason
    good = sum(1 for x in lines if x["outcome"] == "accept")
    got = sub.wait_for(lambda m: len(m) >= good, 10)
    assert all("cod" in decode_telemetry(m.payload).samples[0].values for m in got)
    sub.close()


def test_answer_waits_until_the_broker_has_the_telemetry(
    mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]
) -> None:
    srv = RunningServer(
        _config(
            mosquitto,
            [{"mn": "WW1", "site": "plant-7", "device": "outlet-1", "profile": "wastewater_outlet_hj212"}],
            tmp_path,
        )
    )
    running.append(srv)
    mosquitto.stop()
    wait_until(lambda: not srv.server.link.connected, 5, "server sees the broker gone")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
        conn.sendall(
            _packet(
                f"QN=20261125100000123;ST=32;CN=2011;PW={PW};MN=WW1;Flag=5;"
                "CP=&&DataTime=20261125100000;w01018-Rtd=35.2&&"
            )
        )
        conn.settimeout(1.0)
        with pytest.raises(TimeoutError):
            conn.recv(100)  # no answer while the reading is only in memory
        mosquitto.start()
        conn.settimeout(10.0)
        answer = conn.recv(200)
    assert answer == _packet(f"QN=20261125100000123;ST=91;CN=9014;PW={PW};MN=WW1;Flag=4;CP=&&&&")


def test_idle_and_surplus_connections_are_closed(
    mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]
) -> None:
    srv = RunningServer(
        _config(
            mosquitto,
            [{"mn": "WW1", "site": "plant-7", "device": "outlet-1", "profile": "wastewater_outlet_hj212"}],
            tmp_path,
            max_connections=1,
            idle_timeout_s=0.5,
        )
    )
    running.append(srv)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as first:
        wait_until(lambda: srv.server.connections == 1, 5, "first connection")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as second:
            assert second.recv(10) == b""  # closed at once: over max_connections
        started = time.monotonic()
        assert first.recv(10) == b""  # closed after idle_timeout_s of silence
        assert time.monotonic() - started < 3
    assert srv.server.counts["connections_refused"] == 1


# -- the command line -------------------------------------------------------------------------------------------------
def test_cli_writes_the_events_file(mosquitto: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "hj212.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": {"port": port},
                "broker": _broker(mosquitto),
                "stations": [
                    {
                        "mn": "WW1",
                        "site": "plant-7",
                        "device": "outlet-1",
                        "profile": "wastewater_outlet_hj212",
                        "password": "env:HJ212_CLI_PW",
                    }
                ],
            }
        )
    )
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lifeline", "hj212", "--config", str(config), "--events", str(events)],
        env={**os.environ, "HJ212_CLI_PW": PW},
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 20, proc)
        good = _packet(
            f"QN=20261125100000123;ST=32;CN=2011;PW={PW};MN=WW1;Flag=4;"
            "CP=&&DataTime=20261125100000;w01018-Rtd=35.2,w01018-Flag=N&&"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(good[:-6] + b"0000\r\n" + good)
        wait_until(lambda: events.exists() and len(events.read_bytes().splitlines()) == 2, 10, "two events")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    first, second = (orjson.loads(x) for x in events.read_bytes().splitlines())
    assert first["outcome"] == "reject"
    assert first["reason"] == "bad_crc"
    assert set(first) == {"peer", "outcome", "reason", "detail"}
    assert re.fullmatch(r"127\.0\.0\.1:\d+", first["peer"])
    assert second == {
        "peer": first["peer"],
        "outcome": "accept",
        "packet": {
            "QN": "20261125100000123",
            "ST": "32",
            "CN": "2011",
            "PW": "******",
            "MN": "WW1",
            "Flag": 4,
            "PNUM": None,
            "PNO": None,
            "DataTime": "20261125100000",
            "readings": [{"code": "w01018", "suffix": "Rtd", "value": "35.2", "flag": "N"}],
        },
    }
    assert PW.encode() not in err  # never logged


def test_stopping_the_server_marks_its_stations_offline(mosquitto: Mosquitto, tmp_path: Path) -> None:
    srv = RunningServer(
        _config(
            mosquitto,
            [{"mn": "WW1", "site": "plant-7", "device": "outlet-1", "profile": "wastewater_outlet_hj212"}],
            tmp_path,
        )
    )
    sub = _subscriber(mosquitto, "lifeline/v1/plant-7/+/status")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as conn:
        conn.sendall(
            _packet(
                f"QN=20261125100000123;ST=32;CN=2011;PW={PW};MN=WW1;Flag=4;"
                "CP=&&DataTime=20261125100000;w01018-Rtd=35.2&&"
            )
        )
        sub.wait_for(lambda m: len(m) == 1)
        srv.stop()
        assert conn.recv(10) == b""
    got = sub.wait_for(lambda m: len(m) == 2)
    last = decode_status(got[-1].payload)
    assert (last.online, last.reason) == (False, "ingest server stopped")
    sub.close()
