"""HJ 212 data flags M and C: uncertain with the reason ``maintenance`` / ``calibration``, the value kept (as the
Modbus CEMS maintenance flag gives), out of alarms, exceedances and means; F, D and B stay bad without a value."""

from __future__ import annotations

import pytest

from device_profiles import load_catalogue
from device_profiles.derive import CALIBRATION, MAINTENANCE, derive, is_maintenance
from edge_agent.hj212.mapping import ProfileMap
from edge_agent.hj212.segment import parse_segment
from rules import PACKS, Engine, load_rules
from rules._conditions import good_value
from rules._means import MeasurementMeans, hourly_means
from storage import Series
from storage.lineproto import LineEncoder
from telemetry.models import PointQuality, Quality, Sample, Telemetry

CATALOGUE = load_catalogue()
HJ212_CEMS = CATALOGUE["flue_gas_cems_hj212"]
MODBUS_CEMS = CATALOGUE["flue_gas_cems"]
RULES = {r.id: r for r in load_rules([PACKS])}
MINUTE = 60_000


def _mapped(flag: str, cn: str = "2011", suffix: str = "Rtd") -> Sample:
    cp = f"DataTime=20261125040000;a21002-{suffix}=480.0,a21002-ZsRtd=480.0,a21002-Flag={flag}"
    if suffix != "Rtd":
        cp = f"DataTime=20261125040000;a21002-{suffix}=480.0,a21002-Flag={flag}"
    segment = f"QN=20261125040000123;ST=31;CN={cn};PW=123456;MN=CEMS1;Flag=4;CP=&&{cp}&&"
    assert HJ212_CEMS.hj212 is not None
    mapped = ProfileMap(HJ212_CEMS.hj212).to_sample(parse_segment(segment.encode()), 8.0)
    assert mapped.unmapped == ()
    assert mapped.sample is not None
    return mapped.sample


@pytest.mark.parametrize(
    ("flag", "value", "q", "reason"),
    [
        pytest.param("N", 480.0, None, None, id="N-good"),
        pytest.param("M", 480.0, Quality.UNCERTAIN, MAINTENANCE, id="M-uncertain-maintenance-kept"),
        pytest.param("C", 480.0, Quality.UNCERTAIN, CALIBRATION, id="C-uncertain-calibration-kept"),
        pytest.param("D", None, Quality.BAD, "instrument fault (HJ 212 flag D); value sent 480.0", id="D-bad"),
        pytest.param("F", None, Quality.BAD, "instrument stopped (HJ 212 flag F); value sent 480.0", id="F-bad"),
        pytest.param(
            "B",
            None,
            Quality.BAD,
            "communication between instrument and data logger abnormal (HJ 212 flag B); value sent 480.0",
            id="B-bad",
        ),
    ],
)
def test_flag_to_quality(flag: str, value: float | None, q: Quality | None, reason: str | None) -> None:
    sample = _mapped(flag)
    assert sample.values["nox"] == value
    pq = sample.quality.get("nox")
    assert (pq.q if pq else None, pq.reason if pq else None) == (q, reason)
    assert is_maintenance(pq) is (flag in "MC")
    # out of every exceedance decision: a rule never sees an M/C value, nor a bad one
    assert good_value(sample, "nox") == (480.0 if flag == "N" else None)


@pytest.mark.parametrize("cn", ["2051", "2061", "2031"])
def test_period_data_flagged_c_keeps_its_value(cn: str) -> None:
    sample = _mapped("C", cn=cn, suffix="Avg")
    ((name, value),) = sample.values.items()
    assert value == 480.0
    assert sample.quality[name] == PointQuality(q=Quality.UNCERTAIN, reason=CALIBRATION)


def test_same_plant_state_same_answer_on_either_protocol() -> None:
    """The Modbus CEMS's maintenance coil and HJ 212 flag M give the same quality; C differs only in its reason."""
    values = {"so2": 20.0, "nox": 480.0, "dust": 3.0, "o2": 6.0, "flue_flow": 200.0, "maintenance": True}
    _, modbus_q = derive(MODBUS_CEMS, {"o2_ref": "6"}, values, {})
    assert modbus_q["nox"] == _mapped("M").quality["nox"]
    assert _mapped("C").quality["nox"].q is modbus_q["nox"].q


def test_derived_point_of_a_calibration_input_says_calibration() -> None:
    values = {"so2": 20.0, "nox": 480.0, "dust": 3.0, "o2": 6.0, "flue_flow": 200.0, "maintenance": False}
    values |= {"flue_temp": 110.0, "flue_humidity": 10.0, "flue_pressure": -0.5}
    quality = {"nox": PointQuality(q=Quality.UNCERTAIN, reason=CALIBRATION)}
    out_v, out_q = derive(MODBUS_CEMS, {"o2_ref": "6"}, values, quality)
    assert out_v["nox_zs"] == 480.0  # computed and kept
    assert out_q["nox_zs"] == PointQuality(q=Quality.UNCERTAIN, reason=CALIBRATION)
    assert out_q["nox_load"].reason == CALIBRATION


@pytest.mark.parametrize(("reason", "raises"), [(CALIBRATION, False), (MAINTENANCE, False), ("outside range", True)])
def test_calibration_values_raise_no_alarm(reason: str, raises: bool) -> None:
    engine = Engine([RULES["emissions.nox"]])
    got = []
    for i in range(0, 200, 10):
        sample = Sample(
            ts=i * 1000, values={"nox_zs": 480.0}, quality={"nox_zs": PointQuality(q=Quality.UNCERTAIN, reason=reason)}
        )
        msg = Telemetry(
            site="plant1",
            device="u1",
            profile="flue_gas_cems",
            measurement="flue_gas",
            seq=1,
            tags={"source": "coal_power"},
            samples=[sample],
        )
        got += engine.observe(msg)
    assert bool(got) is raises  # an uncertain value for another reason is still an alarm (a range overshoot)


def test_calibration_values_are_stored_uncertain_and_left_out_of_the_hourly_mean() -> None:
    sample = _mapped("C")
    msg = Telemetry(
        site="plant1",
        device="u1",
        profile="flue_gas_cems_hj212",
        measurement="flue_gas",
        seq=1,
        tags={},
        samples=[sample],
    )
    (line,) = LineEncoder().encode(msg)
    assert "nox=480.0" in line  # kept, for the audit
    assert "nox.q=1i" in line
    assert 'nox.reason="calibration"' in line
    # the means job subtracts the uncertain rows (storage.means.minute_query): 50 good minutes at 40, 10 of span gas
    spec = MeasurementMeans(measurement="flue_gas", points=[{"point": "nox"}])
    tags = {"site": "plant1", "device": "u1"}
    main: list[list[object]] = [[i * MINUTE, 40.0 if i < 50 else 480.0, 1] for i in range(60)]
    uncertain: list[list[object]] = [[i * MINUTE, 480.0, 1] for i in range(50, 60)]
    series = [
        Series("flue_gas", tags, ["time", "s_nox", "n_nox"], main),
        Series("flue_gas", tags, ["time", "us_nox", "un_nox"], uncertain),
    ]
    ((_, means),) = hourly_means(spec, series).items()
    assert (means["nox"].value, means["nox"].count) == (40.0, 50)
