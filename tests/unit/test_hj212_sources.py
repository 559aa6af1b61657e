"""HJ 212 sources as any other: a CEMS's O2-corrected values and loads (the station's own -ZsRtd / -ZsAvg where it
sends them, else derived from its ``o2_ref`` as for a Modbus CEMS), and every suffix of hj212.md mapped to a point
(``-Cou`` of real-time data stored, not dead-lettered), through the ingest and the bridge's and rules' validation."""

from __future__ import annotations

import os

import pytest

from device_profiles import load_catalogue
from device_profiles.validate import Registry, check
from edge_agent.hj212 import Frame, Hj212Config, Ingest, Outcome, build_config
from edge_agent.hj212.mapping import data_time_ms
from infra.config_loader import ConfigError
from simulators.hj212 import frame as hj212_frame
from telemetry import Quality, decode_telemetry

PW = "123456"
T0 = 1_795_600_800.0
CATALOGUE = load_catalogue()
SITE = "baoshan-sources"


def _ingest(tags: dict[str, str]) -> Ingest:
    os.environ.setdefault("HJ212_SOURCES_PW", PW)
    config = Hj212Config.model_validate(
        {
            "stations": [
                {"mn": "CEMS1", "site": SITE, "device": "cems-1", "profile": "flue_gas_cems_hj212",
                 "password": "env:HJ212_SOURCES_PW", "tags": tags},
                {"mn": "WW1", "site": SITE, "device": "outlet-1", "profile": "wastewater_outlet_hj212",
                 "password": "env:HJ212_SOURCES_PW"},
            ]
        }
    )  # fmt: skip
    return Ingest(build_config(config, catalogue=CATALOGUE))


def _handle(ingest: Ingest, cn: str, cp: str, *, mn: str = "CEMS1", st: str = "31") -> Outcome:
    seg = f"QN=20261125100000123;ST={st};CN={cn};PW={PW};MN={mn};Flag=4;CP=&&{cp}&&".encode()
    return ingest.handle("127.0.0.1:40312", Frame(seg, hj212_frame(seg)), T0)


def _values(out: Outcome) -> tuple[dict[str, object], dict[str, tuple[Quality, str]]]:
    assert not out.dead_letters, out.dead_letters
    [message] = out.messages
    # what the bridge and the rules engine check before they store or evaluate (device_profiles.validate)
    registry = Registry(
        CATALOGUE, {(SITE, "cems-1"): "flue_gas_cems_hj212", (SITE, "outlet-1"): "wastewater_outlet_hj212"}
    )
    msg = check(message.topic, message.payload, registry, data_time_ms("20261125100000", 8), 300_000, 86_400_000)
    [sample] = msg.samples
    return dict(sample.values), {k: (v.q, v.reason) for k, v in sample.quality.items()}


def _reference(c: float, o2: float, o2_ref: float) -> float:
    """emissions.md: C_ref = C_measured × (21 − O2_ref) / (21 − O2_measured)."""
    return c * (21 - o2_ref) / (21 - o2)


# (SO2 measured, O2 measured, the source's o2_ref): the corrected value is the formula's
CORRECTED = [
    pytest.param(100.0, 9.0, "6", id="coal-power-6pct"),
    pytest.param(35.0, 6.0, "6", id="at-reference-unchanged"),
    pytest.param(50.0, 3.5, "3", id="gas-boiler-3pct"),
    pytest.param(20.0, 15.2, "15", id="gas-turbine-15pct"),
    pytest.param(80.0, 2.0, "6", id="o2-below-reference-lowers"),
    pytest.param(30.0, 19.9, "6", id="o2-just-under-20"),
    pytest.param(12.0, 11.0, "9", id="industrial-coal-boiler-9pct"),
    pytest.param(0.0, 8.0, "6", id="zero-stays-zero"),
]


@pytest.mark.parametrize(("so2", "o2", "o2_ref"), CORRECTED)
def test_real_time_values_are_corrected_to_the_reference_o2(so2: float, o2: float, o2_ref: str) -> None:
    values, quality = _values(
        _handle(_ingest({"o2_ref": o2_ref}), "2011", f"DataTime=20261125100000;a21026-Rtd={so2};a19001-Rtd={o2}")
    )
    assert values["so2"] == so2  # the raw value is kept beside the corrected one
    assert values["so2_zs"] == pytest.approx(_reference(so2, o2, float(o2_ref)), abs=1e-4)
    assert "so2_zs" not in quality


