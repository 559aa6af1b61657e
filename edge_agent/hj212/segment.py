"""The HJ 212 data segment: ``QN=...;ST=..;CN=....;PW=...;MN=...;Flag=.;[PNUM=.;PNO=.;]CP=&&...&&``. Pure.

HJ 212-2017 §6.3.2-§6.3.3 (data segment structure, table 4 and 5): fields ``key=value`` separated by ``;``, the
command parameters last in ``CP=&&...&&``. Inside CP (§6.3.3, table 6, check): ``;`` separates groups, ``,`` the
fields of a group, ``=`` key and value; a pollutant field is ``<code>-<suffix>`` (``w01018-Rtd``); ``DataTime`` is
``YYYYMMDDhhmmss``. The parser checks content as well as syntax, because the CRC is weak (see crc.py).

HJ/T 212-2005 packets (version 0) may lack QN and Flag: both are optional here, everything else is required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from edge_agent.hj212.reasons import Reason, Refused
from edge_agent.hj212.sm4 import looks_encrypted

# HJ 212-2017 §6.3.3 Flag: bit 0 A (answer requested), bit 1 D (split into PNUM packets), bits 2-7 the version.
FLAG_A = 0x01
FLAG_D = 0x02
VERSIONS = {0: "HJ/T 212-2005", 1: "HJ 212-2017", 2: "HJ 212-2025 (reported)"}

# CP value suffixes whose value is a number (HJ 212-2017 §6.3.3, table 6, check).
VALUE_SUFFIXES = frozenset({"Rtd", "Min", "Avg", "Max", "ZsRtd", "ZsMin", "ZsAvg", "ZsMax", "Cou"})

_QN = re.compile(r"^[0-9]{17}$")  # YYYYMMDDhhmmsszzz (§6.3.3, table 5)
_ST = re.compile(r"^[0-9]{2}$")
_CN = re.compile(r"^[0-9]{4}$")
_PW = re.compile(r"^[^;,=&\s]{1,32}$")  # 6 characters in the 2017 table; any length is compared with the config
_MN = re.compile(r"^[0-9A-Za-z_-]{1,24}$")  # up to 24 characters (2025: 24 of 0-9A-F, reported); opaque
_INT = re.compile(r"^[0-9]{1,4}$")
_KEY = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_CODE_KEY = re.compile(r"^([A-Za-z0-9]{1,16})-([A-Za-z]{1,16})$")
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_FLAG_TEXT = re.compile(r"^[A-Za-z]{1,2}$")
_FORBIDDEN_IN_VALUE = re.compile(r"[;,=&\r\n]")
_HEADER_KEYS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")


class Reading(NamedTuple):
    """One pollutant value as the packet carries it: code, suffix, the value's text, its data flag (or None).
    A named tuple: nine of them a packet, made about four times faster than a frozen dataclass."""

    code: str
    suffix: str
    value: str
    flag: str | None


class Packet(NamedTuple):
    """A parsed data segment. ``others`` keeps CP fields that are neither DataTime, a value nor a data flag.
    ``cipher``: the CP content as sent when it is SM4 ciphertext (HJ 212-2025); the CP fields are then empty until
    ``decrypted`` gives them. A named tuple (one a packet: made several times faster than a frozen dataclass)."""

    qn: str | None
    st: str
    cn: str
    pw: str
    mn: str
    flag: int | None
    pnum: int | None
    pno: int | None
    data_time: str | None
    readings: tuple[Reading, ...]
    others: tuple[tuple[str, str], ...] = ()
    cipher: str | None = None

    @property
    def version(self) -> int:
        return 0 if self.flag is None else self.flag >> 2

    @property
    def answer_requested(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_A)

    @property
    def split(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_D)


def parse_segment(segment: bytes) -> Packet:
    """The packet in ``segment``; ``Refused`` with bad_segment, bad_flag or bad_cp naming what is wrong."""
    try:
        text = segment.decode("utf-8")  # 2017: ASCII; 2025 reportedly allows UTF-8 text in CP
    except UnicodeDecodeError as exc:
        raise Refused(Reason.BAD_SEGMENT, f"not UTF-8 text at byte {exc.start}") from exc
    head, sep, cp = text.partition("CP=&&")
    if not sep:
        raise Refused(Reason.BAD_SEGMENT, "no 'CP=&&' command parameter area")
    if head and not head.endswith(";"):
        raise Refused(Reason.BAD_SEGMENT, "the field before CP does not end with ';'")
    if not cp.endswith("&&"):
        raise Refused(Reason.BAD_SEGMENT, "the CP area does not end with '&&'")
    fields = _header_fields(head)
    flag = _flag(fields)
    pnum, pno = _split_fields(fields, flag)
    body = cp[:-2]
    cipher = body if looks_encrypted(body) else None
    data_time, readings, others = parse_cp(body) if cipher is None else (None, (), ())
    return Packet(
        qn=fields.get("QN"),
        st=fields["ST"],
        cn=fields["CN"],
        pw=fields["PW"],
        mn=fields["MN"],
        flag=flag,
        pnum=pnum,
        pno=pno,
        data_time=data_time,
        readings=readings,
        others=others,
        cipher=cipher,
    )


def decrypted(packet: Packet, cp: str) -> Packet:
    """``packet`` with the CP content ``cp`` (the plain text of its ``cipher``) parsed in; Refused(bad_cp) as for a
    plain packet."""
    data_time, readings, others = parse_cp(cp)
    return packet._replace(data_time=data_time, readings=readings, others=others, cipher=None)


# the usual header (HJ 212-2017 table 4's order, no split fields), checked in one C call; anything else goes field
# by field (``_header_fields_checked``), which accepts the same headers and names what is wrong in the others
_USUAL_HEADER = re.compile(
    r"QN=(?P<QN>[0-9]{17});ST=(?P<ST>[0-9]{2});CN=(?P<CN>[0-9]{4});PW=(?P<PW>[^;,=&\s]{1,32});"
    r"MN=(?P<MN>[0-9A-Za-z_-]{1,24});Flag=(?P<Flag>[0-9]{1,4});"
)


def _header_fields(head: str) -> dict[str, str]:
    m = _USUAL_HEADER.fullmatch(head)
    if m is None:
        return _header_fields_checked(head)
    fields = m.groupdict()
    _timestamp(fields["QN"][:14], "QN", Reason.BAD_SEGMENT)
    return fields


def _header_fields_checked(head: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in head.split(";")[:-1] if head else []:
        key, eq, value = part.partition("=")
        if not eq:
            raise Refused(Reason.BAD_SEGMENT, f"field {part[:40]!r} has no '='")
        if key in fields:
            raise Refused(Reason.BAD_SEGMENT, f"field {key!r} appears twice")
        if key not in _HEADER_KEYS:
            raise Refused(Reason.BAD_SEGMENT, f"unknown field {key[:40]!r} before CP")
        fields[key] = value
    for key in ("ST", "CN", "PW", "MN"):
        if key not in fields:
            raise Refused(Reason.BAD_SEGMENT, f"field {key} is missing")
    checks = {"QN": _QN, "ST": _ST, "CN": _CN, "PW": _PW, "MN": _MN}
    for key, pattern in checks.items():
        if key in fields and not pattern.fullmatch(fields[key]):
            shown = "(not shown)" if key == "PW" else repr(fields[key][:40])
            raise Refused(Reason.BAD_SEGMENT, f"field {key} value {shown} is not valid")
    if "QN" in fields:
        _timestamp(fields["QN"][:14], "QN", Reason.BAD_SEGMENT)
    return fields


def _flag(fields: dict[str, str]) -> int | None:
    if "Flag" not in fields:
        return None
    text = fields["Flag"]
    if not _INT.fullmatch(text) or int(text) > 255:
        raise Refused(Reason.BAD_FLAG, f"Flag {text[:10]!r} is not a number 0-255")
    flag = int(text)
    if flag >> 2 not in VERSIONS:
        raise Refused(Reason.BAD_FLAG, f"Flag {flag}: version {flag >> 2} is none of 0 (2005), 1 (2017), 2 (2025)")
    return flag


def _split_fields(fields: dict[str, str], flag: int | None) -> tuple[int | None, int | None]:
    split = flag is not None and bool(flag & FLAG_D)
    present = [k for k in ("PNUM", "PNO") if k in fields]
    if not split:
        if present:
            raise Refused(Reason.BAD_FLAG, f"{' and '.join(present)} given but the Flag's D bit is not set")
        return None, None
    if len(present) != 2:
        raise Refused(Reason.BAD_FLAG, "the Flag's D bit says split, but PNUM and PNO are not both given")
    values = []
    for key in ("PNUM", "PNO"):
        text = fields[key]
        if not _INT.fullmatch(text) or int(text) < 1:
            raise Refused(Reason.BAD_SEGMENT, f"{key} {text[:10]!r} is not a number from 1")
        values.append(int(text))
    pnum, pno = values
    if pno > pnum:
        raise Refused(Reason.BAD_SEGMENT, f"PNO {pno} is beyond PNUM {pnum}")
    return pnum, pno


CpFields = tuple[str | None, tuple[Reading, ...], tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a CP area's keys say, whatever their values: a station sends the same keys packet after packet, so
    this is worked out once per key sequence (``parse_cp``'s fast path); the values are checked every time."""

    data_time: int | None  # index of DataTime
    flags: tuple[int, ...]  # indices of every ``-Flag`` field (checked as data flags)
    readings: tuple[tuple[int, str, str, int | None], ...]  # value index, code, suffix, index of its flag
    others: tuple[tuple[int, str], ...]  # index, key

    @classmethod
    def of(cls, keys: tuple[str, ...]) -> _Shape:
        """The shape of keys that ``_parse_cp_checked`` accepted."""
        index = {k: i for i, k in enumerate(keys)}
        flags = tuple(i for i, k in enumerate(keys) if k.endswith("-Flag"))
        valued = {k.partition("-")[0] for k in keys if k.partition("-")[2] in VALUE_SUFFIXES}
        readings: list[tuple[int, str, str, int | None]] = []
        others: list[tuple[int, str]] = []
        for i, key in enumerate(keys):
            m = _CODE_KEY.fullmatch(key)
            if m is None:
                if key != "DataTime":
                    others.append((i, key))
                continue
            code, suffix = m.groups()
            if suffix in VALUE_SUFFIXES:
                readings.append((i, code, suffix, index.get(f"{code}-Flag")))
            elif suffix != "Flag" or code not in valued:
                others.append((i, key))
        return cls(index.get("DataTime"), flags, tuple(readings), tuple(others))


