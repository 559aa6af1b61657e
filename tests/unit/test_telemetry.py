"""The wire contract: topic scheme, message rules, codec round trips, and decoding that never crashes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from telemetry import (
    AgentState,
    ContractError,
    DeviceStatus,
    PointQuality,
    Quality,
    Sample,
    Telemetry,
    TopicError,
    decode_agent_state,
    decode_status,
    decode_telemetry,
    encode,
    topics,
)
from telemetry.topics import Kind, ParsedTopic

FAST = settings(max_examples=80, deadline=None)

# Topics --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "expected_topic", "expected"),
    [
        pytest.param(
            topics.telemetry("plant-1", "gate.01"),
            "lifeline/v1/plant-1/gate.01/telemetry",
            ParsedTopic(Kind.TELEMETRY, "plant-1", "gate.01"),
            id="telemetry",
        ),
        pytest.param(
            topics.status("plant-1", "gate_01"),
            "lifeline/v1/plant-1/gate_01/status",
            ParsedTopic(Kind.STATUS, "plant-1", "gate_01"),
            id="status",
        ),
        pytest.param(
            topics.agent_state("plant-1"),
            "lifeline/v1/plant-1/agent/state",
            ParsedTopic(Kind.AGENT_STATE, "plant-1", None),
            id="agent-state",
        ),
        pytest.param(
            topics.command("s", "d", "c-42"),
            "lifeline/v1/s/d/cmd/c-42",
            ParsedTopic(Kind.CMD, "s", "d", "c-42"),
            id="command",
        ),
        pytest.param(
            topics.command_result("s", "d", "c-42"),
            "lifeline/v1/s/d/cmd_result/c-42",
            ParsedTopic(Kind.CMD_RESULT, "s", "d", "c-42"),
            id="command-result",
        ),
        pytest.param(
            topics.telemetry("0", "9" * 64),
            f"lifeline/v1/0/{'9' * 64}/telemetry",
            ParsedTopic(Kind.TELEMETRY, "0", "9" * 64),
            id="shortest-and-longest-ids",
        ),
    ],
)
def test_topic_build_and_parse(built: str, expected_topic: str, expected: ParsedTopic) -> None:
    assert built == expected_topic
    assert topics.parse(built) == expected


def test_every_kind_has_a_round_trip_row() -> None:
    built = [
        topics.telemetry("s", "d"),
        topics.status("s", "d"),
        topics.agent_state("s"),
        topics.command("s", "d", "c"),
        topics.command_result("s", "d", "c"),
        topics.stored("s"),
    ]
    assert {topics.parse(t).kind for t in built} == set(Kind)


ids = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,63}", fullmatch=True)
device_ids = ids.filter(lambda d: d != "agent")


@FAST
@given(site=ids, device=device_ids, command_id=ids)
def test_topic_round_trip_any_valid_ids(site: str, device: str, command_id: str) -> None:
    assert topics.parse(topics.telemetry(site, device)) == ParsedTopic(Kind.TELEMETRY, site, device)
    assert topics.parse(topics.status(site, device)) == ParsedTopic(Kind.STATUS, site, device)
    assert topics.parse(topics.agent_state(site)) == ParsedTopic(Kind.AGENT_STATE, site, None)
    assert topics.parse(topics.command(site, device, command_id)) == ParsedTopic(Kind.CMD, site, device, command_id)
    assert topics.parse(topics.command_result(site, device, command_id)) == ParsedTopic(
        Kind.CMD_RESULT, site, device, command_id
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: topics.telemetry("Plant", "d"), "site id 'Plant' is not valid", id="uppercase-site"),
        pytest.param(lambda: topics.telemetry("", "d"), "site id '' is not valid", id="empty-site"),
        pytest.param(lambda: topics.telemetry("s", "a/b"), "device id 'a/b' is not valid", id="slash-in-device"),
        pytest.param(lambda: topics.status("s", "+"), r"device id '\+' is not valid", id="wildcard-device"),
        pytest.param(lambda: topics.status("s", "-d"), "device id '-d' is not valid", id="device-starts-with-dash"),
        pytest.param(lambda: topics.telemetry("s", "d" * 65), "device id 'd{65}' is not valid", id="device-65-chars"),
        pytest.param(lambda: topics.telemetry("s\n", "d"), r"site id 's\\n' is not valid", id="trailing-newline"),
        pytest.param(lambda: topics.telemetry("s", "agent"), "device id 'agent' is reserved", id="agent-as-device"),
        pytest.param(lambda: topics.status("s", "agent"), "device id 'agent' is reserved", id="agent-status"),
        pytest.param(lambda: topics.agent_state("s#"), r"site id 's#' is not valid", id="hash-in-site"),
        pytest.param(lambda: topics.command("s", "d", "c 1"), "command id 'c 1' is not valid", id="space-in-command"),
        pytest.param(lambda: topics.command_result("s", "d", ""), "command id '' is not valid", id="empty-command"),
    ],
)
def test_builders_refuse_invalid_ids(build: Callable[[], str], message: str) -> None:
    with pytest.raises(TopicError, match=message):
        build()


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        pytest.param("other/v1/s/d/telemetry", "is not under lifeline/v1/", id="wrong-prefix"),
        pytest.param("lifeline/v2/s/d/telemetry", "is not under lifeline/v1/", id="wrong-version"),
        pytest.param("lifeline/v1/s/d", "is not under lifeline/v1/", id="too-short"),
        pytest.param("", "is not under lifeline/v1/", id="empty"),
        pytest.param("lifeline/v1/S/d/telemetry", "site id 'S' is not valid", id="uppercase-site"),
        pytest.param("lifeline/v1//d/telemetry", "site id '' is not valid", id="empty-site"),
        pytest.param("lifeline/v1/s/D/telemetry", "device id 'D' is not valid", id="uppercase-device"),
        pytest.param("lifeline/v1/s/agent/telemetry", "device id 'agent' is reserved", id="agent-telemetry"),
        pytest.param("lifeline/v1/s/agent/status", "device id 'agent' is reserved", id="agent-status"),
        pytest.param("lifeline/v1/s/d/state", "unknown kind 'state'", id="state-of-a-device"),
        pytest.param("lifeline/v1/s/d/telemetry/x", "unknown kind 'telemetry/x'", id="extra-level"),
        pytest.param("lifeline/v1/s/d/values", "unknown kind 'values'", id="unknown-kind"),
        pytest.param("lifeline/v1/s/d/cmd", "unknown kind 'cmd'", id="command-without-id"),
        pytest.param("lifeline/v1/s/d/cmd/a/b", "unknown kind 'cmd/a/b'", id="command-id-with-slash"),
        pytest.param("lifeline/v1/s/d/cmd/C1", "command id 'C1' is not valid", id="uppercase-command-id"),
        pytest.param("lifeline/v1/s/d/cmd_result/", "command id '' is not valid", id="empty-command-result-id"),
    ],
)
def test_parse_refuses_invalid_topics(topic: str, message: str) -> None:
    with pytest.raises(TopicError, match=message):
        topics.parse(topic)


def test_filters() -> None:
    assert topics.telemetry_filter() == "lifeline/v1/+/+/telemetry"
    assert topics.telemetry_filter("s") == "lifeline/v1/s/+/telemetry"
    assert topics.status_filter("s") == "lifeline/v1/s/+/status"
    assert topics.command_filter("s", "d") == "lifeline/v1/s/d/cmd/+"
    assert topics.all_filter() == "lifeline/v1/#"


# Message rules -------------------------------------------------------------------------------------------------------

BAD = {"q": "bad", "reason": "timeout"}
UNCERTAIN = {"q": "uncertain", "reason": "above range"}


def telemetry_dict(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "v": 1,
        "site": "s",
        "device": "d",
        "profile": "p",
        "measurement": "m",
        "seq": 0,
        "samples": [{"ts": 1_700_000_000_000, "values": {"ph": 7.1}}],
    }
    message.update(overrides)
    return message


def sample(values: dict[str, Any], quality: dict[str, Any] | None = None, ts: int = 0) -> dict[str, Any]:
    return {"ts": ts, "values": values, **({"quality": quality} if quality is not None else {})}


@pytest.mark.parametrize(
    "s",
    [
        pytest.param(sample({"ph": 7.1}), id="good-value-without-quality"),
        pytest.param(sample({"ph": None}, {"ph": BAD}), id="bad-point-null-value"),
        pytest.param(sample({"ph": 15.0}, {"ph": UNCERTAIN}), id="uncertain-keeps-its-value"),
        pytest.param(sample({"ph": None}, {"ph": UNCERTAIN}), id="uncertain-may-be-null"),
        pytest.param(sample({"alarm": True, "count": 3, "text": "OK"}), id="bool-int-and-text-values"),
        pytest.param(sample({}), id="no-values"),
    ],
)
def test_valid_samples(s: dict[str, Any]) -> None:
    assert Sample.model_validate(s).model_dump(mode="json", exclude_defaults=True) == s


@pytest.mark.parametrize(
    ("message", "error"),
    [
        pytest.param(
            telemetry_dict(samples=[sample({"ph": 7.0}, {"ph": BAD})]),
            "point 'ph' is bad, so its value must be null",
            id="bad-point-with-a-value",
        ),
        pytest.param(
            telemetry_dict(samples=[sample({"ph": None})]),
            "point 'ph' is null but has no quality saying why",
            id="null-without-quality",
        ),
        pytest.param(
            telemetry_dict(samples=[sample({"ph": 7.0}, {"do": BAD})]),
            "quality given for point 'do', which has no value entry",
            id="quality-for-unknown-point",
        ),
        pytest.param(
            telemetry_dict(samples=[sample({"ph": 7.0}, {"ph": {"q": "good", "reason": "x"}})]),
            "samples.0.quality.ph.q",
            id="explicit-good-quality",
        ),
        pytest.param(
            telemetry_dict(samples=[sample({"ph": None}, {"ph": {"q": "bad", "reason": ""}})]),
            "samples.0.quality.ph.reason",
            id="empty-reason",
        ),
        pytest.param(telemetry_dict(samples=[]), "samples", id="no-samples"),
        pytest.param(telemetry_dict(seq=-1), "seq", id="negative-seq"),
        pytest.param(telemetry_dict(samples=[sample({"ph": 7.0}, ts=-1)]), "samples.0.ts", id="negative-ts"),
        pytest.param(telemetry_dict(v=2), "v", id="contract-version-2"),
        pytest.param(telemetry_dict(extra=1), "extra", id="extra-field-in-message"),
        pytest.param(
            telemetry_dict(samples=[{**sample({"ph": 7.0}), "flags": {}}]),
            "samples.0.flags",
            id="extra-field-in-sample",
        ),
        pytest.param(
            telemetry_dict(samples=[sample({"ph": None}, {"ph": {**BAD, "code": 1}})]),
            "samples.0.quality.ph.code",
            id="extra-field-in-quality",
        ),
        pytest.param(telemetry_dict(samples=[sample({"pH": 7.0})]), "samples.0.values.pH", id="uppercase-point"),
        pytest.param(telemetry_dict(units={"1ph": "pH"}), "units.1ph", id="unit-for-invalid-point-name"),
        pytest.param(telemetry_dict(samples=[sample({"ph": [7.0]})]), "samples.0.values.ph", id="list-value"),
        pytest.param({k: v for k, v in telemetry_dict().items() if k != "device"}, "device", id="missing-device"),
    ],
)
def test_invalid_telemetry_is_refused(message: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Telemetry.model_validate(message)
    with pytest.raises(ContractError, match=error):
        decode_telemetry(orjson.dumps(message))


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        pytest.param(math.nan, b"NaN", id="nan"),
        pytest.param(math.inf, b"Infinity", id="inf"),
        pytest.param(-math.inf, b"-Infinity", id="minus-inf"),
    ],
)
def test_non_finite_values_are_refused(value: float, wire: bytes) -> None:
    with pytest.raises(ValidationError, match=f"point 'ph': {value} is not a finite number"):
        Telemetry.model_validate(telemetry_dict(samples=[sample({"ph": value})]))
    # Not JSON either: a producer that writes them (as Python's json module does) is refused at decode.
    payload = orjson.dumps(telemetry_dict()).replace(b"7.1", wire)
    with pytest.raises(ContractError, match="is not JSON"):
        decode_telemetry(payload)


def test_quality_of() -> None:
    s = Sample.model_validate(sample({"a": 1, "b": None, "c": 2}, {"b": BAD, "c": UNCERTAIN}))
    assert [s.quality_of(p) for p in ("a", "b", "c")] == [Quality.GOOD, Quality.BAD, Quality.UNCERTAIN]


@pytest.mark.parametrize(
    ("model", "data", "error"),
    [
        pytest.param(
            DeviceStatus,
            {"site": "s", "device": "d", "profile": "p", "online": True, "ts": -1},
            "ts",
            id="status-negative-ts",
        ),
        pytest.param(
            DeviceStatus,
            {"site": "s", "device": "d", "profile": "p", "online": True, "ts": 0, "x": 1},
            "x",
            id="status-extra-field",
        ),
        pytest.param(
            AgentState,
            {"site": "s", "agent": "a", "online": "maybe", "ts": 0},
            "online",
            id="agent-state-online-not-bool",
        ),
        pytest.param(PointQuality, {"q": "bad"}, "reason", id="quality-without-reason"),
    ],
)
def test_other_models_are_strict(model: type[Any], data: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        model.model_validate(data)


# Codec ---------------------------------------------------------------------------------------------------------------

point_names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
plain_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)  # JSON text cannot hold surrogates
good_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what JSON through orjson carries exactly
    st.floats(allow_nan=False, allow_infinity=False),
    plain_text,
)
reasons = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    values: dict[str, Any] = draw(st.dictionaries(point_names, good_values, max_size=6))
    quality: dict[str, PointQuality] = {}
    for name in draw(st.lists(point_names, max_size=3)):
        q = draw(st.sampled_from([Quality.BAD, Quality.UNCERTAIN]))
        if q is Quality.BAD or name not in values:
            values[name] = None
        quality[name] = PointQuality(q=q, reason=draw(reasons))
    return Sample(ts=draw(st.integers(0, 2**63 - 1)), values=values, quality=quality)


messages = st.builds(
    Telemetry,
    site=ids,
    device=device_ids,
    profile=point_names,
    measurement=point_names,
    seq=st.integers(0, 2**63 - 1),
    tags=st.dictionaries(point_names, plain_text, max_size=3),
    units=st.dictionaries(point_names, plain_text, max_size=3),
    samples=st.lists(samples(), min_size=1, max_size=4),
)


@FAST
@given(message=messages)
def test_telemetry_round_trip(message: Telemetry) -> None:
    wire = encode(message)
    decoded = decode_telemetry(wire, topics.telemetry(message.site, message.device))
    assert decoded == message
    assert encode(decoded) == wire  # no value changed type (1 vs 1.0, True vs 1) on the way


def test_encode_is_compact_json_with_every_field() -> None:
    message = Telemetry.model_validate(telemetry_dict())
    expected = {**telemetry_dict(), "tags": {}, "units": {}, "run": ""}
    expected["samples"] = [{**expected["samples"][0], "quality": {}}]
    assert orjson.loads(encode(message)) == expected
    assert b" " not in encode(message)


@pytest.mark.parametrize(
    ("message", "decode"),
    [
        pytest.param(
            DeviceStatus(site="s", device="d", profile="p", online=False, ts=5, reason="timeout"),
            decode_status,
            id="device-status",
        ),
        pytest.param(
            AgentState(site="s", agent="edge-s", online=True, ts=5, version="0.1.0", devices=["a", "b"]),
            decode_agent_state,
            id="agent-state",
        ),
    ],
)
def test_status_and_agent_state_round_trip(message: Any, decode: Callable[[bytes], Any]) -> None:
    assert decode(encode(message)) == message


TOPIC = "lifeline/v1/s/d/telemetry"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        pytest.param(b"", "payload on topic 'lifeline/v1/s/d/telemetry' is not JSON", id="empty"),
        pytest.param(b"{'v': 1}", "payload on topic 'lifeline/v1/s/d/telemetry' is not JSON", id="single-quotes"),
        pytest.param(b"\xff\xfe", "payload on topic 'lifeline/v1/s/d/telemetry' is not JSON", id="not-utf8"),
        pytest.param(
            b"[1, 2]", "Telemetry payload on topic 'lifeline/v1/s/d/telemetry' is invalid: (message)", id="json-list"
        ),
        pytest.param(
            b"null", "Telemetry payload on topic 'lifeline/v1/s/d/telemetry' is invalid: (message)", id="json-null"
        ),
        pytest.param(
            orjson.dumps(telemetry_dict(samples=[sample({"ph": None})])),
            "point 'ph' is null but has no quality saying why",
            id="rule-broken-in-a-sample",
        ),
    ],
)
def test_decode_error_names_topic_and_problem(payload: bytes, error: str) -> None:
    with pytest.raises(ContractError) as err:
        decode_telemetry(payload, TOPIC)
    assert error in str(err.value)
    assert f"on topic {TOPIC!r}" in str(err.value)


def test_decode_error_without_topic_does_not_invent_one() -> None:
    with pytest.raises(ContractError) as err:
        decode_telemetry(b"{}")
    assert "topic" not in str(err.value)
    assert str(err.value).startswith("Telemetry payload is invalid: ")


def _check_decode_only_raises_contract_error(payload: bytes | str) -> None:
    try:
        decoded = decode_telemetry(payload, TOPIC)
    except ContractError as exc:
        error = str(exc)
    else:
        assert isinstance(decoded, Telemetry)
        return
    assert f"on topic {TOPIC!r}" in error


@FAST
@given(payload=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_decode_of_arbitrary_bytes_only_raises_contract_error(payload: bytes | str) -> None:
    _check_decode_only_raises_contract_error(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | plain_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_text, inner, max_size=3),
    max_leaves=10,
)
fields = st.sampled_from(["v", "site", "device", "profile", "measurement", "seq", "tags", "units", "samples", "x"])


@FAST
@given(field=fields, value=json_values, in_sample=st.booleans())
def test_decode_of_mangled_messages_only_raises_contract_error(field: str, value: Any, in_sample: bool) -> None:
    message = telemetry_dict()
    if in_sample:
        message["samples"][0][field if field in ("ts", "values", "quality") else "values"] = value
    else:
        message[field] = value
    try:
        payload = orjson.dumps(message)
    except TypeError:  # an integer beyond 64 bits is not JSON orjson writes; send it as text
        payload = repr(message).encode()
    _check_decode_only_raises_contract_error(payload)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[" * 5000, id="deeply-nested"),
        pytest.param(b'{"v": 1, "seq": 1e999}', id="number-beyond-float"),
        pytest.param(b'{"v": 1, "seq": 123456789012345678901234567890}', id="integer-beyond-64-bits"),
        pytest.param('{"site": "\ud800"}', id="lone-surrogate-in-text"),
        pytest.param(b'{"v": NaN}', id="nan-literal"),
    ],
)
def test_decode_hostile_payloads(payload: bytes | str) -> None:
    with pytest.raises(ContractError, match="on topic"):
        decode_telemetry(payload, TOPIC)


# -- the centre's stored acknowledgement (docs/decisions/010) ------------------------------------------------------
def test_stored_round_trip_and_topic() -> None:
    from telemetry import Stored, StoredRange, decode_stored

    ack = Stored(site="s1", bridge="bridge-1", ts=5, ranges=[StoredRange(device="d1", run="r1", first=3, last=9)])
    assert decode_stored(encode(ack)) == ack
    assert topics.stored("s1") == "lifeline/v1/s1/agent/stored"
    assert topics.parse(topics.stored("s1")) == topics.ParsedTopic(topics.Kind.STORED, "s1", None)
    assert topics.stored("+") == "lifeline/v1/+/agent/stored"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        pytest.param(b'{"site":"s1","bridge":"b","ts":1,"ranges":[]}', "ranges", id="no-ranges"),
        pytest.param(
            b'{"site":"s1","bridge":"b","ts":1,"ranges":[{"device":"d","run":"r","first":5,"last":4}]}',
            "before first",
            id="backwards-range",
        ),
        pytest.param(
            b'{"site":"s1","bridge":"b","ts":1,"ranges":[{"device":"d","run":"r r","first":1,"last":1}]}',
            "run",
            id="bad-run-id",
        ),
    ],
)
def test_stored_refuses(payload: bytes, problem: str) -> None:
    from telemetry import ContractError, decode_stored

    with pytest.raises(ContractError, match=problem):
        decode_stored(payload, "lifeline/v1/s1/agent/stored")


def test_telemetry_carries_its_run() -> None:
    message = decode_telemetry(
        b'{"site":"s","device":"d","profile":"p","measurement":"m","seq":1,"run":"abc-1",'
        b'"samples":[{"ts":1,"values":{"x":1}}]}'
    )
    assert message.run == "abc-1"
