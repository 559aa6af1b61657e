"""telemetry.codec.encode_telemetry (the edge's hot path) gives the bytes encode(Telemetry(...)) gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry import ContractError, PointQuality, Quality, Sample, Telemetry, decode_telemetry, encode
from telemetry.codec import encode_telemetry

_names = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z")
_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(max_size=20),
)
_reasons = st.text(min_size=1, max_size=30)


@st.composite
def _samples(draw: st.DrawFn) -> Sample:
    """A valid sample: each point good, uncertain (a value and a reason) or bad (null and a reason)."""
    values: dict[str, Any] = {}
    quality: dict[str, PointQuality] = {}
    for name in draw(st.lists(_names, min_size=1, max_size=8, unique=True)):
        kind = draw(st.sampled_from(["good", "good", "uncertain", "bad"]))
        values[name] = None if kind == "bad" else draw(_values)
        if kind != "good":
            q = Quality.BAD if kind == "bad" else Quality.UNCERTAIN
            quality[name] = PointQuality(q=q, reason=draw(_reasons))
    return Sample.model_construct(ts=draw(st.integers(min_value=0, max_value=2**53)), values=values, quality=quality)


_text = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    sample=_samples(),
    seq=st.integers(min_value=0, max_value=2**40),
    tags=_text,
    units=st.dictionaries(_names, st.text(max_size=6), max_size=3),
)
def test_the_same_bytes_as_the_models(sample: Sample, seq: int, tags: dict[str, str], units: dict[str, str]) -> None:
    fields: dict[str, Any] = {
        "site": "bs-01",
        "device": "wq-1",
        "profile": "water_quality_station",
        "measurement": "water_quality",
        "seq": seq,
        "run": "r1a2",
        "tags": tags,
        "units": units,
    }
    fast = encode_telemetry(**fields, ts=sample.ts, values=sample.values, quality=sample.quality)
    assert fast == encode(Telemetry.model_construct(v=1, **fields, samples=[sample]))
    assert fast == encode(Telemetry.model_validate({**fields, "samples": [sample.model_dump()]}))
    assert decode_telemetry(fast).samples[0] == Sample.model_validate(sample.model_dump())


def test_what_json_cannot_carry_is_a_contract_error() -> None:
    sample = Sample.model_construct(ts=1, values={"x": 2**70}, quality={})
    with pytest.raises(ContractError, match="Telemetry cannot be encoded"):
        encode_telemetry("s", "d", "p", "m", 1, "", {}, {}, sample.ts, sample.values, sample.quality)
