"""InfluxDB line protocol: the one encoder. ``LineEncoder`` encodes telemetry messages (the bridge's hot path, with
per-series caches); ``encode_row`` encodes one row of a derived series (valid means, indices) with the same escaping.

Schema of telemetry (the contract with the query side):

* measurement: ``msg.measurement``;
* tags: ``site``, ``device``, ``profile`` from the message, plus every entry of ``msg.tags``; a message tag named
  ``site``, ``device`` or ``profile`` never overrides ours; a tag whose key or value is empty is left out (InfluxDB
  rejects it); tags are sorted by their escaped key, byte-wise, which is the order InfluxDB itself sorts a series
  key into (``models.scanKey`` compares the escaped bytes), so our series key is the canonical one;
* one line per sample, timestamp ``sample.ts`` in ms (the bridge writes with ``precision=ms``);
* fields, points sorted by name: a value as ``<point>=...`` (bool ``true``/``false``; int and float always a float
  literal; str double-quoted); a point whose quality is not good adds ``<point>.q`` (``1i`` uncertain, ``2i`` bad)
  and ``<point>.reason`` (string); a null value writes only those two. A sample without any field yields no line.

Escaping, as InfluxDB 1.x parses a line (``models/points.go``, ``pkg/escape``; the 1.x line protocol reference):

* measurement: ``,`` and space get a backslash; tag keys, tag values and field keys: ``,``, ``=`` and space get a
  backslash. 1.x has no escape for the backslash itself in these names (``\\\\`` would be stored as two
  backslashes), so a backslash is written as is. A backslash *before* a special character needs nothing more:
  raw ``a\\,b`` is written ``a\\\\,b``, which 1.x reads back as ``a\\,b``.
* the 1.x scanner takes any character after a backslash as escaped, so a name ending in a backslash swallows the
  separator after it and the line is rejected. Such a tag key or value loses its trailing backslashes (Telegraf's
  influx serializer does the same) and is left out if nothing remains; a measurement or field key ending in one
  is refused with ValueError (changing it would write into another table or column; the profile schema and the
  point-name pattern already exclude it).
* a measurement that is empty, starts with ``#`` (1.x reads the line as a comment) or with a tab or NUL (1.x skips
  them as leading whitespace) is refused with ValueError.
* newline: 1.x cannot carry one in a tag, a field key or a string value (the reference says so; an escaped
  ``\\n`` is not interpreted), and a raw one would split the line. It is written as the two characters ``\\n``
  everywhere; 1.x stores those two characters (InfluxDB 3's parser reads them back as a newline). Every other
  character, carriage return and tab included, is written as is: only ``\\n`` ends a line for 1.x, and lines
  are split on ``\\n`` only (never ``str.splitlines``).
* string field values: double-quoted; ``\\`` becomes ``\\\\`` and ``"`` becomes ``\\"`` (1.x unescapes exactly
  those two, and a trailing backslash would otherwise escape the closing quote).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from storage.schema import DEVICE, PROFILE, QUALITY_SUFFIX, REASON_SUFFIX, SITE
from telemetry.models import Quality, Sample
from telemetry.wire import TelemetryLike, WireSample

__all__ = [
    "FieldValue",
    "LineEncoder",
    "encode_row",
    "escape_field_key",
    "escape_measurement",
    "escape_tag",
    "quote_string",
    "series_key",
]

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n"})
_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n"})
_OURS = (SITE, DEVICE, PROFILE)
_MAX_FIELD_KEYS = 10_000  # point names come from profiles; the bound only guards against a foreign producer

SeriesKey = tuple[str, str, str, str, tuple[tuple[str, str], ...]]


def escape_measurement(name: str) -> str:
    """The measurement as written in a line; ValueError if 1.x cannot carry it (see the module docstring)."""
    if not name:
        raise ValueError("measurement is empty")
    if name[0] in "#\t\0":
        raise ValueError(f"measurement {name!r} starts with {name[0]!r}, which InfluxDB 1.x does not keep")
    if name[-1] == "\\":
        raise ValueError(f"measurement {name!r} ends with a backslash, which line protocol cannot carry")
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(text: str) -> str:
    """A tag key or value as written in a line; trailing backslashes are dropped ("" means: leave the tag out)."""
    return text.rstrip("\\").translate(_KEY_ESCAPES)


def escape_field_key(name: str) -> str:
    """A field key as written in a line; ValueError if it is empty or ends with a backslash."""
    if not name or name[-1] == "\\":
        raise ValueError(f"field key {name!r} cannot be written in line protocol")
    return name.translate(_KEY_ESCAPES)


def quote_string(text: str) -> str:
    """A string field value: double-quoted, with backslash, double quote and newline escaped."""
    if "\\" in text or '"' in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def series_key(line: str) -> str:
    """The measurement and tags of a line (up to the first space that no backslash escapes)."""
    i = line.find(" ")
    while i > 0 and line[i - 1] == "\\":
        i = line.find(" ", i + 1)
    if i <= 0:
        raise ValueError(f"not a line protocol line: {line[:80]!r}")
    return line[:i]


def _series_prefix(msg: TelemetryLike) -> str:
    tags: dict[str, str] = {}
    for key, value in msg.tags.items():
        ekey, evalue = escape_tag(key), escape_tag(value)
        if ekey and evalue and ekey not in _OURS:
            tags[ekey] = evalue
    for key, value in zip(_OURS, (msg.site, msg.device, msg.profile), strict=True):
        evalue = escape_tag(value)
        if evalue:
            tags[key] = evalue
    # str order is code-point order, which is UTF-8 byte order: what Go's bytes.Compare gives InfluxDB.
    parts = [escape_measurement(msg.measurement)]
    parts.extend(f"{key}={tags[key]}" for key in sorted(tags))
    return ",".join(parts)


def _float_literal(msg: TelemetryLike, name: str, value: int) -> str:
    """An int as a float field, so a point never flips between integer and float field types (InfluxDB rejects
    the second type as a field type conflict). An int beyond 2**53 loses precision here (float64 has a 53-bit
    mantissa); the contract's numbers are register readings, far below that."""
    try:
        return repr(float(value))
    except OverflowError:
        raise ValueError(f"{msg.site}/{msg.device} point {name!r}: {value} does not fit a float") from None


