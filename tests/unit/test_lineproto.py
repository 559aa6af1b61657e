"""Line protocol encoder: golden lines, escaping helpers, a round trip through a 1.x-faithful parser, the cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.lineproto import (
    LineEncoder,
    escape_field_key,
    escape_measurement,
    escape_tag,
    quote_string,
    series_key,
)
from telemetry.models import Quality, Sample, Telemetry

TS = 1_700_000_000_000
KEY = "water_quality,device=d1,profile=wq,site=s1"


def message(
    values: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
    *,
    tags: dict[str, str] | None = None,
    measurement: str = "water_quality",
    profile: str = "wq",
    device: str = "d1",
    samples: list[dict[str, Any]] | None = None,
) -> Telemetry:
    if samples is None:
        samples = [{"ts": TS, "values": values or {}, "quality": quality or {}}]
    return Telemetry(
        site="s1",
        device=device,
        profile=profile,
        measurement=measurement,
        seq=1,
        tags=tags or {},
        samples=samples,
    )


# ---------------------------------------------------------------------------------------------------------------
# A small line-protocol parser that reads a line the way InfluxDB 1.x does (models/points.go, pkg/escape): a byte
# after a backslash is escaped (the scanner looks only at the previous byte); the measurement unescapes "\," and
# "\ "; tag keys and values unescape "\,", "\ " and "\=" (in that order, each over the whole text); field keys use
# escape.Unescape ("\,", "\"", "\ ", "\="); string values unescape "\\" and "\"" only.


@dataclass
class Parsed:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, bool | int | float | str]
    ts: int
    key: str
    escaped_tag_keys: list[str]


def _scan_to(text: str, start: int, stops: str) -> int:
    """Index of the first character of stops at or after start that no backslash escapes (or len(text))."""
    i = start
    while i < len(text):
        if text[i] in stops and (i == 0 or text[i - 1] != "\\"):
            return i
        i += 1
    return i


def _unescape_tag(text: str) -> str:
    return text.replace("\\,", ",").replace("\\ ", " ").replace("\\=", "=")


def _unescape(text: str, escaped: str) -> str:
    """``text`` with each backslash before one of ``escaped`` dropped."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in escaped:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _unescape_field_key(text: str) -> str:
    return _unescape(text, ',=" ')


def _unescape_string(text: str) -> str:
    return _unescape(text, '\\"')