@pytest.mark.parametrize(("so2", "o2", "o2_ref"), CORRECTED)
def test_period_means_are_corrected_from_the_period_means(so2: float, o2: float, o2_ref: str) -> None:
    cp = f"DataTime=20261125090000;a21026-Avg={so2},a21026-Min=1,a21026-Max=900;a19001-Avg={o2}"
    values, _ = _values(_handle(_ingest({"o2_ref": o2_ref}), "2061", cp))
    assert values["so2_zs_hour_avg"] == pytest.approx(_reference(so2, o2, float(o2_ref)), abs=1e-4)
    assert "so2_zs" not in values  # no real-time point in an hourly sample
    assert "so2_load" not in values


def test_the_stations_own_converted_values_are_kept() -> None:
    ingest = _ingest({"o2_ref": "6"})
    rtd, _ = _values(_handle(ingest, "2011", "DataTime=20261125100000;a21026-Rtd=100,a21026-ZsRtd=99.9;a19001-Rtd=9"))
    assert rtd["so2_zs"] == 99.9  # as sent, not 125 (derived)
    hour, _ = _values(_handle(ingest, "2061", "DataTime=20261125090000;a21026-Avg=100,a21026-ZsAvg=99.8;a19001-Avg=9"))
    assert hour["so2_zs_hour_avg"] == 99.8


@pytest.mark.parametrize(
    ("tags", "cp", "reason"),
    [
        pytest.param(
            {"o2_ref": "6"},
            "a21026-Rtd=100;a19001-Rtd=20",
            "O2 20 % >= 20 %: unit off or probe in air, not corrected",
            id="probe-in-air",
        ),
        pytest.param({"o2_ref": "6"}, "a21026-Rtd=100", "no o2 in the sample", id="no-o2-sent"),
        pytest.param(
            {},
            "a21026-Rtd=100;a19001-Rtd=9",
            "device has no tag 'o2_ref' (the source's reference O2, %)",
            id="no-o2-ref",
        ),
        pytest.param(
            {"o2_ref": "6"},
            "a21026-Rtd=100;a19001-Rtd=9,a19001-Flag=D",
            "o2 is bad: instrument fault (HJ 212 flag D); value sent 9",
            id="o2-fault",
        ),
    ],
)  # fmt: skip
def test_what_cannot_be_corrected_is_bad_with_its_reason(tags: dict[str, str], cp: str, reason: str) -> None:
    values, quality = _values(_handle(_ingest(tags), "2011", f"DataTime=20261125100000;{cp}"))
    assert values["so2"] == 100.0
    assert values["so2_zs"] is None
    assert quality["so2_zs"] == (Quality.BAD, reason)


def test_a_maintenance_flag_keeps_the_corrected_value_out_of_alarms() -> None:
    values, quality = _values(
        _handle(_ingest({"o2_ref": "6"}), "2011", "DataTime=20261125100000;a21026-Rtd=100,a21026-Flag=M;a19001-Rtd=9")
    )
    assert values["so2_zs"] == 125.0
    assert quality["so2_zs"][0] is Quality.UNCERTAIN


@pytest.mark.parametrize(
    ("flow", "temp", "pressure", "humidity", "expected_kg_h"),
    [
        pytest.param(10.0, 0.0, 0.0, 0.0, 100 * 10 * 3600 * 1e-6, id="standard-dry-flow"),
        pytest.param(10.0, 100.0, 0.0, 10.0, 100 * 10 * 3600 * 273.15 / 373.15 * 0.9 * 1e-6, id="hot-wet-flow"),
        pytest.param(10.0, 0.0, 1.0, 0.0, 100 * 10 * 3600 * 102.325 / 101.325 * 1e-6, id="over-pressure"),
    ],
)
def test_real_time_loads(
    flow: float, temp: float | None, pressure: float | None, humidity: float | None, expected_kg_h: float
) -> None:
    cp = "DataTime=20261125100000;a21026-Rtd=100;a19001-Rtd=6;a00000-Rtd=" + str(flow)
    for code, value in (("a01012", temp), ("a01013", pressure), ("a01014", humidity)):
        if value is not None:
            cp += f";{code}-Rtd={value}"
    values, quality = _values(_handle(_ingest({"o2_ref": "6"}), "2011", cp))
    assert values["so2_load"] == pytest.approx(expected_kg_h, abs=1e-4)
    assert "so2_load" not in quality
    assert "nox_load" not in values  # no NOx in the packet: no NOx load