_SHAPES: dict[tuple[str, ...], _Shape] = {}
_SHAPES_MAX = 4096  # bounded: key sequences of the stations' packet kinds
_NUMBERS = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:,[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))*")
_FLAG_TEXTS = re.compile(r"[A-Za-z]{1,2}(?:,[A-Za-z]{1,2})*")
_VALUE_FORBIDDEN = re.compile(r"[=&\r\n]")


def parse_cp(body: str) -> CpFields:
    """DataTime, the readings and the other fields of a CP area's content (between ``&&`` and ``&&``).

    Fast path: the keys' shape is looked up (``_Shape``), and the values are checked in a few C calls (numbers,
    flags, reserved characters each as one joined string); anything unusual goes the checked way, which names what
    is wrong. Both accept and refuse the same bodies (tests/unit/test_hj212_segment.py compares them)."""
    if not body or "&" in body:
        return _parse_cp_checked(body)
    items = body.replace(";", ",").split(",")
    pairs = [item.partition("=") for item in items]
    keys = tuple([k for k, _, _ in pairs])
    values = [v for _, _, v in pairs]
    shape = _SHAPES.get(keys)
    if shape is None or body.count("=") != len(items) or _VALUE_FORBIDDEN.search("".join(values)):
        fields = _parse_cp_checked(body)  # refuses what is wrong
        if shape is None and len(_SHAPES) < _SHAPES_MAX:
            _SHAPES[keys] = _Shape.of(keys)
        return fields
    # every item has exactly one '=' (as many as items, none in a value): the keys are the accepted shape's
    data_time = None if shape.data_time is None else values[shape.data_time]
    if data_time is not None:
        _timestamp(data_time, "DataTime", Reason.BAD_CP)
    if shape.flags and not _FLAG_TEXTS.fullmatch(",".join([values[i] for i in shape.flags])):
        return _parse_cp_checked(body)
    readings = shape.readings
    if readings and not _NUMBERS.fullmatch(",".join([values[r[0]] for r in readings])):
        return _parse_cp_checked(body)
    return (
        data_time,
        tuple([Reading(code, suffix, values[i], None if f is None else values[f]) for i, code, suffix, f in readings]),
        tuple([(key, values[i]) for i, key in shape.others]),
    )