def _field_value(text: str) -> bool | int | float | str:
    if text.startswith('"'):
        assert len(text) >= 2, text
        assert text.endswith('"'), text
        return _unescape_string(text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    if text.endswith("i"):
        return int(text[:-1])
    return float(text)


def parse_line(line: str) -> Parsed:
    assert "\n" not in line
    key_end = _scan_to(line, 0, " ")
    key = line[:key_end]
    m_end = _scan_to(key, 0, ",")
    measurement = key[:m_end].replace("\\,", ",").replace("\\ ", " ")
    tags: dict[str, str] = {}
    escaped_tag_keys: list[str] = []
    i = m_end + 1
    while i < len(key):
        eq = _scan_to(key, i, "=,")
        assert eq < len(key), f"tag without value in {key!r}"
        assert key[eq] == "=", f"tag without value in {key!r}"
        end = _scan_to(key, eq + 1, ",=")
        assert end == len(key) or key[end] == ",", f"unescaped '=' in a tag value of {key!r}"
        tag_key, tag_value = _unescape_tag(key[i:eq]), _unescape_tag(key[eq + 1 : end])
        assert tag_key, key
        assert tag_value, key
        assert tag_key not in tags, key
        escaped_tag_keys.append(key[i:eq])
        tags[tag_key] = tag_value
        i = end + 1
    fields: dict[str, bool | int | float | str] = {}
    i = key_end + 1
    while True:
        eq = _scan_to(line, i, "=")
        name = _unescape_field_key(line[i:eq])
        j = eq + 1
        if line[j] == '"':  # a string runs to the next quote that no backslash pair leaves escaped
            j += 1
            while line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            j += 1
        else:
            while line[j] not in ", ":
                j += 1
        assert name not in fields
        fields[name] = _field_value(line[eq + 1 : j])
        if line[j] == " ":
            break
        i = j + 1
    return Parsed(measurement, tags, fields, int(line[j + 1 :]), key, escaped_tag_keys)


# ---------------------------------------------------------------------------------------------------------------
# Golden lines: one row a case.

GOLDEN = [
    pytest.param(message({"ph": 7.25}), [f"{KEY} ph=7.25 {TS}"], id="plain"),
    pytest.param(
        message({"a": 1.5, "b": -3, "c": True, "d": False, "e": "ok"}),
        [f'{KEY} a=1.5,b=-3.0,c=true,d=false,e="ok" {TS}'],
        id="float-int-bool-str-fields",
    ),
    pytest.param(message({"level": 88}), [f"{KEY} level=88.0 {TS}"], id="int-written-as-float"),
    pytest.param(
        message({"count": 2**53 + 1, "tiny": 1e-7, "huge": 1e22}),
        [f"{KEY} count=9007199254740992.0,huge=1e+22,tiny=1e-07 {TS}"],
        id="int-beyond-2**53-rounds-and-exponents",
    ),
    pytest.param(
        message({"ph": 14.9}, {"ph": {"q": "uncertain", "reason": "above range"}}),
        [f'{KEY} ph=14.9,ph.q=1i,ph.reason="above range" {TS}'],
        id="quality-uncertain",
    ),
    pytest.param(
        message({"ph": None, "temp": 20.5}, {"ph": {"q": "bad", "reason": "timeout"}}),
        [f'{KEY} ph.q=2i,ph.reason="timeout",temp=20.5 {TS}'],
        id="quality-bad-point-without-value",
    ),
    pytest.param(
        message({"ph": None}, {"ph": {"q": "bad", "reason": 'read "failed"'}}),
        [f'{KEY} ph.q=2i,ph.reason="read \\"failed\\"" {TS}'],
        id="only-a-bad-point",
    ),
    pytest.param(
        message({"ph": 7.0}, tags={"loc": "a,b=c d", "my key=,": "v"}),
        [rf"water_quality,device=d1,loc=a\,b\=c\ d,my\ key\=\,=v,profile=wq,site=s1 ph=7.0 {TS}"],
        id="tag-escaping-comma-equals-space",
    ),
    pytest.param(
        message({"ph": 7.0}, measurement="water quality,x=y"),
        [rf"water\ quality\,x=y,device=d1,profile=wq,site=s1 ph=7.0 {TS}"],
        id="measurement-escaping",
    ),
    pytest.param(
        message({"note": 'say "hi" C:\\dir\\\nnext\r'}),
        [f'{KEY} note="say \\"hi\\" C:\\\\dir\\\\\\nnext\r" {TS}'],
        id="string-quotes-backslashes-newline",
    ),
    pytest.param(message({"ph": 7.0}, tags={"zone": ""}), [f"{KEY} ph=7.0 {TS}"], id="empty-tag-value-left-out"),
    pytest.param(
        message({"ph": 7.0}, profile=""), [f"water_quality,device=d1,site=s1 ph=7.0 {TS}"], id="empty-profile-left-out"
    ),
    pytest.param(
        message({"ph": 7.0}, tags={"site": "evil", "device": "x", "profile": "y"}),
        [f"{KEY} ph=7.0 {TS}"],
        id="message-tag-named-site-does-not-override",
    ),
    pytest.param(
        message({"ph": 7.0}, profile="", tags={"profile": "y"}),
        [f"water_quality,device=d1,site=s1 ph=7.0 {TS}"],
        id="message-tag-profile-does-not-fill-in-ours",
    ),
    pytest.param(
        message({"ph": 7.0}, tags={"zz": "1", "aa": "2", "m": "3"}),
        [f"water_quality,aa=2,device=d1,m=3,profile=wq,site=s1,zz=1 ph=7.0 {TS}"],
        id="tags-sorted",
    ),
    pytest.param(
        message({"ph": 7.0}, tags={"a b": "1", "a!": "2"}),
        [rf"water_quality,a!=2,a\ b=1,device=d1,profile=wq,site=s1 ph=7.0 {TS}"],
        id="tags-sorted-by-escaped-bytes-as-influxdb-does",
    ),
    pytest.param(
        message({"name": "温度 ok ✓"}, tags={"区域": "东 门"}),
        [rf'{KEY},区域=东\ 门 name="温度 ok ✓" {TS}'],
        id="unicode-in-tags-and-strings",
    ),
    pytest.param(
        message({"p": 1.0}, tags={"path": "C:\\", "only": "\\\\", "k\\": "v"}),
        [f"water_quality,device=d1,k=v,path=C:,profile=wq,site=s1 p=1.0 {TS}"],
        id="trailing-backslash-dropped-from-tags",
    ),
    pytest.param(
        message({"p": 1.0}, tags={"t": "a\\,b\\c\\ d"}),
        [rf"{KEY},t=a\\,b\c\\ d p=1.0 {TS}"],
        id="backslash-before-special-kept-as-is",
    ),
    pytest.param(
        message({"p": 1.0}, tags={"t": "two\nlines"}),
        [rf"{KEY},t=two\nlines p=1.0 {TS}"],
        id="newline-in-tag-written-as-backslash-n",
    ),
    pytest.param(
        message(
            samples=[
                {"ts": TS, "values": {"ph": 7.0}},
                {"ts": TS + 1000, "values": {"ph": 7.1}},
                {"ts": TS + 2000, "values": {}},
            ]
        ),
        [f"{KEY} ph=7.0 {TS}", f"{KEY} ph=7.1 {TS + 1000}"],
        id="several-samples-own-timestamps-empty-sample-no-line",
    ),
]


@pytest.mark.parametrize(("msg", "lines"), GOLDEN)
def test_golden(msg: Telemetry, lines: list[str]) -> None:
    assert LineEncoder().encode(msg) == lines


def test_encode_batch_joins_lines_as_utf8() -> None:
    msgs = [message({"ph": 7.0}), message({"ph": 7.5}, tags={"区": "东"})]
    body, count = LineEncoder().encode_batch(msgs)
    assert count == 2
    assert body == f"{KEY} ph=7.0 {TS}\n{KEY},区=东 ph=7.5 {TS}".encode()
    assert LineEncoder().encode_batch([]) == (b"", 0)


# ---------------------------------------------------------------------------------------------------------------
# Helpers and refusals.


@pytest.mark.parametrize(
    ("func", "raw", "escaped"),
    [
        pytest.param(escape_measurement, "a,b c=d", r"a\,b\ c=d", id="measurement-comma-space-not-equals"),
        pytest.param(escape_measurement, 'a"b\\c', 'a"b\\c', id="measurement-quote-backslash-as-is"),
        pytest.param(escape_tag, "a,b=c d", r"a\,b\=c\ d", id="tag"),
        pytest.param(escape_tag, "x\\\\", "x", id="tag-trailing-backslashes"),
        pytest.param(escape_tag, "\\", "", id="tag-only-backslash-becomes-empty"),
        pytest.param(escape_tag, 'q"', 'q"', id="tag-quote-as-is"),
        pytest.param(escape_field_key, "a,b=c d", r"a\,b\=c\ d", id="field-key"),
        pytest.param(escape_field_key, "ph.reason", "ph.reason", id="field-key-plain"),
        pytest.param(quote_string, 'a"b\\c\nd', '"a\\"b\\\\c\\nd"', id="string"),
        pytest.param(quote_string, "", '""', id="string-empty"),
        pytest.param(quote_string, "end\\", '"end\\\\"', id="string-trailing-backslash"),
    ],
)
def test_escape_helpers(func: Any, raw: str, escaped: str) -> None:
    assert func(raw) == escaped


@pytest.mark.parametrize(
    ("func", "raw"),
    [
        pytest.param(escape_measurement, "", id="measurement-empty"),
        pytest.param(escape_measurement, "#comment", id="measurement-hash-is-a-comment-line"),
        pytest.param(escape_measurement, "\tm", id="measurement-leading-tab"),
        pytest.param(escape_measurement, "m\\", id="measurement-trailing-backslash"),
        pytest.param(escape_field_key, "", id="field-key-empty"),
        pytest.param(escape_field_key, "f\\", id="field-key-trailing-backslash"),
    ],
)
def test_escape_refusals(func: Any, raw: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the text; the type is the contract
        func(raw)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        pytest.param(f"{KEY} ph=7.0 {TS}", KEY, id="plain"),
        pytest.param(r"m,t=a\ b f=1.0 1", r"m,t=a\ b", id="escaped-space"),
        pytest.param(r"m\ x f=1.0 1", r"m\ x", id="escaped-space-in-measurement"),
        pytest.param(r'm f="a b" 1', "m", id="space-in-string-field"),
    ],
)
def test_series_key(line: str, key: str) -> None:
    assert series_key(line) == key