class LineEncoder:
    """Encodes telemetry messages; caches the escaped series prefix and field keys (bounded, oldest out first)."""

    __slots__ = ("_field_keys", "_max_series", "_series")

    def __init__(self, max_series: int = 100_000) -> None:
        if max_series < 1:
            raise ValueError("max_series must be at least 1")
        self._max_series = max_series
        self._series: dict[SeriesKey, str] = {}
        self._field_keys: dict[str, tuple[str, str, str]] = {}

    @property
    def cached_series(self) -> int:
        """How many series prefixes the cache holds (never more than max_series)."""
        return len(self._series)

    def encode(self, msg: TelemetryLike) -> list[str]:
        """One line per sample that has a field, without a trailing newline. ValueError for a value that line
        protocol cannot carry (a non-finite number) or a measurement it cannot (see the module docstring)."""
        prefix = self._prefix(msg)
        lines = []
        for sample in msg.samples:
            fields = self._fields(msg, sample)
            if fields:
                lines.append(f"{prefix} {fields} {sample.ts}")
        return lines

    def encode_batch(self, msgs: Iterable[TelemetryLike]) -> tuple[bytes, int]:
        """The lines of all messages joined by newlines, UTF-8, and how many lines that is."""
        lines: list[str] = []
        for msg in msgs:
            lines.extend(self.encode(msg))
        return "\n".join(lines).encode(), len(lines)

    def _prefix(self, msg: TelemetryLike) -> str:
        tags = msg.tags
        key: SeriesKey = (
            msg.measurement,
            msg.site,
            msg.device,
            msg.profile,
            tuple(sorted(tags.items())) if tags else (),
        )
        prefix = self._series.get(key)
        if prefix is None:
            prefix = _series_prefix(msg)
            if len(self._series) >= self._max_series:
                del self._series[next(iter(self._series))]  # dicts keep insertion order: the oldest goes
            self._series[key] = prefix
        return prefix

    def _keys(self, name: str) -> tuple[str, str, str]:
        key = escape_field_key(name)
        keys = (f"{key}=", f"{escape_field_key(name + QUALITY_SUFFIX)}=", f"{escape_field_key(name + REASON_SUFFIX)}=")
        if len(self._field_keys) >= _MAX_FIELD_KEYS:
            del self._field_keys[next(iter(self._field_keys))]
        self._field_keys[name] = keys
        return keys

    def _fields(self, msg: TelemetryLike, sample: Sample | WireSample) -> str:
        values = sample.values
        quality = sample.quality
        field_keys = self._field_keys
        out: list[str] = []
        append = out.append
        for name in sorted(values):
            keys = field_keys.get(name) or self._keys(name)
            value = values[name]
            if isinstance(value, float):
                if value - value != 0.0:  # inf - inf and nan - nan are nan: cheaper than math.isfinite
                    raise ValueError(f"{msg.site}/{msg.device} point {name!r}: {value!r} is not a finite number")
                append(keys[0] + repr(value))
            elif value is None:
                pass  # a bad point: only its quality fields below
            elif isinstance(value, bool):  # before int: a bool is an int
                append(keys[0] + ("true" if value else "false"))
            elif isinstance(value, int):
                append(keys[0] + _float_literal(msg, name, value))
            elif isinstance(value, str):
                append(keys[0] + quote_string(value))
            else:
                raise ValueError(f"{msg.site}/{msg.device} point {name!r}: a {type(value).__name__} is not a value")
            if quality:
                pq = quality.get(name)
                if pq is not None:
                    append(keys[1] + ("2i" if pq.q == Quality.BAD else "1i"))
                    append(keys[2] + quote_string(pq.reason))
        return ",".join(out)


FieldValue = float | int | bool | str


def _row_value(name: str, value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if value - value != 0.0:
            raise ValueError(f"field {name!r}: {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    raise ValueError(f"field {name!r}: a {type(value).__name__} is not a value")


def encode_row(
    measurement: str, tags: Iterable[tuple[str, str]], fields: Mapping[str, FieldValue | None], ts_ms: int
) -> str:
    """One line (ms precision) of a derived series: tags sorted by escaped key (empty ones left out, as
    ``LineEncoder`` does), fields in the order given (``None`` left out). Unlike telemetry, an ``int`` stays an
    integer field (``5i``: counts and quality codes); a ``float`` is a float field. ValueError when no field is
    left or a name or value cannot be written."""
    escaped: dict[str, str] = {}
    for key, value in tags:
        ekey, evalue = escape_tag(key), escape_tag(value)
        if ekey and evalue:
            escaped[ekey] = evalue
    head = escape_measurement(measurement) + "".join(f",{k}={escaped[k]}" for k in sorted(escaped))
    body = ",".join(
        f"{escape_field_key(name)}={_row_value(name, value)}" for name, value in fields.items() if value is not None
    )
    if not body:
        raise ValueError(f"a row of {measurement!r} without any field")
    return f"{head} {body} {int(ts_ms)}"