def _parse_cp_checked(body: str) -> CpFields:
    """``parse_cp`` field by field, naming the first thing wrong."""
    if "&&" in body:
        raise Refused(Reason.BAD_CP, "'&&' inside the CP area")
    seen: dict[str, str] = {}
    order: list[str] = []
    for group in body.split(";") if body else []:
        for item in group.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise Refused(Reason.BAD_CP, f"CP field {item[:40]!r} is not key=value")
            if _FORBIDDEN_IN_VALUE.search(value):
                raise Refused(Reason.BAD_CP, f"CP field {key[:40]!r}: value has a reserved character")
            if key in seen:
                raise Refused(Reason.BAD_CP, f"CP field {key[:40]!r} appears twice")
            seen[key] = value
            order.append(key)
    data_time = seen.get("DataTime")
    if data_time is not None:
        _timestamp(data_time, "DataTime", Reason.BAD_CP)
    flags = {k[:-5]: v for k, v in seen.items() if k.endswith("-Flag")}
    for key, value in flags.items():
        if not _FLAG_TEXT.fullmatch(value):
            raise Refused(Reason.BAD_CP, f"CP field {key}-Flag: {value[:10]!r} is not a data flag")
    readings: list[Reading] = []
    others: list[tuple[str, str]] = []
    valued = {k.partition("-")[0] for k in order if k.partition("-")[2] in VALUE_SUFFIXES}
    for key in order:
        value = seen[key]
        m = _CODE_KEY.fullmatch(key)
        if m is None:
            if key != "DataTime":
                if not _KEY.fullmatch(key):
                    raise Refused(Reason.BAD_CP, f"CP key {key[:40]!r} is not valid")
                others.append((key, value))
            continue
        code, suffix = m.groups()
        if suffix in VALUE_SUFFIXES:
            if not _NUMBER.fullmatch(value):
                raise Refused(Reason.BAD_CP, f"CP field {key}: {value[:20]!r} is not a number")
            readings.append(Reading(code, suffix, value, flags.get(code)))
        elif suffix != "Flag" or code not in valued:
            others.append((key, value))  # EFlag, SampleTime, RS, RT, a flag without a value, 2025 additions
    return data_time, tuple(readings), tuple(others)


