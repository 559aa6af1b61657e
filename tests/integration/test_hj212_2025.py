"""HJ 212-2025 on real sockets and a real Mosquitto: a simulated station that encrypts its CP with SM4 (its key in
a 0600 file) is read, published and answered; the same station unknown to the server's keys is refused, counted,
dead-lettered and answered 9011 so that it stops resending; the heartbeat keeps a connected station online and its
absence marks it offline (the retained status the rules engine reads), while a 2017 station beside it is unchanged."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.hj212 import Hj212Server
from simulators.hj212 import Hj212Fleet, Hj212Station
from telemetry import decode_status, decode_telemetry
from testing import Mosquitto
from tests.helpers import LoopThread, wait_until
from tests.integration.test_hj212_server import (
    CATALOGUE,
    PW,
    RunningServer,
    _config,
    _dead_letters,
    _packet,
)
from tests.integration.test_hj212_server import _subscriber as subscriber

pytestmark = pytest.mark.integration

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
MN = "010000A8900016F000169DC1"


@pytest.fixture
def running() -> Iterator[list[RunningServer]]:
    servers: list[RunningServer] = []
    yield servers
    for s in servers:
        s.stop()


def _station(port: int, **extra: object) -> Hj212Station:
    return Hj212Station(
        MN,
        PW,
        CATALOGUE["wastewater_outlet_hj212"],
        "127.0.0.1",
        port,
        version=2,
        sm4_key=KEY,
        heartbeat_s=0.3,
        serial="SN20260001",
        rtd_interval_s=0.2,
        minute_every_s=None,
        hour_every_s=None,
        answer=True,
        timeout_s=2,
        retries=3,
        **extra,  # type: ignore[arg-type]
    )


def _run(station: Hj212Station, seconds: float) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(station.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_sm4_station_end_to_end(mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]) -> None:
    fleet = Hj212Fleet([("plant-7", "outlet-1", _station(0))])
    entries = fleet.server_stations(fleet.write_keys(tmp_path / "keys"))
    assert (tmp_path / "keys" / f"{MN}.key").stat().st_mode & 0o077 == 0
    srv = RunningServer(_config(mosquitto, entries, tmp_path))
    running.append(srv)
    station = fleet.stations[0][2]
    station.port = srv.port
    sub = subscriber(mosquitto, "lifeline/v1/plant-7/#")
    _run(station, 1.2)
    rtd = [p for p in station.sent_log if b"CN=2011" in p]
    assert len(rtd) >= 4
    assert all(b"DataTime" not in p for p in rtd)  # encrypted on the wire
    assert station.counts["answered"] == station.counts["sent"] - station.counts["heartbeats"]
    assert station.counts["resent"] == 0
    got = sub.wait_for(lambda m: sum(x.topic.endswith("/telemetry") for x in m) >= len(rtd), 10)
    values = [decode_telemetry(m.payload).samples[0].values for m in got if m.topic.endswith("/telemetry")]
    assert all(set(v) >= {"cod", "nh3_n", "flow"} for v in values)
    counts = srv.server.counts
    assert counts["decrypted"] >= len(rtd)
    assert counts["heartbeats"] >= 2
    assert srv.server.rejects == {}
    sub.close()


def test_encrypted_station_without_a_key_is_refused_counted_and_stops_resending(
    mosquitto: Mosquitto,
    tmp_path: Path,
    running: list[RunningServer],
) -> None:
    entry = {"mn": MN, "site": "plant-7", "device": "outlet-1", "profile": "wastewater_outlet_hj212", "version": 2025}
    srv = RunningServer(_config(mosquitto, [entry], tmp_path))
    running.append(srv)
    station = _station(srv.port)
    _run(station, 1.0)
    rtd = [p for p in station.sent_log if b"CN=2011" in p]
    assert len(rtd) >= 3
    assert station.counts["refused"] == len(rtd)  # each answered 9011 QnRtn=2 at once
    assert station.counts["resent"] == 0
    assert srv.server.rejects["no_key"] == len(rtd)
    assert 'lifeline_hj212_rejects_total{reason="no_key"}' in srv.server.metrics_text()
    letters = [d for d in _dead_letters(tmp_path) if d.reason.startswith("no_key")]
    assert len(letters) == len(rtd)
    assert all((d.stage, d.topic) == ("hj212", f"hj212/{MN}") for d in letters)
    assert all(b"PW=******" in d.payload for d in letters)
    assert srv.server.counts["heartbeats"] >= 2  # not encrypted: the station is alive, and known to be


def test_heartbeat_liveness(mosquitto: Mosquitto, tmp_path: Path) -> None:
    now = [1_795_600_800.0]
    outlet = {"mn": MN, "site": "plant-7", "device": "outlet-1", "profile": "wastewater_outlet_hj212"}
    stations: list[dict[str, object]] = [
        {**outlet, "version": 2025, "heartbeat_s": 10},
        {"mn": "CEMS2017", "site": "plant-7", "device": "cems-1", "profile": "flue_gas_cems_hj212"},
    ]
    server = Hj212Server(_config(mosquitto, stations, tmp_path), clock=lambda: now[0])
    thread = LoopThread(server.run)
    try:
        wait_until(lambda: server.port is not None and server.link.connected, 10, "server up")
        assert server.port is not None
        sub = subscriber(mosquitto, "lifeline/v1/plant-7/+/status")
        beat = _packet(f"QN=20261125100000123;ST=91;CN=9015;PW={PW};MN={MN};Flag=8;CP=&&&&")
        old = _packet(
            f"QN=20261125100000124;ST=31;CN=2011;PW={PW};MN=CEMS2017;Flag=4;CP=&&DataTime=20261125100000;"
            "a21026-Rtd=20.5&&"
        )
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn,
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn_2017,
        ):
            conn.sendall(beat)
            assert b"CN=9013" in conn.recv(200)
            conn_2017.sendall(old)

            def statuses(n: int) -> list[tuple[str, bool, str]]:
                got = sub.wait_for(lambda m: len(m) >= n)
                return [(m.topic.split("/")[3], s.online, s.reason) for m in got for s in [decode_status(m.payload)]]

            assert sorted(statuses(2)) == [("cems-1", True, ""), ("outlet-1", True, "")]
            now[0] += 25  # two intervals and a half: still alive
            conn.sendall(beat)
            assert b"CN=9013" in conn.recv(200)
            now[0] += 31  # past three intervals without a heartbeat, the connection open
            got = statuses(3)
            assert got[2][:2] == ("outlet-1", False)
            assert "no heartbeat (CN 9015)" in got[2][2]
            conn.sendall(beat)  # back
            assert b"CN=9013" in conn.recv(200)
            assert statuses(4)[3] == ("outlet-1", True, "")
            # the 2017 station (no heartbeat_s) stayed online all along, silent but connected
            assert [s for s in statuses(4) if s[0] == "cems-1"] == [("cems-1", True, "")]
            assert server.counts["heartbeats"] == 3
            assert "lifeline_hj212_stations_online 2" in server.metrics_text()
        sub.close()
    finally:
        thread.stop()
