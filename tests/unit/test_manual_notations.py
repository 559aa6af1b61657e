"""Devices from their manuals, the pure parts: address notations, reserved ranges, BCD, composed values, precision,
per-device overrides, the exception hints, the samples and the template (issue 25)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from device_profiles import Function, ModbusPoint, Profile, decode_point, encode_point, load_catalogue, load_profiles
from device_profiles.addresses import AddressError, modicon, resolve
from device_profiles.expression import ExpressionError, parse_expression
from device_profiles.overrides import PointOverride, apply_overrides, override_problems
from device_profiles.registers import DecodeError, decode_raw
from device_profiles.samples import SampleError, new_profile, site_sample
from device_profiles.schema import ModbusSpec
from edge_agent.config import EdgeConfig, LoadedSite, check_devices
from edge_agent.decode import decode_block
from edge_agent.planner import explain_exception, plan, split
from infra.config_loader import ConfigError

EXAMPLES = Path(__file__).parents[2] / "device_profiles" / "examples"


# -- addresses -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "function", "base", "expected"),
    [
        pytest.param(40001, None, 0, ("holding_register", 0, "40001"), id="modicon-4xxxx-sets-function"),
        pytest.param(30101, None, 0, ("input_register", 100, "30101"), id="modicon-3xxxx"),
        pytest.param(10001, None, 0, ("discrete_input", 0, "10001"), id="modicon-1xxxx"),
        pytest.param("00017", None, 0, ("coil", 16, "00017"), id="modicon-0xxxx-quoted"),
        pytest.param(400001, None, 0, ("holding_register", 0, "400001"), id="modicon-6-digit"),
        pytest.param("465536", None, 0, ("holding_register", 65535, "465536"), id="modicon-6-digit-last"),
        pytest.param("40001", "holding_register", 0, ("holding_register", 0, "40001"), id="quoted-modicon-agrees"),
        pytest.param("0x1000", "holding_register", 1, (None, 4096, "0x1000"), id="hex-0x-not-shifted-by-base"),
        pytest.param("1000H", "holding_register", 0, (None, 4096, "1000H"), id="hex-H-suffix"),
        pytest.param("f00ah", "holding_register", 0, (None, 0xF00A, "f00ah"), id="hex-h-lowercase"),
        pytest.param(40001, "holding_register", 0, (None, 40001, ""), id="plain-with-function-is-wire"),
        pytest.param(12, "input_register", 1, (None, 11, "12"), id="plain-with-base-1"),
    ],
)
def test_resolve(raw: int | str, function: str | None, base: int, expected: tuple[str | None, int, str]) -> None:
    r = resolve(raw, function, base)
    assert (r.function, r.address, r.written) == expected


@pytest.mark.parametrize(
    ("raw", "function", "base", "says"),
    [
        pytest.param(20001, None, 0, "no Modicon reference", id="no-table-2"),
        pytest.param(17, None, 0, 'quoted \\("00017"\\)', id="coil-lost-its-zeros-in-yaml"),
        pytest.param(4096, None, 0, "quote it", id="bare-0x1000-became-4096"),
        pytest.param(40000, None, 0, "no Modicon reference", id="modicon-counts-from-1"),
        pytest.param("40001", "coil", 0, "is a holding_register", id="quoted-modicon-disagrees"),
        pytest.param("12G", "coil", 0, "not a number", id="garbage"),
        pytest.param(0, "coil", 1, "below 1", id="zero-with-base-1"),
        pytest.param(70000, "holding_register", 0, "past 65535", id="past-65535"),
    ],
)
def test_resolve_refuses(raw: int | str, function: str | None, base: int, says: str) -> None:
    with pytest.raises(AddressError, match=says):
        resolve(raw, function, base)


@given(function=st.sampled_from(list(Function)), address=st.integers(0, 65535))
def test_modicon_round_trip(function: Function, address: int) -> None:
    r = resolve(modicon(function, address), None)
    assert (r.function, r.address) == (function, address)


def spec(**kw: object) -> ModbusSpec:
    return ModbusSpec.model_validate(kw)


def test_profile_addresses_in_manual_notation_resolve_to_the_wire() -> None:
    s = spec(
        address_base=1,
        points=[
            {"name": "level", "address": 40001, "type": "uint16"},
            {"name": "freq", "function": "holding_register", "address": "1000H", "type": "uint16"},
            {"name": "temp", "function": "input_register", "address": 12, "type": "int16"},
        ],
    )
    got = {p.name: (p.function, p.address, p.written_as) for p in s.points}
    assert got == {
        "level": (Function.HOLDING_REGISTER, 0, "40001"),
        "freq": (Function.HOLDING_REGISTER, 4096, "1000H"),
        "temp": (Function.INPUT_REGISTER, 11, "12"),
    }
    again = ModbusSpec.model_validate(s.model_dump())  # resolved once: a dump validates to the same spec
    assert again == s


def test_point_without_function_or_reference_is_refused_with_its_path() -> None:
    with pytest.raises(ValidationError) as err:
        spec(points=[{"name": "a", "address": "0x10", "type": "uint16"}])
    assert "function" in str(err.value)


# -- reserved ranges -------------------------------------------------------------------------------------------------
def gas_controller(limit: int = 16) -> ModbusSpec:
    """8 channels at 40001.., 16 registers a read at most, 40009-40016 reserved, alarm thresholds from 40017."""
    channels = [{"name": f"ch{i}", "address": 40000 + i, "type": "uint16"} for i in range(1, 9)]
    alarms = [{"name": f"al{i}", "address": 40016 + i, "type": "uint16"} for i in range(1, 9)]
    return spec(max_registers_per_request=limit, reserved=[{"from": 40009, "to": 40016}], points=channels + alarms)


def test_coalescing_never_spans_a_reserved_range() -> None:
    requests = plan(gas_controller(limit=125))
    assert [(r.start, r.count) for r in requests] == [(0, 8), (16, 8)]
    no_reserved = gas_controller(limit=125).model_copy(update={"reserved": []})
    assert [(r.start, r.count) for r in plan(no_reserved)] == [(0, 24)]  # max_gap 10 joins them


def test_a_point_inside_a_reserved_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="lies in a reserved range"):
        spec(reserved=[{"from": 40001, "to": 40004}], points=[{"name": "a", "address": 40003, "type": "uint16"}])


def test_reserved_range_ends_in_order() -> None:
    with pytest.raises(ValidationError, match="ends"):
        spec(reserved=[{"from": 40010, "to": 40001}], points=[{"name": "a", "address": 40020, "type": "uint16"}])


# -- BCD, precision ---------------------------------------------------------------------------------------------------
def point(**kw: object) -> ModbusPoint:
    return ModbusPoint.model_validate({"name": "p", "function": "holding_register", "address": 0, **kw})


@pytest.mark.parametrize(
    ("kw", "words", "value"),
    [
        pytest.param({"type": "bcd16"}, [0x1234], 1234, id="bcd16"),
        pytest.param({"type": "bcd32", "order": "CDAB"}, [0x5678, 0x0012], 125678, id="bcd32-low-word-first"),
        pytest.param({"type": "bcd16", "scale": 0.1}, [0x0287], 28.7, id="bcd16-scaled"),
        pytest.param({"type": "uint16", "scale": 0.1}, [287], 28.7, id="scale-0.1-no-float-noise"),
        pytest.param({"type": "int16", "scale": 0.01, "offset": -40}, [6870], 28.7, id="scale-and-offset"),
        pytest.param({"type": "uint16", "scale": 0.1, "decimals": 0}, [287], 29.0, id="declared-decimals"),
        pytest.param({"type": "float32", "order": "CDAB"}, [0x999A, 0x41E5], 28.7, id="float32-low-word-first"),
        pytest.param({"type": "float32", "decimals": 1}, [0x41E5, 0x999A], 28.7, id="float32-declared"),
    ],
)
def test_decoded_values_carry_no_float_noise(kw: dict[str, object], words: list[int], value: float) -> None:
    p = point(**kw)
    got = decode_point(p, words)
    assert got == value
    assert repr(got) == repr(value)  # 28.7, not 28.700000000000003
    request = plan(ModbusSpec(points=[p]))[0]
    assert decode_block(request, words)["p"] == (value, None)  # the poller's fast path says the same


@given(value=st.integers(0, 99_999_999), order=st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]))
def test_bcd32_round_trip(value: int, order: str) -> None:
    p = point(type="bcd32", order=order)
    assert decode_point(p, encode_point(p, value)) == value


def test_bcd_nibble_above_9_is_a_bad_reading() -> None:
    p = point(type="bcd16")
    with pytest.raises(DecodeError, match="not BCD"):
        decode_raw(p, [0x12A4])
    request = plan(ModbusSpec(points=[p]))[0]
    value, quality = decode_block(request, [0x12A4])["p"]
    assert value is None
    assert quality is not None
    assert "not BCD" in quality.reason


# -- composed values --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "values", "result"),
    [
        pytest.param("whole + fraction / 1000", {"whole": 1234, "fraction": 567}, 1234.567, id="totaliser"),
        pytest.param("(hi * 65536 + lo) * 0.1", {"hi": 1, "lo": 10}, 6554.6, id="two-words"),
        pytest.param("max(a, b) - abs(-c)", {"a": 1, "b": 5, "c": 2}, 3.0, id="functions"),
        pytest.param("round(a / 3, 2)", {"a": 10}, 3.33, id="round"),
        pytest.param("-a ** 2", {"a": 3}, -9.0, id="power"),
    ],
)
def test_expression_evaluates(text: str, values: dict[str, float], result: float) -> None:
    assert parse_expression(text).evaluate(values) == pytest.approx(result)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("__import__('os').system('true')", id="call-of-anything"),
        pytest.param("a.real", id="attribute"),
        pytest.param("a[0]", id="subscript"),
        pytest.param("a if b else c", id="conditional"),
        pytest.param("a < b", id="comparison"),
        pytest.param("'text'", id="string"),
        pytest.param("a ** b", id="variable-exponent"),
        pytest.param("9 ** 999", id="huge-exponent"),
        pytest.param("lambda: 1", id="lambda"),
        pytest.param("a +", id="syntax"),
    ],
)
def test_expression_refuses(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text)


def test_expression_division_by_zero_is_a_reason_not_a_crash() -> None:
    with pytest.raises(ExpressionError, match="division by zero"):
        parse_expression("a / b").evaluate({"a": 1, "b": 0})


@given(text=st.text(max_size=40))
def test_expression_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(ExpressionError):  # refused with a reason, or parsed: nothing else
        parse_expression(text)


def test_composed_totaliser_in_the_worked_example() -> None:
    profile = load_profiles([EXAMPLES])["em_flow_meter"]
    assert profile.modbus is not None
    requests = plan(profile.modbus)
    assert [(r.function, r.start, r.count) for r in requests] == [
        (Function.INPUT_REGISTER, 0, 8),
        (Function.INPUT_REGISTER, 10, 4),  # 30009-30010 reserved: not read
    ]
    from edge_agent.decode import with_derived

    readings = {**decode_block(requests[0], [0x999A, 0x41E5, 0, 0x3FC0, 1234, 0, 1, 1])}
    readings |= decode_block(requests[1], [567, 0, 0x5678, 0x0012])
    out = with_derived(profile, {}, readings)
    assert out["flow_rate"] == (28.7, None)
    assert out["velocity"] == (1.5, None)
    assert out["total"] == (1234.567, None)
    assert out["run_hours"] == (125678, None)
    assert out["empty_pipe"] == (True, None)


def test_derived_expr_must_read_measured_points() -> None:
    doc = yaml.safe_load((EXAMPLES / "em_flow_meter.yaml").read_text())
    doc["derived"]["points"][0]["expr"] = "total_whole + nothing"
    with pytest.raises(ValidationError, match="'nothing' is not a measured point"):
        Profile.model_validate(doc)


# -- per-device overrides ---------------------------------------------------------------------------------------------
def test_device_overrides_change_that_device_only() -> None:
    catalogue = load_catalogue()
    cems = catalogue["flue_gas_cems"]
    changed = apply_overrides(
        cems, {"so2": PointOverride(scale=0.01, range=(0, 500), decimals=1), "so2_zs": PointOverride(decimals=0)}
    )
    so2 = next(p for p in changed.points if p.name == "so2")
    assert (so2.scale, so2.range, so2.decimals) == (0.01, (0, 500), 1)
    assert next(d for d in changed.derived.points if d.name == "so2_zs").decimals == 0  # type: ignore[union-attr]
    assert next(p for p in cems.points if p.name == "so2").scale != 0.01  # the profile itself is untouched
    assert apply_overrides(cems, {}) is cems


def test_override_problems_name_unknown_points_and_derived_limits() -> None:
    cems = load_catalogue()["flue_gas_cems"]
    found = override_problems(cems, {"nope": PointOverride(decimals=1), "so2_zs": PointOverride(scale=2)})
    assert any("no point 'nope'" in p for p in found)
    assert any("'so2_zs' is a derived point" in p for p in found)


def test_site_file_overrides_reach_the_devices_profile() -> None:
    config = EdgeConfig.model_validate(
        {
            "site": "s1",
            "devices": [
                {"id": "c1", "profile": "flue_gas_cems", "host": "h", "points": {"so2": {"scale": 0.5}}},
                {"id": "c2", "profile": "flue_gas_cems", "host": "h"},
            ],
        }
    )
    site = LoadedSite(config, load_catalogue())
    c1, c2 = config.devices
    assert next(p for p in site.profile_of(c1).points if p.name == "so2").scale == 0.5
    assert next(p for p in site.profile_of(c2).points if p.name == "so2").scale == 1.0
    bad = EdgeConfig.model_validate(
        {"site": "s1", "devices": [{"id": "c1", "profile": "flue_gas_cems", "host": "h", "points": {"x": {}}}]}
    )
    with pytest.raises(ConfigError, match="field points: profile 'flue_gas_cems' has no point 'x'"):
        check_devices(bad, load_catalogue())


def test_override_refuses_scale_zero_and_reversed_range() -> None:
    with pytest.raises(ValidationError, match="scale must not be 0"):
        PointOverride(scale=0)
    with pytest.raises(ValidationError, match="min < max"):
        PointOverride(range=(5, 1))


# -- exception hints --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "whole_block", "says"),
    [
        pytest.param(2, True, "declare them reserved or lower max_gap", id="02-block"),
        pytest.param(2, False, "address_base: 1", id="02-point"),
        pytest.param(3, True, "set max_registers_per_request below 15", id="03-block"),
        pytest.param(1, False, "check the point's function", id="01-point"),
        pytest.param(4, True, "modbus exception 4 (server device failure)", id="04-plain"),
    ],
)
def test_exception_hints_say_which_limit_to_set(code: int, whole_block: bool, says: str) -> None:
    block = plan(gas_controller())[0].__class__  # ReadRequest
    requests = plan(spec(points=[{"name": f"c{i}", "address": 40001 + 2 * i, "type": "uint16"} for i in range(8)]))
    request = requests[0] if whole_block else split(requests[0])[0]
    assert isinstance(request, block)
    text = explain_exception(code, request, {1: "illegal function", 2: "x", 3: "y", 4: "server device failure"}[code])
    assert says in text
    if code in (1, 2, 3):
        assert "FC03 40001" in text


def test_plan_describes_manual_and_wire_addresses() -> None:
    request = plan(
        spec(points=[{"name": "freq", "function": "holding_register", "address": "1000H", "type": "uint16"}])
    )
    lines = request[0].describe().splitlines()
    assert "start=4096" in lines[0]
    assert "freq 1000H (wire 4096)" in lines[1]


# -- samples and the template -----------------------------------------------------------------------------------------
def sample_profiles() -> list[tuple[str, Profile]]:
    catalogue = load_catalogue()
    return [(n, p) for n, p in sorted(catalogue.items()) if p.protocol in ("modbus", "mqtt")]


@pytest.mark.parametrize(("name", "profile"), sample_profiles(), ids=[n for n, _ in sample_profiles()])
def test_every_profiles_sample_is_a_valid_site(name: str, profile: Profile) -> None:
    doc = yaml.safe_load(site_sample(profile))
    config = EdgeConfig.model_validate(doc)
    check_devices(config, load_catalogue())
    assert config.devices[0].profile == name


def test_sample_of_the_worked_example_loads_with_its_profile_path() -> None:
    path = EXAMPLES / "em_flow_meter.yaml"
    profile = load_profiles([path])["em_flow_meter"]
    doc = yaml.safe_load(site_sample(profile, path))
    assert doc["profile_paths"] == [str(path)]
    assert "total_fraction: {scale: 0.001}" in site_sample(profile, path)


def test_no_sample_for_stations_and_internal_profiles() -> None:
    with pytest.raises(SampleError):
        site_sample(load_catalogue()["edge_agent"])


def test_new_profile_from_the_template_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "pump_drive.yaml"
    path.write_text(new_profile("pump_drive", kind="pump_drive", title="Pump drive: 'quoted'"))
    profile = load_profiles([path])["pump_drive"]
    assert profile.kind == "pump_drive"
    assert profile.title == "Pump drive: 'quoted'"
    with pytest.raises(ValueError, match="lowercase"):
        new_profile("Pump-Drive")


@pytest.mark.parametrize(
    ("kw", "raw", "value"),
    [
        pytest.param({"scale": 0.1}, 287, 28.7, id="scaled-no-noise"),
        pytest.param({"scale": 0.1, "decimals": 0}, 287, 29.0, id="declared-decimals"),
        pytest.param({}, 28.7, 28.7, id="unscaled-as-sent"),
    ],
)
def test_mqtt_values_carry_no_float_noise(kw: dict[str, object], raw: float, value: float) -> None:
    from device_profiles import MqttPoint
    from edge_agent.vendor_json import convert

    got, quality = convert(MqttPoint.model_validate({"name": "p", "path": "v", **kw}), raw)
    assert quality is None
    assert repr(got) == repr(value)
