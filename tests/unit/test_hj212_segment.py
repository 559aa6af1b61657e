"""The HJ 212 data segment and CP area: fields, Flag bits, readings with their data flags, HJ/T 212-2005 packets,
answers, password masking, and every segment-level reject (table), with hypothesis for any text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.hj212 import Reading, Reason, Refused, build_segment, data_answer, parse_segment
from edge_agent.hj212.segment import _parse_cp_checked, mask_password, parse_cp

HEAD = "QN=20261125100000123;ST=32;CN=2011;PW=123456;MN=MN0001;Flag=4;"


def _seg(text: str) -> bytes:
    return text.encode()


def test_worked_example_fields() -> None:
    p = parse_segment(
        b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
    )
    assert (p.qn, p.st, p.cn, p.pw, p.mn, p.flag) == (
        "20160801085857223",
        "32",
        "1062",
        "100000",
        "010000A8900016F000169DC0",
        5,
    )
    assert p.others == (("RtdInterval", "30"),)
    assert p.readings == ()
    assert (p.version, p.answer_requested, p.split) == (1, True, False)


def test_standards_cp_example() -> None:
    p = parse_segment(
        _seg(HEAD + "CP=&&DataTime=20160801084000;w01018-Rtd=50.1,w01018-Flag=N;w21003-Rtd=3.2,w21003-Flag=N&&")
    )
    assert p.data_time == "20160801084000"
    assert p.readings == (Reading("w01018", "Rtd", "50.1", "N"), Reading("w21003", "Rtd", "3.2", "N"))


@pytest.mark.parametrize(
    ("flag", "version", "answer", "split"),
    [
        (4, 1, False, False),
        (5, 1, True, False),
        (6, 1, False, True),
        (7, 1, True, True),
        (8, 2, False, False),
        (9, 2, True, False),
        (0, 0, False, False),
        (1, 0, True, False),
    ],
    ids=str,
)
def test_flag_bits(flag: int, version: int, answer: bool, split: bool) -> None:
    extra = "PNUM=2;PNO=1;" if split else ""
    p = parse_segment(_seg(HEAD.replace("Flag=4;", f"Flag={flag};{extra}") + "CP=&&&&"))
    assert (p.version, p.answer_requested, p.split) == (version, answer, split)


def test_period_data_with_all_statistics() -> None:
    p = parse_segment(
        _seg(
            HEAD.replace("CN=2011", "CN=2061") + "CP=&&DataTime=20261125090000;"
            "w01018-Min=30.1,w01018-Avg=35.2,w01018-Max=40.0,w01018-Cou=12.5,w01018-Flag=N&&"
        )
    )
    assert [(r.suffix, r.value) for r in p.readings] == [
        ("Min", "30.1"),
        ("Avg", "35.2"),
        ("Max", "40.0"),
        ("Cou", "12.5"),
    ]
    assert {r.flag for r in p.readings} == {"N"}


def test_hjt_212_2005_packet_without_qn_and_flag() -> None:
    p = parse_segment(b"ST=32;CN=2011;PW=123456;MN=88888880000001;CP=&&DataTime=20040516020111;011-Rtd=82.5&&")
    assert (p.qn, p.flag, p.version, p.answer_requested) == (None, None, 0, False)
    assert p.readings == (Reading("011", "Rtd", "82.5", None),)


def test_fields_that_are_not_values_are_kept_apart() -> None:
    p = parse_segment(
        _seg(
            HEAD + "CP=&&DataTime=20261125100000;w01018-Rtd=1,w01018-EFlag=A01,"
            "w01018-SampleTime=20261125095500;w21003-Flag=D&&"
        )
    )
    assert p.readings == (Reading("w01018", "Rtd", "1", None),)
    assert p.others == (("w01018-EFlag", "A01"), ("w01018-SampleTime", "20261125095500"), ("w21003-Flag", "D"))


@pytest.mark.parametrize(
    ("segment", "reason", "detail"),
    [
        pytest.param(b"\xff\xfe", Reason.BAD_SEGMENT, "not UTF-8", id="not-utf8"),
        pytest.param(_seg(HEAD), Reason.BAD_SEGMENT, "no 'CP=&&'", id="no-cp"),
        pytest.param(_seg(HEAD + "CP=&&DataTime=20261125100000"), Reason.BAD_SEGMENT, "does not end", id="cp-open"),
        pytest.param(_seg(HEAD[:-1] + "CP=&&&&"), Reason.BAD_SEGMENT, "does not end with ';'", id="no-semicolon"),
        pytest.param(_seg(HEAD.replace("MN=MN0001;", "") + "CP=&&&&"), Reason.BAD_SEGMENT, "MN is missing", id="no-mn"),
        pytest.param(_seg(HEAD + "ST=31;CP=&&&&"), Reason.BAD_SEGMENT, "appears twice", id="field-twice"),
        pytest.param(_seg(HEAD + "XX=1;CP=&&&&"), Reason.BAD_SEGMENT, "unknown field", id="unknown-field"),
        pytest.param(_seg(HEAD + "ST;CP=&&&&"), Reason.BAD_SEGMENT, "has no '='", id="field-without-eq"),
        pytest.param(
            _seg(HEAD.replace("QN=20261125100000123", "QN=2026") + "CP=&&&&"), Reason.BAD_SEGMENT, "QN", id="qn-short"
        ),
        pytest.param(
            _seg(HEAD.replace("QN=20261125100000123", "QN=20261325100000123") + "CP=&&&&"),
            Reason.BAD_SEGMENT,
            "not a valid time",
            id="qn-month-13",
        ),
        pytest.param(_seg(HEAD.replace("ST=32", "ST=3X") + "CP=&&&&"), Reason.BAD_SEGMENT, "ST", id="st-not-digits"),
        pytest.param(_seg(HEAD.replace("CN=2011", "CN=20111") + "CP=&&&&"), Reason.BAD_SEGMENT, "CN", id="cn-long"),
        pytest.param(
            _seg(HEAD.replace("MN=MN0001", "MN=" + "A" * 25) + "CP=&&&&"), Reason.BAD_SEGMENT, "MN", id="mn-too-long"
        ),
        pytest.param(_seg(HEAD.replace("Flag=4", "Flag=x") + "CP=&&&&"), Reason.BAD_FLAG, "0-255", id="flag-text"),
        pytest.param(_seg(HEAD.replace("Flag=4", "Flag=256") + "CP=&&&&"), Reason.BAD_FLAG, "0-255", id="flag-256"),
        pytest.param(
            _seg(HEAD.replace("Flag=4", "Flag=12") + "CP=&&&&"), Reason.BAD_FLAG, "version 3", id="flag-version-3"
        ),
        pytest.param(
            _seg(HEAD.replace("Flag=4", "Flag=6") + "CP=&&&&"), Reason.BAD_FLAG, "PNUM and PNO", id="split-without-pnum"
        ),
        pytest.param(_seg(HEAD + "PNUM=2;PNO=1;CP=&&&&"), Reason.BAD_FLAG, "D bit is not set", id="pnum-not-split"),
        pytest.param(
            _seg(HEAD.replace("Flag=4", "Flag=6;PNUM=2;PNO=3") + "CP=&&&&"),
            Reason.BAD_SEGMENT,
            "beyond PNUM",
            id="pno-beyond-pnum",
        ),
        pytest.param(
            _seg(HEAD.replace("Flag=4", "Flag=6;PNUM=0;PNO=0") + "CP=&&&&"),
            Reason.BAD_SEGMENT,
            "from 1",
            id="pnum-zero",
        ),
        pytest.param(_seg(HEAD + "CP=&&w01018-Rtd=abc&&"), Reason.BAD_CP, "not a number", id="value-not-number"),
        pytest.param(_seg(HEAD + "CP=&&w01018-Rtd=1e5&&"), Reason.BAD_CP, "not a number", id="value-exponent"),
        pytest.param(_seg(HEAD + "CP=&&w01018-Rtd=&&"), Reason.BAD_CP, "not a number", id="value-empty"),
        pytest.param(_seg(HEAD + "CP=&&w01018-Rtd=1;w01018-Rtd=2&&"), Reason.BAD_CP, "twice", id="value-twice"),
        pytest.param(_seg(HEAD + "CP=&&w01018-Rtd&&"), Reason.BAD_CP, "not key=value", id="no-eq-in-cp"),
        pytest.param(_seg(HEAD + "CP=&&;&&"), Reason.BAD_CP, "not key=value", id="empty-group"),
        pytest.param(_seg(HEAD + "CP=&&DataTime=2026112510&&"), Reason.BAD_CP, "YYYYMMDDhhmmss", id="datatime-short"),
        pytest.param(
            _seg(HEAD + "CP=&&DataTime=20260230100000&&"), Reason.BAD_CP, "not a valid time", id="datatime-feb-30"
        ),
        pytest.param(
            _seg(HEAD + "CP=&&w01018-Rtd=1,w01018-Flag=N1&&"), Reason.BAD_CP, "not a data flag", id="flag-not-letters"
        ),
        pytest.param(_seg(HEAD + "CP=&&a=b=c&&"), Reason.BAD_CP, "reserved character", id="value-with-eq"),
        pytest.param(_seg(HEAD + "CP=&&x&&y=1&&"), Reason.BAD_CP, "'&&' inside", id="ampersands-inside"),
        pytest.param(_seg(HEAD + "CP=&&w0.1-Rtd=1&&"), Reason.BAD_CP, "key", id="bad-key"),
    ],
)
def test_segment_rejects(segment: bytes, reason: Reason, detail: str) -> None:
    with pytest.raises(Refused) as err:
        parse_segment(segment)
    assert err.value.reason is reason
    assert detail in err.value.detail


def test_password_is_never_in_a_refusal() -> None:
    with pytest.raises(Refused) as err:
        parse_segment(_seg(HEAD.replace("PW=123456", "PW=12 3456") + "CP=&&&&"))
    assert "123456" not in str(err.value)
    assert "3456" not in str(err.value)


def test_data_answer_golden() -> None:
    p = parse_segment(_seg(HEAD.replace("Flag=4", "Flag=5") + "CP=&&DataTime=20261125100000;w01018-Rtd=35.2&&"))
    assert data_answer(p, "123456") == b"QN=20261125100000123;ST=91;CN=9014;PW=123456;MN=MN0001;Flag=4;CP=&&&&"
    p2025 = parse_segment(_seg(HEAD.replace("Flag=4", "Flag=9") + "CP=&&&&"))
    assert b";Flag=8;" in data_answer(p2025, "123456")  # the request's version, no answer asked


def test_build_segment_round_trips_through_the_parser() -> None:
    seg = build_segment(
        qn="20261125100000123",
        st="31",
        cn="2051",
        pw="abc123",
        mn="M1",
        flag=7,
        pnum=3,
        pno=2,
        cp="DataTime=20261125100000;a21026-Avg=12.5,a21026-Flag=C",
    )
    p = parse_segment(seg)
    assert (p.pnum, p.pno, p.split, p.answer_requested) == (3, 2, True, True)
    assert p.readings == (Reading("a21026", "Avg", "12.5", "C"),)


def test_mask_password() -> None:
    assert mask_password(b"##0010QN=1;PW=123456;MN=x") == b"##0010QN=1;PW=******;MN=x"


_text = st.text(alphabet=st.sampled_from(list("QNSTCPWMFlag=;,&-0123456789.wRtdAvgDx\u6392")), max_size=200)


@given(st.one_of(_text.map(str.encode), st.binary(max_size=200), _text.map(lambda t: (HEAD + "CP=&&" + t).encode())))
def test_any_segment_is_parsed_or_refused_never_crashes(segment: bytes) -> None:
    try:
        packet = parse_segment(segment)
    except Refused as exc:
        reason: Reason | None = exc.reason
    else:
        reason = None
        assert packet.cn.isdigit()
    assert reason is None or reason in set(Reason)


_codes = st.from_regex(r"[a-w][0-9]{5}", fullmatch=True)
_values = st.decimals(min_value=-99999, max_value=99999, places=3, allow_nan=False, allow_infinity=False)


@given(
    st.dictionaries(_codes, st.tuples(_values, st.sampled_from("NFMSDCTB")), max_size=12),
    st.sampled_from(["2011", "2051", "2061", "2031"]),
    st.integers(min_value=0, max_value=11),
)
def test_segment_round_trip(values: dict[str, tuple[object, str]], cn: str, flag: int) -> None:
    suffix = "Rtd" if cn == "2011" else "Avg"
    cp = ";".join(["DataTime=20261125100000", *(f"{c}-{suffix}={v},{c}-Flag={f}" for c, (v, f) in values.items())])
    split = bool(flag & 2)
    seg = build_segment(
        qn="20261125100000123",
        st="32",
        cn=cn,
        pw="123456",
        mn="MN0001",
        flag=flag,
        cp=cp,
        pnum=2 if split else None,
        pno=1 if split else None,
    )
    p = parse_segment(seg)
    assert (p.cn, p.flag, p.data_time) == (cn, flag, "20261125100000")
    assert p.readings == tuple(Reading(c, suffix, str(v), f) for c, (v, f) in values.items())


def test_every_reason_is_documented() -> None:
    from edge_agent.hj212 import reasons

    assert reasons.__doc__ is not None
    assert [r for r in Reason if f"``{r}``" not in reasons.__doc__] == []


_CP_ATOMS = st.sampled_from(
    [
        "DataTime=20261125100000",
        "DataTime=20261345100000",
        "a21026-Rtd=18.2",
        "a21026-Rtd=1.",
        "a21026-Rtd=x",
        "a21026-Flag=N",
        "a21026-Flag=NNN",
        "a21002-Avg=.5",
        "a21002-Rtd=-3",
        "w01018-Cou=12",
        "RtdInterval=30",
        "a21026-Rtd=18.2=3",
        "k=v&",
        "x-Flag=D",
        "=1",
        "a21026-Rtd",
        "a34013-ZsRtd=4",
        "bad key=1",
        "a21026-Rtd=\r",
    ]
)


@given(st.lists(st.tuples(_CP_ATOMS, st.sampled_from([";", ","])), max_size=8), st.integers(0, 2))
def test_cp_fast_path_accepts_and_refuses_as_the_checked_one(items: list[tuple[str, str]], repeat: int) -> None:
    # parse_cp's fast path (shapes cached by key sequence) must give what the field-by-field parser gives
    body = "".join(atom + sep for atom, sep in items)[:-1] if items else ""
    for _ in range(repeat + 1):  # the second time the shape is cached
        try:
            want: object = _parse_cp_checked(body)
        except Refused as exc:
            want = (exc.reason, str(exc))
        try:
            got: object = parse_cp(body)
        except Refused as exc:
            got = (exc.reason, str(exc))
        assert got == want
