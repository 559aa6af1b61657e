"""storage: InfluxQL building with hostile names, the one encoder's rows for derived series, the connection model's
secrets, and the one retry policy (400 drop and keep the rest, 413 split, 429/5xx retry after Retry-After).
Against a real InfluxDB: tests/integration/test_query.py (quoting round trip), test_storage_v2.py (v2 writer)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.secret import Secret
from storage import influxql as ql
from storage.connection import InfluxConfig, InfluxConnection
from storage.lineproto import LineEncoder, encode_row
from storage.writer import Rejected, Retry, RetryConfig, RetryingWriter, TooLarge, Unavailable
from telemetry.models import Telemetry

# --- InfluxQL ------------------------------------------------------------------------------------------------------
HOSTILE = [
    pytest.param('x" ; DROP DATABASE "lifeline', '"x\\" ; DROP DATABASE \\"lifeline"', id="close-and-drop"),
    pytest.param("x' OR '1'='1", "\"x' OR '1'='1\"", id="single-quotes-inside-double"),
    pytest.param("a\\", '"a\\\\"', id="trailing-backslash-escapes-nothing"),
    pytest.param('a\\"b', '"a\\\\\\"b"', id="backslash-then-quote"),
    pytest.param("line\nSELECT", '"line\\nSELECT"', id="newline-no-second-statement"),
    pytest.param("空 格,=", '"空 格,="', id="unicode-space-comma-equals"),
]


@pytest.mark.parametrize(("raw", "quoted"), HOSTILE)
def test_identifiers_are_double_quoted_and_escaped(raw: str, quoted: str) -> None:
    assert ql.ident(raw) == quoted


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        pytest.param("s1' OR ''='", "'s1\\' OR \\'\\'=\\''", id="close-and-or"),
        pytest.param('d"1', "'d\"1'", id="double-quote-inside-single"),
        pytest.param("end\\", "'end\\\\'", id="trailing-backslash"),
        pytest.param("a\nb; DROP", "'a\\nb; DROP'", id="newline"),
    ],
)
def test_string_literals_are_single_quoted_and_escaped(raw: str, quoted: str) -> None:
    assert ql.string(raw) == quoted


def _unquote(text: str, quote: str) -> str:
    """InfluxQL's scanner for a quoted token (influxql/scanner.go ScanString): the value, or ValueError if the
    token ends early or has a bad escape."""
    assert text[0] == quote
    assert text[-1] == quote
    out, i, body = [], 0, text[1:-1]
    escapes = {"n": "\n", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            out.append(escapes[body[i + 1]])
            i += 2
            continue
        if ch in (quote, "\n"):
            raise ValueError(f"token ends early at {i}")
        out.append(ch)
        i += 1
    return "".join(out)


@given(st.text())
def test_any_name_reads_back_as_itself(raw: str) -> None:
    assert _unquote(ql.ident(raw), '"') == raw
    assert _unquote(ql.string(raw), "'") == raw


def test_a_statement_is_built_from_quoted_parts_only() -> None:
    q = ql.select(
        [ql.call("mean", 'p"h'), ql.call("max", "ph.q")],
        ql.source("water quality", 'r"p'),
        [
            *ql.time_range(1000, 2000),
            ql.eq("site", "s'1"),
            ql.one_of("device", ["b", "a", "b"]),
            ql.compare("ph.q", "=", 1),
        ],
        group_by=("site", "device"),
        every_ms=300_000,
        fill_none=True,
        limit=10,
    )
    assert q == (
        'SELECT mean("p\\"h") AS "p\\"h", max("ph.q") AS "ph.q" FROM "r\\"p"."water quality" '
        "WHERE time >= 1000ms AND time < 2000ms AND \"site\" = 's\\'1' "
        'AND ("device" = \'b\' OR "device" = \'a\') AND "ph.q" = 1 '
        'GROUP BY time(5m), "site","device" fill(none) LIMIT 10'
    )


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        pytest.param(lambda: ql.call("drop", "x"), "aggregate must be one of", id="function-not-listed"),  # type: ignore[arg-type]
        pytest.param(lambda: ql.compare("x", "; DROP", 1), "operator must be one of", id="operator-not-listed"),  # type: ignore[arg-type]
        pytest.param(lambda: ql.compare("x", "=", float("nan")), "finite", id="nan"),
        pytest.param(lambda: ql.compare("x", "=", "1 OR 1=1"), "not a number", id="number-as-text"),  # type: ignore[arg-type]
        pytest.param(lambda: ql.one_of("device", "abc"), "not one str", id="str-as-collection"),
        pytest.param(lambda: ql.sources([]), "at least one measurement", id="no-source"),
    ],
)
def test_what_cannot_be_quoted_is_refused(call: object, problem: str) -> None:
    with pytest.raises((ValueError, TypeError), match=problem):
        call()  # type: ignore[operator]


def test_times_are_integers() -> None:
    assert ql.time_range(1.9, 3.2) == ["time >= 1ms", "time < 3ms"]  # type: ignore[arg-type]
    assert ql.time_at(86_400_000) == "time = 86400000ms"
    assert [ql.duration(ms) for ms in (86_400_000, 3_600_000, 90_000, 250)] == ["1d", "1h", "90s", "250ms"]


# --- the one encoder: derived rows -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "line"),
    [
        pytest.param("m", [("site", "s1")], {"x": 1.5, "x.n": 3}, "m,site=s1 x=1.5,x.n=3i 7", id="float-and-count"),
        pytest.param("a b,c", [("k", "v")], {"f": 1.0}, "a\\ b\\,c,k=v f=1.0 7", id="measurement-escapes"),
        pytest.param("m", [("k =,", "v =,")], {"f": 1.0}, "m,k\\ \\=\\,=v\\ \\=\\, f=1.0 7", id="tag-escapes"),
        pytest.param("m", [("k", 'a\\b"c')], {"f": 1.0}, 'm,k=a\\b"c f=1.0 7', id="tag-backslash-as-is"),
        pytest.param("m", [("k", "v\\")], {"f": 1.0}, "m,k=v f=1.0 7", id="tag-trailing-backslash-dropped"),
        pytest.param("m", [("k", ""), ("e", "")], {"f": 1.0}, "m f=1.0 7", id="empty-tags-left-out"),
        pytest.param("m", [("z", "1"), ("a", "2")], {"f": 1.0}, "m,a=2,z=1 f=1.0 7", id="tags-sorted"),
        pytest.param(
            "m", [], {"r": 'say "hi" \\ ok\nnext'}, 'm r="say \\"hi\\" \\\\ ok\\nnext" 7', id="string-escapes"
        ),
        pytest.param("m", [], {"f k=": True, "g": None}, "m f\\ k\\==true 7", id="bool-and-none-left-out"),
    ],
)
def test_rows_of_derived_series(
    measurement: str, tags: list[tuple[str, str]], fields: dict[str, object], line: str
) -> None:
    assert encode_row(measurement, tags, fields, 7) == line  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("measurement", "fields", "problem"),
    [
        pytest.param("m", {"f": float("inf")}, "not a finite number", id="infinite"),
        pytest.param("m", {"g": None}, "without any field", id="no-field"),
        pytest.param("#m", {"f": 1.0}, "starts with", id="comment-measurement"),
        pytest.param("m", {"f\\": 1.0}, "cannot be written", id="field-key-trailing-backslash"),
    ],
)
def test_rows_that_line_protocol_cannot_carry_are_refused(
    measurement: str, fields: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        encode_row(measurement, [], fields, 0)  # type: ignore[arg-type]


def test_a_derived_row_and_the_bridge_escape_a_series_alike() -> None:
    msg = Telemetry(
        site="s1",
        device="d1",
        profile="p",
        measurement="m x,y",
        seq=1,
        tags={"river name": "north, b=", "z\\": "end\\", "": "x"},
        samples=[{"ts": 5, "values": {"v": 1.0}}],
    )
    (bridge,) = LineEncoder().encode(msg)
    derived = encode_row(
        "m x,y",
        [("site", "s1"), ("device", "d1"), ("profile", "p"), ("river name", "north, b="), ("z\\", "end\\"), ("", "x")],
        {"v": 1.0},
        5,
    )
    assert derived == bridge


# --- the connection model ------------------------------------------------------------------------------------------
def test_the_password_never_shows() -> None:
    conn = InfluxConnection(username="lifeline-rules", password="s3cret-pw")  # the old plain string still works
    assert isinstance(conn.password, Secret)
    for text in (repr(conn), str(conn), str(conn.model_dump()), conn.model_dump_json()):
        assert "s3cret-pw" not in text
    auth = conn.auth()
    assert isinstance(auth, httpx.BasicAuth)
    request = next(auth.auth_flow(httpx.Request("GET", "http://i/query")))
    assert request.headers["Authorization"] == httpx.BasicAuth("lifeline-rules", "s3cret-pw")._auth_header
    assert "s3cret-pw" not in str(conn.http_client().base_url)


def test_the_password_and_token_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_INFLUX_TOKEN", "tok-1")
    config = InfluxConfig.model_validate({"transport": "v2", "token": {"env": "T_INFLUX_TOKEN"}, "org": "o"})
    assert "tok-1" not in repr(config)
    assert config.token_value() == "tok-1"
    auth = config.auth()
    assert auth is not None
    request = next(auth.auth_flow(httpx.Request("POST", "http://i/query")))
    assert request.headers["Authorization"] == "Token tok-1"  # InfluxQL through 2.x's v1 compatibility API


def test_a_reader_keeps_the_shared_fields_only() -> None:
    config = InfluxConfig(
        url="http://i:8086",
        database="d",
        retention_policy="rp",
        username="u",
        password="p",
        timeout_s=3,
        transport="v2",
        bucket="b",
        create_database=True,
    )
    reader = config.read_only()
    assert type(reader) is InfluxConnection
    assert reader.model_dump() == {
        "url": "http://i:8086",
        "database": "d",
        "retention_policy": "rp",
        "username": "u",
        "password": "***",
        "timeout_s": 3.0,
        "ca_file": None,
    }
    assert reader.password is not None
    assert reader.password.reveal() == "p"


# --- the one retry policy ------------------------------------------------------------------------------------------
class FakeInflux:
    """A write transport: refuses lines holding "bad" (400), bodies over ``max_lines`` (413), and answers the first
    ``failures`` writes with ``failure``."""

    def __init__(self, max_lines: int = 1000, failures: int = 0, failure: Retry | None = None) -> None:
        self.max_lines, self.failures, self.failure = max_lines, failures, failure
        self.stored: list[str] = []
        self.requests = 0

    async def write(self, body: bytes) -> None:
        self.requests += 1
        if self.failures:
            self.failures -= 1
            assert self.failure is not None
            raise self.failure
        lines = body.decode().split("\n")
        if len(lines) > self.max_lines:
            raise TooLarge("request entity too large", 413)
        if any("bad" in line for line in lines):
            raise Rejected("partial write: unable to parse 'bad'", 400)
        self.stored += lines

    async def close(self) -> None:
        pass


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run(writer: RetryingWriter, lines: list[str]) -> list[tuple[int, str]]:
    return [(r.index, r.line) for r in asyncio.run(writer.write_lines(lines))]


def test_400_drops_the_refused_lines_and_keeps_the_rest() -> None:
    influx = FakeInflux()
    writer = RetryingWriter(influx, sleep=Sleeps())
    lines = [f"m v={i}" for i in range(8)]
    lines[2], lines[5] = "bad 1", "bad 2"
    assert run(writer, lines) == [(2, "bad 1"), (5, "bad 2")]
    assert sorted(influx.stored) == sorted(line for line in lines if "bad" not in line)
    assert writer.stats.splits > 0


def test_413_splits_the_batch_until_it_fits() -> None:
    influx = FakeInflux(max_lines=3)
    writer = RetryingWriter(influx, sleep=Sleeps())
    lines = [f"m v={i}" for i in range(10)]
    assert run(writer, lines) == []
    assert influx.stored == lines  # every line, in order
    assert writer.stats.splits == 3  # 10 -> 5 + 5 -> (2 + 3) + (2 + 3)


@pytest.mark.parametrize(
    ("failure", "waits"),
    [
        pytest.param(Retry("too many requests", 429, retry_after_s=7.0), [7.0, 7.0], id="429-retry-after-wins"),
        pytest.param(Retry("internal error", 500), [0.5, 1.0], id="5xx-backoff"),
        pytest.param(Retry("connection refused"), [0.5, 1.0], id="unreachable-backoff"),
    ],
)
def test_retryable_failures_wait_and_write_again(failure: Retry, waits: list[float]) -> None:
    influx, sleeps = FakeInflux(failures=2, failure=failure), Sleeps()
    writer = RetryingWriter(influx, RetryConfig(initial_s=0.5, max_s=30), sleep=sleeps, rand=lambda: 1.0)
    assert run(writer, ["m v=1"]) == []
    assert (sleeps.waits, influx.stored, writer.stats.retries, writer.ok) == (waits, ["m v=1"], 2, True)


def test_the_backoff_is_capped_and_jittered() -> None:
    sleeps = Sleeps()
    writer = RetryingWriter(
        FakeInflux(failures=6, failure=Retry("down", 503)),
        RetryConfig(initial_s=1, max_s=4),
        sleep=sleeps,
        rand=lambda: 0.5,
    )
    run(writer, ["m v=1"])
    assert sleeps.waits == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]  # half of 1, 2, 4, 4 (capped), ...


def test_a_bounded_writer_gives_up_and_says_so() -> None:
    influx, sleeps = FakeInflux(failures=10, failure=Retry("down", 503)), Sleeps()
    writer = RetryingWriter(influx, RetryConfig(max_attempts=3), sleep=sleeps)
    with pytest.raises(Unavailable, match=re.escape("down (after 3 attempts)")):
        run(writer, ["m v=1"])
    assert (influx.requests, len(sleeps.waits), writer.ok) == (3, 2, False)