def test_series_key_refuses_a_line_without_fields() -> None:
    with pytest.raises(ValueError, match="not a line protocol line"):
        series_key("measurement_only")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_float_is_refused_naming_the_point(value: float) -> None:
    # The contract refuses these already; model_construct gets past it to check the encoder's own guard.
    sample = Sample.model_construct(ts=TS, values={"ph": value}, quality={})
    msg = message({"x": 1.0}).model_copy(update={"samples": [sample]})
    with pytest.raises(ValueError, match="'ph'"):
        LineEncoder().encode(msg)


def test_int_too_large_for_a_float_is_refused_naming_the_point() -> None:
    with pytest.raises(ValueError, match=r"'big'.*does not fit a float"):
        LineEncoder().encode(message({"big": 10**400}))


def test_measurement_that_line_protocol_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="backslash"):
        LineEncoder().encode(message({"x": 1.0}, measurement="m\\"))


# ---------------------------------------------------------------------------------------------------------------
# Round trip: arbitrary valid messages encode without error and read back, the way 1.x reads them, as the schema
# says. What 1.x stores differs from the message in documented places only: newlines become the two characters
# "\n", trailing backslashes leave tag keys and values, empty tags are left out, ours win.

SPECIALS = st.sampled_from([",", "=", " ", "\\", '"', "\n", "\t", "\r", "#", "é", "东", "✓"])
BROAD = st.text(st.one_of(SPECIALS, st.characters(codec="utf-8")), max_size=12)
IDS = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,15}", fullmatch=True)
POINTS = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
MEASUREMENTS = BROAD.filter(lambda m: bool(m) and m[0] not in "#\t\0" and not m.endswith("\\"))
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    BROAD,
)


