"""telemetry.wire: the msgspec fast path accepts exactly what the pydantic models accept, with the same values, and
refuses with exactly the models' ContractError text."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry import ContractError
from telemetry import decode_telemetry as decode_pydantic
from telemetry.wire import WireTelemetry, decode_telemetry, msgspec_accepts

TOPIC = "lifeline/v1/s1/d1/telemetry"


def _msg(**over: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "site": "s1",
        "device": "d1",
        "profile": "p",
        "measurement": "m",
        "seq": 3,
        "samples": [{"ts": 1_700_000_000_000, "values": {"a": 1.5}}],
    }
    msg.update(over)
    return msg


def _sample(**over: Any) -> dict[str, Any]:
    return _msg(samples=[{"ts": 1, "values": {"a": 1.5}, **over}])


VALID: list[Any] = [
    _msg(),
    _msg(v=1, run="r-1_A", tags={"room": "1"}, units={"a": "mg/L"}),
    _sample(values={"a": None}, quality={"a": {"q": "bad", "reason": "timeout"}}),
    _sample(values={"a": 2, "b": True, "c": "text", "d": -0.0}, quality={"a": {"q": "uncertain", "reason": "r"}}),
    _msg(samples=[{"ts": 0, "values": {}}, {"ts": 2, "values": {"z9_": 18446744073709551615}}]),
    _msg(seq=9223372036854775807),
    _msg(seq=18446744073709551615),  # pydantic: a plain int; msgspec's bound is int64, so it falls back
    _sample(ts=1.0),  # lax: an integral float is an int for pydantic
    _msg(v=True),  # lax: Literal[1] takes true
    _msg(seq="3"),  # lax: a numeric string is an int
    _msg(site="s1", device="d.1-x_y"),
    _sample(values={"a" + "b" * 63: 1}),
]

INVALID: list[Any] = [
    b"not json",
    b"",
    b"[]",
    b"\xef\xbb\xbf" + orjson.dumps(_msg()),
    orjson.dumps(_msg())[:-1],
    _msg(v=2),
    _msg(extra=1),
    _msg(site="S1"),
    _msg(site="s1\n"),
    _msg(device=""),
    _msg(run="r\n"),
    _msg(run="x" * 41),
    _msg(seq=-1),
    _msg(samples=[]),
    _msg(profile=None),
    _msg(tags={"a": 1}),
    _msg(units={"time": "s"}),
    _msg(units={"A": "s"}),
    {k: v for k, v in _msg().items() if k != "site"},
    _sample(ts=-1),
    _sample(ts=1.5),
    _sample(values={"time": 1}),
    _sample(values={"a\n": 1}),
    _sample(values={"A": 1}),
    _sample(values={"a" * 65: 1}),
    _sample(values={"a": None}),
    _sample(values={"a": [1]}),
    _sample(values={"a": {"b": 1}}),
    _sample(values={"a": 1}, quality={"b": {"q": "bad", "reason": "r"}}),
    _sample(values={"a": 1}, quality={"a": {"q": "bad", "reason": "r"}}),
    _sample(values={"a": 1}, quality={"a": {"q": "good", "reason": "r"}}),
    _sample(values={"a": 1}, quality={"a": {"q": "uncertain", "reason": ""}}),
    _sample(values={"a": 1}, quality={"a": {"q": "uncertain", "reason": "r" * 301}}),
    _sample(values={"a": 1}, quality={"a": {"q": "uncertain"}}),
    _sample(values={"a": 1}, quality={"a": {"q": "uncertain", "reason": "r", "x": 1}}),
    _sample(extra=1),
    b'{"site":"s1","device":"d1","profile":"p","measurement":"m","seq":1,"samples":[{"ts":1,"values":{"a":1e400}}]}',
    b'{"site":"s1","device":"d1","profile":"p","measurement":"m","seq":1,"samples":[{"ts":1,"values":{"a":NaN}}]}',
    b'{"site":"s1","device":"d1","profile":"p","measurement":"m","seq":1,"samples":[{"ts":1,"values":{"a":"\\ud800"}}]}',
    b'{"site":"s1","device":"d1","profile":"p","measurement":"m\xff","seq":1,"samples":[{"ts":1,"values":{"a":1}}]}',
    b'{"site":"s1","device":"d1","profile":"p","measurement":"m","seq":1,"samples":[{"ts":123456789012345678901234567890'
    b',"values":{"a":1}}]}',
]
BIG = (
    b'{"site":"s1","device":"d1","profile":"p","measurement":"m","seq":1,"samples":[{"ts":1,"values":{"a":1' + b"0" * 30
)
VALID.append(BIG + b"}}]}")  # orjson reads it as a float: pydantic keeps that float, and so must the fast path


def _raw(case: Any) -> bytes:
    return case if isinstance(case, bytes) else orjson.dumps(case)


def _same(raw: bytes) -> None:
    try:
        expected = decode_pydantic(raw, TOPIC)
    except ContractError as exc:
        text = str(exc)
        with pytest.raises(ContractError) as got:
            decode_telemetry(raw, TOPIC)
        assert str(got.value) == text
        return
    msg = decode_telemetry(raw, TOPIC)
    dumped = expected.model_dump(mode="python")
    if isinstance(msg, WireTelemetry):
        import msgspec

        got_dump = msgspec.to_builtins(msg)
        assert got_dump == orjson.loads(orjson.dumps(expected.model_dump(mode="json")))
        # same Python types too (an int stays an int, a float a float)
        for ours, theirs in zip(msg.samples, expected.samples, strict=True):
            assert ours.ts == theirs.ts
            assert {k: type(v) for k, v in ours.values.items()} == {k: type(v) for k, v in theirs.values.items()}
            assert ours.values == theirs.values
            assert {k: ours.quality_of(k) for k in ours.values} == {k: theirs.quality_of(k) for k in theirs.values}
            assert all(ours.quality[k].q is theirs.quality[k].q for k in ours.quality)
    else:
        assert msg.model_dump(mode="python") == dumped


@pytest.mark.parametrize("case", VALID, ids=range(len(VALID)))
def test_valid_messages_are_accepted_alike(case: Any) -> None:
    decode_pydantic(_raw(case), TOPIC)
    _same(_raw(case))


def test_common_messages_take_the_fast_path() -> None:
    for case in VALID[:4]:
        assert msgspec_accepts(_raw(case))


@pytest.mark.parametrize("case", INVALID, ids=range(len(INVALID)))
def test_invalid_messages_are_refused_with_the_models_text(case: Any) -> None:
    with pytest.raises(ContractError):
        decode_pydantic(_raw(case), TOPIC)
    _same(_raw(case))


_names = st.one_of(st.from_regex(r"\A[a-z][a-z0-9_]{0,5}\Z"), st.sampled_from(["time", "A", "a\n", "", "b" * 65]))
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=1),
)
_quality = st.fixed_dictionaries(
    {"q": st.sampled_from(["bad", "uncertain", "good", 1])},
    optional={"reason": st.text(max_size=3), "x": st.integers()},
)
_samples = st.fixed_dictionaries(
    {"ts": st.one_of(st.integers(-2, 2**65), st.floats(0, 10), st.just("1"))},
    optional={
        "values": st.dictionaries(_names, _values, max_size=3),
        "quality": st.dictionaries(_names, _quality, max_size=2),
        "extra": st.none(),
    },
)
_ids = st.one_of(st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,3}\Z"), st.sampled_from(["", "S", "a b", "a\n"]), st.none())
_messages = st.fixed_dictionaries(
    {"site": _ids, "device": _ids, "samples": st.lists(_samples, max_size=2)},
    optional={
        "profile": st.one_of(st.text(max_size=3), st.integers()),
        "measurement": st.text(max_size=3),
        "seq": st.one_of(st.integers(-1, 2**65), st.floats(0, 3)),
        "v": st.sampled_from([1, 2, True, 1.0, "1"]),
        "run": st.one_of(st.from_regex(r"\A[A-Za-z0-9_-]{0,3}\Z"), st.just("r\n")),
        "tags": st.dictionaries(st.text(max_size=2), st.one_of(st.text(max_size=2), st.integers()), max_size=2),
        "units": st.dictionaries(_names, st.text(max_size=2), max_size=2),
        "other": st.none(),
    },
)


@settings(max_examples=400, deadline=None)
@given(_messages)
def test_generated_messages_decode_alike(message: dict[str, Any]) -> None:
    # the stdlib writes integers beyond 64 bits too (orjson refuses them), and text unescaped
    _same(json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_decode_alike(data: bytes) -> None:
    _same(data)