def parse_time(text: str) -> datetime:
    """``YYYYMMDDhhmmss`` as a naive datetime; ValueError if it is not one (strptime is 10x slower)."""
    known = _TIMES.get(text)
    if known is not None:  # every station of a deployment sends the same DataTime in the same half minute
        return known
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        raise ValueError(f"{text[:20]!r} is not YYYYMMDDhhmmss")
    value = datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14]))
    if len(_TIMES) >= _TIMES_MAX:
        _TIMES.clear()  # bounded; refilled by the times in use
    _TIMES[text] = value
    return value


_TIMES: dict[str, datetime] = {}  # valid times read lately
_TIMES_MAX = 4096


def _timestamp(text: str, what: str, reason: Reason) -> datetime:
    known = _TIMES.get(text)
    if known is not None:
        return known
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        raise Refused(reason, f"{what} {text[:20]!r} is not YYYYMMDDhhmmss")
    try:
        return parse_time(text)
    except ValueError as exc:
        raise Refused(reason, f"{what} {text!r} is not a valid time") from exc


# -- building segments (answers, tests, benchmarks) ------------------------------------------------------------
def build_segment(
    *,
    qn: str | None,
    st: str,
    cn: str,
    pw: str,
    mn: str,
    flag: int | None,
    cp: str = "",
    pnum: int | None = None,
    pno: int | None = None,
) -> bytes:
    """A data segment in the field order of HJ 212-2017 §6.3.2 (table 4)."""
    parts = [] if qn is None else [f"QN={qn}"]
    parts += [f"ST={st}", f"CN={cn}", f"PW={pw}", f"MN={mn}"]
    if flag is not None:
        parts.append(f"Flag={flag}")
    if pnum is not None and pno is not None:
        parts += [f"PNUM={pnum}", f"PNO={pno}"]
    return (";".join(parts) + f";CP=&&{cp}&&").encode("utf-8")


def data_answer(packet: Packet, password: str) -> bytes:
    """The data answer (CN 9014) to an upload that asked for one (Flag A bit): the upload's QN, ST 91 (system
    interaction), the station's PW and MN, the upload's version with no answer requested, empty CP.
    HJ 212-2017 §6.6 and Appendix C (data answer, check the example's exact form)."""
    return build_segment(qn=packet.qn, st="91", cn="9014", pw=password, mn=packet.mn, flag=packet.version << 2)


def request_answer(packet: Packet, password: str, qn_rtn: int) -> bytes:
    """The request answer (CN 9011) with ``QnRtn`` (HJ 212-2017 §6.6: 1 ready, 2 refused, 3 PW error, ... 100
    unknown): what this server sends to a packet it refuses for a cause that sending again cannot cure (no SM4 key
    for the station, or the wrong one), so that the logger stops resending it."""
    return build_segment(
        qn=packet.qn, st="91", cn="9011", pw=password, mn=packet.mn, flag=packet.version << 2, cp=f"QnRtn={qn_rtn}"
    )


def heartbeat_answer(packet: Packet, password: str) -> bytes:
    """The notification answer (CN 9013) to a heartbeat (CN 9015): HJ 212-2025 (reported, confirm in the text)."""
    return build_segment(qn=packet.qn, st="91", cn="9013", pw=password, mn=packet.mn, flag=packet.version << 2)


def mask_password(raw: bytes) -> bytes:
    """``raw`` with every ``PW=...`` value replaced by ``******`` (dead letters and events never hold a password;
    the CRC of a masked packet no longer matches)."""
    return re.sub(rb"PW=[^;]*", b"PW=******", raw)