@st.composite
def samples(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(POINTS, min_size=1, max_size=6, unique=True))
    values: dict[str, Any] = {}
    quality: dict[str, Any] = {}
    for name in names:
        q = draw(st.sampled_from(["good", "good", "uncertain", "bad"]))
        values[name] = None if q == "bad" else draw(VALUES)
        if q != "good":
            quality[name] = {"q": q, "reason": draw(BROAD.filter(bool))}
    return {"ts": draw(st.integers(min_value=0, max_value=2**45)), "values": values, "quality": quality}


@st.composite
def messages(draw: st.DrawFn) -> Telemetry:
    return Telemetry(
        site=draw(IDS),
        device=draw(IDS),
        profile=draw(BROAD),
        measurement=draw(MEASUREMENTS),
        seq=0,
        tags=draw(st.dictionaries(BROAD, BROAD, max_size=5)),
        samples=draw(st.lists(samples(), min_size=1, max_size=3)),
    )


def stored(text: str) -> str:
    """What 1.x keeps of a text: it cannot carry a newline, which is written (and kept) as the two chars \\n."""
    return text.replace("\n", "\\n")


def expected_tags(msg: Telemetry) -> dict[str, str]:
    tags: dict[str, str] = {}
    for raw_key, raw_value in msg.tags.items():
        key, value = stored(raw_key.rstrip("\\")), stored(raw_value.rstrip("\\"))
        if key and value and key not in ("site", "device", "profile"):
            tags[key] = value
    for key, value in (("site", msg.site), ("device", msg.device), ("profile", msg.profile)):
        if stored(value.rstrip("\\")):
            tags[key] = stored(value.rstrip("\\"))
    return tags


def expected_fields(sample: Sample) -> dict[str, bool | float | str]:
    fields: dict[str, bool | float | str] = {}
    for name, value in sample.values.items():
        if isinstance(value, bool | str):
            fields[name] = stored(value) if isinstance(value, str) else value
        elif value is not None:
            fields[name] = float(value)
        pq = sample.quality.get(name)
        if pq is not None:
            fields[f"{name}.q"] = 2 if pq.q is Quality.BAD else 1
            fields[f"{name}.reason"] = stored(pq.reason)
    return fields


@settings(max_examples=300, deadline=None)
@given(messages())
def test_round_trip_through_a_1x_parser(msg: Telemetry) -> None:
    lines = LineEncoder().encode(msg)
    assert len(lines) == len(msg.samples)
    for line, sample in zip(lines, msg.samples, strict=True):
        parsed = parse_line(line)
        assert parsed.measurement == stored(msg.measurement)
        assert parsed.tags == expected_tags(msg)
        assert parsed.escaped_tag_keys == sorted(parsed.escaped_tag_keys)
        assert parsed.fields == expected_fields(sample)
        assert all(type(v) is float for k, v in parsed.fields.items() if type(expected_fields(sample)[k]) is float)
        assert parsed.ts == sample.ts
        assert series_key(line) == parsed.key


# ---------------------------------------------------------------------------------------------------------------
# The series cache.


def test_same_series_reuses_the_cached_prefix() -> None:
    encoder = LineEncoder()
    first = encoder.encode(message({"ph": 7.0}, tags={"a": "1", "b": "2"}))
    second = encoder.encode(message({"ph": 7.5}, tags={"b": "2", "a": "1"}))  # same tags, other order
    assert encoder.cached_series == 1
    assert series_key(first[0]) == series_key(second[0])
    encoder.encode(message({"ph": 7.5}, device="d2"))
    assert encoder.cached_series == 2


def test_cache_stays_bounded_and_lines_stay_right_after_eviction() -> None:
    encoder = LineEncoder(max_series=3)
    for round_ in range(2):
        for n in range(10):
            lines = encoder.encode(message({"ph": float(n)}, device=f"d{n}"))
            assert lines == [f"water_quality,device=d{n},profile=wq,site=s1 ph={float(n)} {TS}"], round_
            assert encoder.cached_series <= 3
    assert encoder.cached_series == 3


def test_max_series_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_series"):
        LineEncoder(max_series=0)