def test_real_time_totals_are_stored_not_dead_lettered() -> None:
    ingest = _ingest({"o2_ref": "6"})
    ww, _ = _values(
        _handle(
            ingest,
            "2011",
            "DataTime=20261125100000;w00000-Rtd=12.5,w00000-Cou=45.0;w01018-Rtd=30,w01018-Cou=1.35",
            mn="WW1",
            st="32",
        )
    )
    assert ww == {"flow": 12.5, "flow_total": 45.0, "cod": 30.0, "cod_total": 1.35}
    out = _handle(
        ingest, "2011", "DataTime=20261125100000;a21026-Rtd=100,a21026-Cou=0.36;a00000-Rtd=10,a00000-Cou=36000"
    )
    cems, _ = _values(out)
    assert (cems["so2_total"], cems["flue_flow_total"]) == (0.36, 36000.0)
    [message] = out.messages
    assert decode_telemetry(message.payload).units["so2_total"] == "kg"


# every suffix of hj212.md "Field suffixes" that carries a value of a command, and the point it goes to
SUFFIXES = [
    pytest.param("2011", "Rtd", "so2", id="2011-Rtd"),
    pytest.param("2011", "ZsRtd", "so2_zs", id="2011-ZsRtd"),
    pytest.param("2011", "Cou", "so2_total", id="2011-Cou"),
    *(
        pytest.param(cn, suffix, point, id=f"{cn}-{suffix}")
        for cn, period in (("2051", "minute"), ("2061", "hour"), ("2031", "day"))
        for suffix, point in (
            ("Avg", f"so2_{period}_avg"), ("Min", f"so2_{period}_min"), ("Max", f"so2_{period}_max"),
            ("ZsAvg", f"so2_zs_{period}_avg"), ("ZsMin", f"so2_zs_{period}_min"), ("ZsMax", f"so2_zs_{period}_max"),
            ("Cou", f"so2_{period}_total"),
        )
    ),
]  # fmt: skip


@pytest.mark.parametrize(("cn", "suffix", "point"), SUFFIXES)
def test_every_suffix_has_its_point(cn: str, suffix: str, point: str) -> None:
    cp = f"DataTime=20261125090000;a21026-{suffix}=42.5,a21026-Flag=N,a21026-EFlag=0,a21026-SampleTime=20261125090000"
    values, quality = _values(_handle(_ingest({}), cn, cp))
    assert values[point] == 42.5
    assert point not in quality
    assert set(values) - {point} <= {"so2_zs", "so2_zs_minute_avg", "so2_zs_hour_avg", "so2_zs_day_avg"}  # derived


@pytest.mark.parametrize(
    ("cn", "suffix"), [("2011", "Avg"), ("2011", "ZsCou"), ("2061", "Rtd"), ("2061", "ZsCou"), ("2061", "Foo")]
)
def test_a_suffix_foreign_to_its_command_is_dead_lettered(cn: str, suffix: str) -> None:
    out = _handle(_ingest({}), cn, f"DataTime=20261125090000;a21026-{suffix}=1;a19001-Rtd=8;a19001-Avg=8")
    assert [n.reason for n in out.dead_letters] == ["unmapped"]
    assert f"a21026-{suffix}" in out.dead_letters[0].detail


def test_a_load_without_the_flue_gas_conditions_is_bad_with_the_reason() -> None:
    cp = "DataTime=20261125100000;a21026-Rtd=100;a19001-Rtd=6;a00000-Rtd=10;a01013-Rtd=0;a01014-Rtd=0"
    values, quality = _values(_handle(_ingest({"o2_ref": "6"}), "2011", cp))
    assert values["so2_load"] is None
    assert quality["so2_load"] == (Quality.BAD, "no flue_temp in the sample")


@pytest.mark.parametrize("o2_ref", ["abc", "21", "-1"])
def test_a_station_whose_o2_ref_is_no_reference_o2_is_refused_at_load(o2_ref: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"station 'CEMS1', field tags: derived point 'so2_zs': tag 'o2_ref' = '{o2_ref}'"
    ):
        _ingest({"o2_ref": o2_ref})
