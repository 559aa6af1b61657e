"""The HJ 212 station simulator, pure parts: its packets (its own encoder) parse with the server's decoder, its
faults break exactly what they say, and its demo fleet is a valid ingest config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from device_profiles import load_catalogue
from edge_agent.hj212 import (
    CpCipher,
    Frame,
    Hj212Config,
    Reason,
    Rejected,
    StreamDecoder,
    build_config,
    parse_segment,
)
from edge_agent.hj212.split import Reassembler
from simulators.hj212 import Hj212Station, demo_fleet
from simulators.hj212.station import _apply

CATALOGUE = load_catalogue()
NOW = 1_795_572_000.0  # 2026-11-25 10:00:00 Beijing time


def _station(profile: str = "wastewater_outlet_hj212", **kw: object) -> Hj212Station:
    return Hj212Station("WW1", "pw0001", CATALOGUE[profile], "127.0.0.1", 1, **kw)  # type: ignore[arg-type]


def test_real_time_packet_parses_with_the_servers_decoder() -> None:
    s = _station(answer=True)
    values, flag = s._values(NOW)
    [item] = StreamDecoder().feed(s.packet("2011", s.realtime_cp(values, flag, NOW), NOW))
    assert isinstance(item, Frame)
    p = parse_segment(item.segment)
    assert (p.st, p.cn, p.mn, p.flag, p.data_time) == ("32", "2011", "WW1", 5, "20261125100000")
    assert {r.code: float(r.value) for r in p.readings} == {
        "w01018": values["cod"],
        "w21003": values["nh3_n"],
        "w21011": values["tp"],
        "w21001": values["tn"],
        "w01001": values["ph"],
        "w00000": values["flow"],
    }


def test_minute_packet_has_statistics_and_totals() -> None:
    s = _station()
    window = [{"cod": 30.0, "flow": 100.0}, {"cod": 40.0, "flow": 100.0}]
    p = parse_segment(s.packet("2051", s.period_cp(window, NOW - 60, 60, "N"), NOW)[6:-6])
    got = {(r.code, r.suffix): r.value for r in p.readings}
    assert got[("w01018", "Avg")] == "35"
    assert got[("w01018", "Min")] == "30"
    assert got[("w00000", "Cou")] == "6"  # 100 L/s for 60 s = 6 m³
    assert got[("w01018", "Cou")] == "0.21"  # 35 mg/L x 100 L/s x 60 s = 0.21 kg


def test_legacy_codes() -> None:
    s = _station(legacy_codes=True)
    p = parse_segment(s.packet("2011", s.realtime_cp({"cod": 1.0, "flow": 2.0}, "N", NOW), NOW)[6:-6])
    assert [r.code for r in p.readings] == ["011", "B01"]


@pytest.mark.parametrize(
    ("fault", "kinds"),
    [
        ("bad_crc", ["bad_crc"]),
        ("garbage", ["bad_header", "bad_length", "frame"]),
        ("bad_password", ["frame"]),
        ("unknown_code", ["frame"]),
        ("split_writes", ["frame"]),
        ("byte_by_byte", ["frame"]),
    ],
)
def test_faults(fault: str, kinds: list[str]) -> None:
    s = _station()
    packet = _apply(s.packet("2011", s.realtime_cp({"cod": 1.0}, "N", NOW), NOW), fault, s)
    items = StreamDecoder().feed(packet)
    assert ["frame" if isinstance(i, Frame) else str(i.reason) for i in items] == kinds
    if fault == "bad_password":
        assert isinstance(items[0], Frame)
        assert parse_segment(items[0].segment).pw == "999999"
    if fault == "bad_crc":
        assert isinstance(items[0], Rejected)
        assert items[0].reason is Reason.BAD_CRC


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        _station().inject("gremlins")


def test_demo_fleet_is_a_valid_ingest_config(tmp_path: Path) -> None:
    fleet = demo_fleet("127.0.0.1", 9212, CATALOGUE)
    pw = tmp_path / "pw.yaml"
    pw.write_text(yaml.safe_dump(fleet.passwords()))
    pw.chmod(0o600)
    config = Hj212Config.model_validate({"passwords_file": str(pw), "stations": fleet.server_stations()})
    loaded = build_config(config, catalogue=CATALOGUE)
    assert sorted(s.config.device for s in loaded.stations.values()) == ["cems-1", "outlet-1"]


# -- HJ 212-2025 ---------------------------------------------------------------------------------------------------
KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


@pytest.mark.parametrize(
    ("cn", "encrypted"),
    [pytest.param("2011", True, id="data"), pytest.param("9015", False, id="heartbeat")],
)
def test_sm4_station_encrypts_the_cp_of_data_commands(cn: str, encrypted: bool) -> None:
    s = _station(version=2, sm4_key=KEY)
    cp = "DataTime=20261125100000;w01018-Rtd=35.2,w01018-Flag=N" if encrypted else ""
    [item] = StreamDecoder().feed(s.packet(cn, cp, NOW))
    assert isinstance(item, Frame)
    p = parse_segment(item.segment)
    assert p.flag == 8  # version 2, no answer requested (answer=False)
    assert (p.cipher is not None) is encrypted
    if encrypted:
        assert p.cipher is not None
        assert CpCipher(KEY).decrypt(p.cipher) == cp


def test_sm4_needs_a_16_byte_key_and_version_2() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        _station(version=1, sm4_key=KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        _station(version=2, sm4_key=KEY[:8])


def test_demo_fleet_with_sm4_is_a_valid_ingest_config(tmp_path: Path) -> None:
    fleet = demo_fleet("127.0.0.1", 9212, CATALOGUE, sm4=True)
    keys = fleet.write_keys(tmp_path)
    [(mn, path)] = keys.items()
    assert path.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="key file"):
        fleet.server_stations()
    pw = tmp_path / "pw.yaml"
    pw.write_text(yaml.safe_dump(fleet.passwords()))
    pw.chmod(0o600)
    config = Hj212Config.model_validate({"passwords_file": str(pw), "stations": fleet.server_stations(keys)})
    loaded = build_config(config, catalogue=CATALOGUE)
    outlet = loaded.stations[mn]
    assert (outlet.config.version, outlet.config.heartbeat_s) == (2025, 60.0)
    assert outlet.cipher is not None
    cems = next(s for s in loaded.stations.values() if s.mn != mn)
    assert (cems.config.version, cems.cipher) == (2017, None)


def test_a_long_message_is_split_into_packets_the_server_joins() -> None:
    """A CEMS's hourly data with every statistic passes the data segment's 1,024 bytes (HJ 212-2017 §6.3.1): the
    station splits it at its groups into PNUM packets (Flag D, one QN), and the server's reassembly gives it whole."""
    s = _station("flue_gas_cems_hj212", answer=True)
    window = [s._values(NOW + i)[0] for i in range(60)]
    groups = s.period_cp(window, NOW, 3600, "N").split(";")
    cp = ";".join([groups[0], *groups[1:], *(re.sub(r"\ba(\d{5})", r"x\1", g) for g in groups[1:])])  # twice the codes
    assert len(cp) > 1024
    parts = s.packets("2061", cp, NOW)
    assert len(parts) > 1
    frames = [item for part in parts for item in StreamDecoder().feed(part)]
    assert all(isinstance(f, Frame) and len(f.segment) <= 1024 for f in frames)
    packets = [parse_segment(f.segment) for f in frames if isinstance(f, Frame)]
    assert [(p.pnum, p.pno) for p in packets] == [(len(parts), i) for i in range(1, len(parts) + 1)]
    assert len({p.qn for p in packets}) == 1
    assert all(p.split for p in packets)
    joiner = Reassembler(60.0)
    whole = [joiner.add(p, NOW)[0] for p in packets][-1]
    assert whole is not None
    assert whole.data_time == "20261125100000"
    assert {(r.code, r.suffix) for r in whole.readings} == set(re.findall(r"([ax]\d{5})-(Min|Avg|Max|Cou)=", cp))
    assert len(s.packets("2061", s.period_cp(window, NOW, 3600, "N"), NOW)) == 1  # 745 bytes: one packet
