"""Garbage on the HJ 212 port (no credentials needed to send it, issue 24): a connection that sends only bad frames
is closed after ``max_bad_frames`` of them in a row, and the dead letters stay under their byte quota with the
kept and dropped counts in the metrics; a station that sends good packets between bad ones is never closed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing import Mosquitto
from tests.helpers import wait_until
from tests.integration.test_hj212_server import PW, RunningServer, _config, _packet

pytestmark = pytest.mark.integration


@pytest.fixture
def running() -> Iterator[list[RunningServer]]:
    servers: list[RunningServer] = []
    yield servers
    for s in servers:
        s.stop()


WW1: list[dict[str, object]] = [
    {"mn": "WW1", "site": "plant-7", "device": "outlet-1", "profile": "wastewater_outlet_hj212"}
]


def _garbage(i: int) -> bytes:  # a frame with a wrong CRC, and an unknown station's packet
    if i % 2:
        return b"##0010QN=1234567ABCD\r\n"
    return _packet(f"QN=20261125100000{i % 1000:03d};ST=32;CN=2011;PW=nope;MN=EVIL{i};Flag=5;CP=&&&&")


def _metric(srv: RunningServer, name: str) -> float:
    for line in srv.server.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_garbage_only_connection_is_closed_after_max_bad_frames(
    mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]
) -> None:
    srv = RunningServer(_config(mosquitto, WW1, tmp_path, max_bad_frames=5))
    running.append(srv)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as conn:
        for i in range(4):
            conn.sendall(_garbage(i))
        wait_until(lambda: srv.server.counts["packets_reject"] == 4, 5, "four rejects")
        assert srv.server.connections == 1  # four bad frames: still open
        conn.sendall(_garbage(4))
        assert conn.recv(10) == b""  # the fifth in a row: closed
    wait_until(lambda: srv.server.connections == 0, 5, "connection gone")
    assert srv.server.counts["connections_closed_bad_frames"] == 1
    assert _metric(srv, "lifeline_hj212_connections_closed_bad_frames_total") == 1


def test_good_packets_between_bad_ones_keep_the_connection(
    mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]
) -> None:
    srv = RunningServer(_config(mosquitto, WW1, tmp_path, max_bad_frames=3))
    running.append(srv)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as conn:
        for i in range(4):
            conn.sendall(_garbage(1) + _garbage(3))  # two bad ones, then a good one: never three in a row
            good = (
                f"QN=2026112510000{i}123;ST=32;CN=2011;PW={PW};MN=WW1;Flag=5;"
                f"CP=&&DataTime=2026112510000{i};w01018-Rtd=35.2&&"
            )
            conn.sendall(_packet(good))
            assert b"CN=9014" in conn.recv(200)
    assert srv.server.counts["connections_closed_bad_frames"] == 0
    assert srv.server.counts["packets_accept"] == 4


def test_dead_letters_stay_under_their_byte_quota_with_counts_in_the_metrics(
    mosquitto: Mosquitto, tmp_path: Path, running: list[RunningServer]
) -> None:
    srv = RunningServer(_config(mosquitto, WW1, tmp_path, max_bad_frames=100_000, dead_letter_max_bytes=20_000))
    running.append(srv)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as conn:
        conn.sendall(b"".join(_garbage(2 * i) for i in range(600)))  # about 60 kB of unknown stations' packets
        wait_until(lambda: srv.server.counts["packets_reject"] == 600, 10, "600 rejects")
    kept, dropped = (
        _metric(srv, "lifeline_hj212_dead_letters_kept"),
        _metric(srv, "lifeline_hj212_dead_letters_dropped_total"),
    )
    assert _metric(srv, "lifeline_hj212_dead_letters_kept_bytes") <= 20_000
    assert dropped > 0
    assert kept + dropped == 600
    assert _metric(srv, "lifeline_hj212_dead_letters_total") == 600
