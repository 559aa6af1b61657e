"""HJ 212 ingest, pure: the config (errors name file, line, station and field; passwords from the environment or
a 0600 file only), the checks (unknown MN, password, ST, CN, DataTime), the mapping of codes and suffixes to points
and of data flags to qualities, answers, split reassembly, and the events line format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from broker_bridge.validate import Registry, check
from device_profiles import load_catalogue
from edge_agent.hj212 import Frame, Hj212Config, Ingest, LoadedConfig, Outcome, Reason, build_config, load_config
from edge_agent.hj212.mapping import data_time_ms
from infra.config_loader import ConfigError
from simulators.hj212 import frame as hj212_frame
from telemetry import Quality, decode_telemetry

PW = "123456"
CEMS_MN = "010000A8900016F000169DC0"
WW_MN = "WW0001"
T0 = 1_795_600_800.0


def _frame(segment: str) -> Frame:  # framed by the simulator's own encoder, not the server's code
    raw = segment.encode()
    return Frame(raw, hj212_frame(raw))


def _seg(cn: str, cp: str, *, mn: str = WW_MN, st: str = "32", flag: int = 4, pw: str = PW, extra: str = "") -> str:
    return f"QN=20261125100000123;ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};{extra}CP=&&{cp}&&"


CATALOGUE = load_catalogue()


@pytest.fixture(scope="module")
def loaded() -> Iterator[LoadedConfig]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HJ212_TEST_PW", PW)
        config = Hj212Config.model_validate(
            {
                "stations": [
                    {
                        "mn": CEMS_MN,
                        "site": "plant-7",
                        "device": "cems-1",
                        "profile": "flue_gas_cems_hj212",
                        "password": "env:HJ212_TEST_PW",
                    },
                    {
                        "mn": WW_MN,
                        "site": "plant-7",
                        "device": "outlet-1",
                        "profile": "wastewater_outlet_hj212",
                        "password": "env:HJ212_TEST_PW",
                        "tags": {"river": "yunzaobang"},
                    },
                ]
            }
        )
        yield build_config(config, catalogue=CATALOGUE)


@pytest.fixture
def ingest(loaded: LoadedConfig) -> Ingest:
    return Ingest(loaded)


def _handle(ingest: Ingest, segment: str, now: float = T0) -> Outcome:
    return ingest.handle("127.0.0.1:40312", _frame(segment), now)


def _sample(out: Outcome) -> tuple[dict[str, object], dict[str, object]]:
    [message] = out.messages
    msg = decode_telemetry(message.payload, message.topic)
    [sample] = msg.samples
    return dict(sample.values), {k: (v.q, v.reason) for k, v in sample.quality.items()}


# -- the events line ------------------------------------------------------------------------------------------------
def test_accept_event_is_exactly_the_documented_line(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", "DataTime=20261125100000;w01018-Rtd=35.2,w01018-Flag=N"))
    assert orjson.loads(orjson.dumps(out.event)) == {
        "peer": "127.0.0.1:40312",
        "outcome": "accept",
        "packet": {
            "QN": "20261125100000123",
            "ST": "32",
            "CN": "2011",
            "PW": "******",
            "MN": WW_MN,
            "Flag": 4,
            "PNUM": None,
            "PNO": None,
            "DataTime": "20261125100000",
            "readings": [{"code": "w01018", "suffix": "Rtd", "value": "35.2", "flag": "N"}],
        },
    }


def test_reject_event_is_exactly_the_documented_line(ingest: Ingest) -> None:
    frame = _frame(_seg("2011", "DataTime=20261125100000;w01018-Rtd=35.2"))
    bad = Frame(frame.segment, frame.raw[:-6] + b"0000\r\n")
    from edge_agent.hj212 import StreamDecoder

    [item] = StreamDecoder().feed(bad.raw)
    out = ingest.handle("127.0.0.1:40312", item, T0)
    assert set(out.event) == {"peer", "outcome", "reason", "detail"}
    assert (out.event["outcome"], out.event["reason"]) == ("reject", "bad_crc")
    [note] = out.dead_letters
    assert note.reason is Reason.BAD_CRC
    assert b"PW=******" in note.raw
    assert PW.encode() not in note.raw


# -- checks -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        pytest.param(
            _seg("2011", "DataTime=20261125100000;w01018-Rtd=1", mn="NOBODY"), Reason.UNKNOWN_MN, id="unknown-mn"
        ),
        pytest.param(
            _seg("2011", "DataTime=20261125100000;w01018-Rtd=1", pw="654321"), Reason.BAD_PASSWORD, id="wrong-password"
        ),
        pytest.param(_seg("2011", "DataTime=20261125100000;w01018-Rtd=1", st="31"), Reason.BAD_ST, id="wrong-st"),
        pytest.param(_seg("2011", "w01018-Rtd=1"), Reason.BAD_CP, id="no-datatime"),
        pytest.param(_seg("2011", "DataTime=20261125100000;w01018-Rtd=x"), Reason.BAD_CP, id="bad-number"),
        pytest.param("QN=1;" + _seg("2011", "DataTime=20261125100000")[21:], Reason.BAD_SEGMENT, id="bad-qn"),
    ],
)
def test_refused_packets_are_dead_lettered_and_never_answered(ingest: Ingest, segment: str, reason: Reason) -> None:
    out = _handle(ingest, segment.replace("Flag=4", "Flag=5"))
    assert (out.accepted, out.reason) == (False, str(reason))
    assert out.answer is None
    assert out.messages == []
    [note] = out.dead_letters
    assert note.reason is reason
    assert PW.encode() not in note.raw
    assert PW not in note.detail


@pytest.mark.parametrize(
    "segment",
    [
        pytest.param(_seg("2021", "DataTime=20261125100000;w01018-RS=1"), id="cn-2021"),
        pytest.param(_seg("1062", "RtdInterval=30"), id="cn-1062"),
    ],
)
def test_commands_not_ingested_are_dead_lettered_and_answered(ingest: Ingest, segment: str) -> None:
    out = _handle(ingest, segment.replace("Flag=4", "Flag=5"))
    assert (out.accepted, out.reason) == (False, str(Reason.UNSUPPORTED_CN))
    assert out.answer is not None  # kept here: the station need not send it again
    assert b"CN=9014" in out.answer
    assert out.messages == []
    [note] = out.dead_letters
    assert note.reason is Reason.UNSUPPORTED_CN


def test_wrong_password_detail_does_not_show_either_password(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", "DataTime=20261125100000;w01018-Rtd=1", pw="654321"))
    assert "654321" not in str(out.event)
    assert PW not in str(out.event)


# -- mapping --------------------------------------------------------------------------------------------------------
def test_real_time_values_become_points_at_datatime(ingest: Ingest) -> None:
    out = _handle(
        ingest,
        _seg(
            "2011",
            "DataTime=20261125100000;w01018-Rtd=35.2,w01018-Flag=N;w21003-Rtd=1.25,"
            "w21003-Flag=N;w00000-Rtd=120.5,w00000-Flag=N",
        ),
    )
    values, quality = _sample(out)
    assert values == {"cod": 35.2, "nh3_n": 1.25, "flow": 120.5}
    assert quality == {}
    msg = decode_telemetry(out.messages[0].payload)
    assert (msg.site, msg.device, msg.profile, msg.measurement, msg.seq) == (
        "plant-7",
        "outlet-1",
        "wastewater_outlet_hj212",
        "wastewater",
        1,
    )
    assert msg.tags == {"domain": "emissions", "river": "yunzaobang"}
    assert msg.units == {"cod": "mg/L", "nh3_n": "mg/L", "flow": "L/s"}
    assert out.messages[0].topic == "lifeline/v1/plant-7/outlet-1/telemetry"
    # 10:00:00 Beijing time is 02:00:00 UTC
    assert msg.samples[0].ts == data_time_ms("20261125020000", 0) == 1795572000000


def test_hjt_212_2005_codes_map_to_the_same_points(ingest: Ingest) -> None:
    seg = f"ST=32;CN=2011;PW={PW};MN={WW_MN};CP=&&DataTime=20261125100000;011-Rtd=35.2;060-Rtd=1.5;B01-Rtd=9&&"
    values, _ = _sample(_handle(ingest, seg))
    assert values == {"cod": 35.2, "nh3_n": 1.5, "flow": 9.0}


@pytest.mark.parametrize(
    ("cn", "period"), [("2051", "minute"), ("2061", "hour"), ("2031", "day")], ids=["minute", "hour", "day"]
)
def test_period_statistics_get_their_own_points(ingest: Ingest, cn: str, period: str) -> None:
    cp = (
        "DataTime=20261125090000;w01018-Min=30.1,w01018-Avg=35.2,w01018-Max=40,w01018-Cou=12.5,w01018-Flag=N;"
        "w00000-Avg=100,w00000-Cou=360"
    )
    values, _ = _sample(_handle(ingest, _seg(cn, cp)))
    assert values == {
        f"cod_{period}_min": 30.1,
        f"cod_{period}_avg": 35.2,
        f"cod_{period}_max": 40.0,
        f"cod_{period}_total": 12.5,
        f"flow_{period}_avg": 100.0,
        f"flow_{period}_total": 360.0,
    }


def test_converted_values_of_a_cems(ingest: Ingest) -> None:
    rtd = _handle(
        ingest,
        _seg(
            "2011",
            "DataTime=20261125100000;a21026-Rtd=20.5,a21026-ZsRtd=25.1,a21026-Flag=N;a19001-Rtd=8.1",
            mn=CEMS_MN,
            st="31",
        ),
    )
    assert _sample(rtd)[0] == {"so2": 20.5, "so2_zs": 25.1, "o2": 8.1}
    hour = _handle(ingest, _seg("2061", "DataTime=20261125090000;a21026-ZsAvg=24,a21026-Avg=20", mn=CEMS_MN, st="31"))
    assert _sample(hour)[0] == {"so2_zs_hour_avg": 24.0, "so2_hour_avg": 20.0}


BAD = Quality.BAD
UNCERTAIN = Quality.UNCERTAIN


@pytest.mark.parametrize(
    ("flag", "value", "quality"),
    [
        pytest.param("N", 35.2, None, id="N-normal-good"),
        pytest.param("F", None, (BAD, "instrument stopped (HJ 212 flag F); value sent 35.2"), id="F-stopped"),
        pytest.param("M", 35.2, (UNCERTAIN, "maintenance"), id="M-maintenance-kept"),
        pytest.param("S", 35.2, (UNCERTAIN, "manually entered value (HJ 212 flag S)"), id="S-manual"),
        pytest.param("D", None, (BAD, "instrument fault (HJ 212 flag D); value sent 35.2"), id="D-fault"),
        pytest.param("C", 35.2, (UNCERTAIN, "calibration"), id="C-calibration-kept"),
        pytest.param(
            "T",
            35.2,
            (UNCERTAIN, "above the instrument's upper measuring limit, the value is a floor (HJ 212 flag T)"),
            id="T-over-range",
        ),
        pytest.param(
            "B",
            None,
            (BAD, "communication between instrument and data logger abnormal (HJ 212 flag B); value sent 35.2"),
            id="B-communication",
        ),
        pytest.param("X", 35.2, (UNCERTAIN, "unknown HJ 212 data flag 'X'"), id="unknown-flag"),
    ],
)
def test_data_flag_gives_the_quality(
    ingest: Ingest, flag: str, value: float | None, quality: tuple[Quality, str] | None
) -> None:
    values, qualities = _sample(
        _handle(ingest, _seg("2011", f"DataTime=20261125100000;w01018-Rtd=35.2,w01018-Flag={flag}"))
    )
    assert values == {"cod": value}
    assert qualities.get("cod") == quality


def test_value_outside_the_profile_range_is_uncertain(ingest: Ingest) -> None:
    values, quality = _sample(_handle(ingest, _seg("2011", "DataTime=20261125100000;w01001-Rtd=15.2")))
    assert values == {"ph": 15.2}
    assert quality == {"ph": (UNCERTAIN, "outside the range [0, 14]")}


def test_a_flag_without_a_value_marks_the_point(ingest: Ingest) -> None:
    values, quality = _sample(_handle(ingest, _seg("2011", "DataTime=20261125100000;w01018-Rtd=3;w21003-Flag=D")))
    assert values == {"cod": 3.0, "nh3_n": None}
    assert quality == {"nh3_n": (BAD, "instrument fault (HJ 212 flag D); no value sent")}


def test_unmapped_values_are_dead_lettered_and_the_rest_published(ingest: Ingest) -> None:
    out = _handle(
        ingest,
        _seg(
            "2011",
            "DataTime=20261125100000;w01018-Rtd=35.2;w99999-Rtd=1;w01018-Avg=3;"
            "w01018-ZsRtd=4;w21003-RS=1;w21003-EFlag=A",
        ),
    )
    assert out.accepted
    assert _sample(out)[0] == {"cod": 35.2}
    [note] = out.dead_letters
    assert note.reason is Reason.UNMAPPED
    for part in (
        "w99999-Rtd: code not in the profile",
        "w01018-Avg: not a real-time value",
        "w01018-ZsRtd: point 'cod' does not declare converted",
        "w21003-RS=1: not mapped",
    ):
        assert part in note.detail
    assert "EFlag" not in note.detail  # read, deliberately not used


def test_a_packet_with_nothing_mappable_publishes_nothing(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", "DataTime=20261125100000;w99999-Rtd=1", flag=5))
    assert out.accepted
    assert out.messages == []
    assert [n.reason for n in out.dead_letters] == [Reason.UNMAPPED]
    assert out.answer is not None
    assert not out.answer_on_ack  # kept in the dead letters: answered at once


def test_published_telemetry_passes_the_bridge_validation(ingest: Ingest) -> None:
    catalogue = CATALOGUE
    out = _handle(ingest, _seg("2061", "DataTime=20261125090000;w01018-Avg=35;w01018-Cou=2;w00000-Cou=360"))
    [message] = out.messages
    now_ms = data_time_ms("20261125090000", 8)
    msg = check(message.topic, message.payload, Registry(catalogue), now_ms, 300_000, 86_400_000)
    assert msg.samples[0].values == {"cod_hour_avg": 35.0, "cod_hour_total": 2.0, "flow_hour_total": 360.0}
    assert msg.units["flow_hour_total"] == "m³"


def test_sequence_counts_per_station(ingest: Ingest) -> None:
    for expected in (1, 2, 3):
        out = _handle(ingest, _seg("2011", "DataTime=20261125100000;w01018-Rtd=1"))
        assert decode_telemetry(out.messages[0].payload).seq == expected
    cems = _handle(ingest, _seg("2011", "DataTime=20261125100000;a21026-Rtd=1", mn=CEMS_MN, st="31"))
    assert decode_telemetry(cems.messages[0].payload).seq == 1


# -- answers --------------------------------------------------------------------------------------------------------
def test_answer_requested_is_a_9014_after_the_broker_ack(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", "DataTime=20261125100000;w01018-Rtd=1", flag=5))
    assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9014;PW={PW};MN={WW_MN};Flag=4;CP=&&&&").raw
    assert out.answer_on_ack


def test_no_answer_without_the_a_bit(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", "DataTime=20261125100000;w01018-Rtd=1", flag=4))
    assert out.answer is None


def test_2025_heartbeat_is_answered_with_9013(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("9015", "", flag=8, st="91"))
    assert out.accepted
    assert out.messages == []
    assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9013;PW={PW};MN={WW_MN};Flag=8;CP=&&&&").raw


# -- split messages ---------------------------------------------------------------------------------------------------
def _part(pno: int, cp: str, pnum: int = 3, flag: int = 7) -> str:
    return _seg("2011", cp, flag=flag, extra=f"PNUM={pnum};PNO={pno};")


def test_split_message_is_published_once_complete_in_any_order(ingest: Ingest) -> None:
    first = _handle(ingest, _part(2, "w21003-Rtd=1.5"))
    assert (first.accepted, first.messages, first.answer is not None, first.answer_on_ack) == (True, [], True, False)
    assert first.event["packet"]["PNO"] == 2  # type: ignore[index]
    assert _handle(ingest, _part(1, "DataTime=20261125100000;w01018-Rtd=35.2")).messages == []
    last = _handle(ingest, _part(3, "w00000-Rtd=90"))
    assert _sample(last)[0] == {"cod": 35.2, "nh3_n": 1.5, "flow": 90.0}
    assert last.answer_on_ack
    assert len(ingest.splits) == 0


def test_split_parts_that_disagree_are_refused(ingest: Ingest) -> None:
    _handle(ingest, _part(1, "DataTime=20261125100000;w01018-Rtd=35.2"))
    out = _handle(ingest, _part(2, "w21003-Rtd=1", pnum=4))
    assert out.reason == "bad_split"


def test_split_message_with_different_datatimes_is_refused(ingest: Ingest) -> None:
    _handle(ingest, _part(1, "DataTime=20261125100000;w01018-Rtd=35.2", pnum=2))
    out = _handle(ingest, _part(2, "DataTime=20261125100030;w21003-Rtd=1", pnum=2))
    assert out.reason == "bad_split"


def test_incomplete_split_message_expires_into_the_dead_letters(ingest: Ingest) -> None:
    _handle(ingest, _part(1, "DataTime=20261125100000;w01018-Rtd=35.2"), now=T0)
    assert ingest.expire(T0 + 59) == []
    [note] = ingest.expire(T0 + 60)
    assert note.reason is Reason.INCOMPLETE_SPLIT
    assert "part(s) [2, 3] of 3 never came" in note.detail
    assert PW.encode() not in note.raw


# -- config -----------------------------------------------------------------------------------------------------------
STATION = "  - {mn: M1, site: s1, device: d1, profile: wastewater_outlet_hj212, password: env:HJ212_X}\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        pytest.param(
            "stations:\n  - {mn: M1, site: s1, device: d1, profile: wastewater_outlet_hj212, password: abc}\n",
            2,
            "stations[0].password",
            "a password is not kept in the config file",
            id="inline-password",
        ),
        pytest.param(
            "stations:\n" + STATION.replace("wastewater_outlet_hj212", "nope"),
            2,
            "profile",
            "unknown profile 'nope'",
            id="unknown-profile",
        ),
        pytest.param(
            "stations:\n" + STATION.replace("wastewater_outlet_hj212", "flue_gas_cems"),
            2,
            "profile",
            "not an HJ 212 profile",
            id="modbus-profile",
        ),
        pytest.param(
            "stations:\n" + STATION + STATION.replace("d1", "d2"),
            3,
            "stations[1].mn",
            "MN 'M1' is used twice",
            id="duplicate-mn",
        ),
        pytest.param(
            "stations:\n" + STATION + STATION.replace("M1", "M2"),
            3,
            "stations[1].device",
            "s1/d1 is used twice",
            id="duplicate-device",
        ),
        pytest.param(
            "stations:\n" + STATION.replace("HJ212_X", "HJ212_UNSET"),
            2,
            "password",
            "HJ212_UNSET is not set",
            id="env-unset",
        ),
        pytest.param(
            "stations:\n" + STATION.replace("mn: M1", "mn: M/1"),
            2,
            "stations[0].mn",
            "should match pattern",
            id="bad-mn",
        ),
        pytest.param(
            "listen: {port: 70000}\nstations:\n" + STATION, 1, "listen.port", "less than or equal", id="bad-port"
        ),
        pytest.param(
            "stations:\n" + STATION.replace("}", ", colour: red}"),
            2,
            "stations[0].colour",
            "Extra inputs",
            id="unknown-key",
        ),
    ],
)
def test_config_errors_name_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int, field: str, message: str
) -> None:
    monkeypatch.setenv("HJ212_X", "abc123")
    monkeypatch.delenv("HJ212_UNSET", raising=False)
    path = tmp_path / "hj212.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, CATALOGUE)
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:{line}: ")
    assert field in problem
    assert message in problem


def test_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "m1.pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    path = tmp_path / "hj212.yaml"
    path.write_text("stations:\n" + STATION.replace("env:HJ212_X", "file:m1.pw"))
    with pytest.raises(ConfigError, match=r"can be read by others .*chmod 600") as err:
        load_config(path, CATALOGUE)
    assert "s3cret" not in str(err.value)
    secret.chmod(0o600)
    assert load_config(path, CATALOGUE).stations["M1"].password == "s3cret"


def test_passwords_file_and_repr_never_shows_a_password(tmp_path: Path) -> None:
    pw = tmp_path / "pw.yaml"
    pw.write_text("M1: pw0001\nM2: pw0002\n")
    os.chmod(pw, 0o600)
    path = tmp_path / "hj212.yaml"
    body = STATION.replace(", password: env:HJ212_X", "")
    path.write_text(f"passwords_file: pw.yaml\nstations:\n{body}{body.replace('M1', 'M2').replace('d1', 'd2')}")
    loaded = load_config(path, CATALOGUE)
    assert {mn: s.password for mn, s in loaded.stations.items()} == {"M1": "pw0001", "M2": "pw0002"}
    assert "pw0001" not in repr(loaded)


def test_station_missing_from_the_passwords_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw.yaml"
    pw.write_text("M9: pw0009\n")
    pw.chmod(0o600)
    path = tmp_path / "hj212.yaml"
    path.write_text("passwords_file: pw.yaml\nstations:\n" + STATION.replace(", password: env:HJ212_X", ""))
    with pytest.raises(ConfigError, match=r"hj212.yaml:3: station 'M1', field password: none given"):
        load_config(path, CATALOGUE)


def test_devices_for_the_bridge_registry(loaded: LoadedConfig) -> None:
    assert loaded.devices() == {
        ("plant-7", "cems-1"): "flue_gas_cems_hj212",
        ("plant-7", "outlet-1"): "wastewater_outlet_hj212",
    }
