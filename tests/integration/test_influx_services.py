"""InfluxDB 1.6.7 and the nginx 2.x-compat proxy as child processes: lifecycle, isolation, and 2.x clients."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from testing import Influxd, ServiceError
from tests.servers import InfluxCompatProxy

pytestmark = pytest.mark.integration


def write(server: Influxd, lines: str, db: str = "lifeline", **params: str) -> httpx.Response:
    return httpx.post(f"{server.url}/write", params={"db": db, "precision": "ms", **params}, content=lines.encode())


def select(url: str, influxql: str, db: str = "lifeline", **params: str) -> list[list[object]]:
    """The values of the first series of a one-statement query (epoch ms); ``params`` go in the URL (u, p)."""
    resp = httpx.post(f"{url}/query", params=params, data={"db": db, "q": influxql, "epoch": "ms"})
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert "error" not in result, result
    series = result.get("series", [])
    return series[0]["values"] if series else []


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return True
    return False


# --- Influxd ---------------------------------------------------------------------------------------------------


def test_influxd_answers_ping_and_stops(influxdb: Influxd) -> None:
    resp = httpx.get(f"{influxdb.url}/ping")
    assert resp.status_code == 204
    assert resp.headers["X-Influxdb-Version"].startswith("1.6.7")
    assert influxdb.running
    assert influxdb.url == f"http://127.0.0.1:{influxdb.port}"
    influxdb.stop()
    assert not influxdb.running
    assert refused(influxdb.host, influxdb.port)
    assert refused(influxdb.host, influxdb.rpc_port)


def test_influxd_config_is_its_own(influxdb: Influxd) -> None:
    conf = influxdb.conf_path.read_text()
    assert f'bind-address = "127.0.0.1:{influxdb.rpc_port}"' in conf  # not the shared default :8088
    assert influxdb.rpc_port != influxdb.port
    assert write(influxdb, "m v=1 1700000000000").status_code == 204
    for folder in ("meta", "data/lifeline", "wal/lifeline"):
        assert (influxdb.data_dir / folder).is_dir()
    assert not (influxdb.data_dir / "data" / "_internal").exists()  # the monitor store is off


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda s: s.restart(), id="restart"),
        pytest.param(lambda s: (s.kill(), s.start()), id="kill-then-start"),
    ],
)
def test_written_points_survive(influxdb: Influxd, fault: Callable[[Influxd], object]) -> None:
    assert write(influxdb, "m,device=a v=1.5 1700000000000\nm,device=a v=2.5 1700000001000").status_code == 204
    fault(influxdb)
    assert influxdb.running
    assert select(influxdb.url, 'SELECT "v" FROM "m"') == [[1700000000000, 1.5], [1700000001000, 2.5]]


def test_kill_stops_at_once(influxdb: Influxd) -> None:
    proc = influxdb.proc
    assert proc is not None
    influxdb.kill()
    assert proc.returncode == -9
    assert not influxdb.running
    influxdb.kill()  # a second kill, or a stop, of a dead server is a no-op
    influxdb.stop()


def test_two_servers_run_side_by_side(tmp_path: Path) -> None:
    with Influxd(tmp_path / "one") as one, Influxd(tmp_path / "two") as two:
        assert len({one.port, one.rpc_port, two.port, two.rpc_port}) == 4
        one.create_database("only_in_one")
        two.create_database("only_in_two")
        assert ["only_in_one"] in select(one.url, "SHOW DATABASES")
        assert ["only_in_one"] not in select(two.url, "SHOW DATABASES")
        assert ["only_in_two"] in select(two.url, "SHOW DATABASES")
    assert not one.running
    assert not two.running


def test_start_on_a_taken_port_fails_with_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = Influxd(tmp_path / "influx", port=taken.getsockname()[1])
        with pytest.raises(ServiceError, match="influxd did not start") as info:
            server.start(timeout_s=10)
    assert "address already in use" in str(info.value)
    assert not server.running


def test_partial_write_keeps_good_lines_and_names_the_conflict(influxdb: Influxd) -> None:
    """What the bridge must handle: 1.6.7 stores the good lines of a batch and answers 400 for the rest."""
    assert write(influxdb, "m,device=a v=1 1700000000000").status_code == 204
    resp = write(
        influxdb, 'm,device=a v=2 1700000001000\nm,device=a v="text" 1700000002000\nm,device=b v=3 1700000003000'
    )
    assert resp.status_code == 400
    message = (
        'partial write: field type conflict: input field "v" on measurement "m" is type string, '
        "already exists as type float dropped=1"
    )
    assert resp.json() == {"error": message}
    assert resp.headers["X-Influxdb-Error"] == message
    assert select(influxdb.url, 'SELECT "v" FROM "m"') == [[1700000000000, 1], [1700000001000, 2], [1700000003000, 3]]


def test_unparsable_lines_are_dropped_but_not_counted(influxdb: Influxd) -> None:
    resp = write(influxdb, "m,device=a v=1 1700000000000\nm,device=a v= 1700000001000\nm,device=b v=3 1700000002000")
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "partial write: unable to parse 'm,device=a v= 1700000001000': missing field value dropped=0"
    }
    assert select(influxdb.url, 'SELECT "v" FROM "m"') == [[1700000000000, 1], [1700000002000, 3]]


# --- InfluxCompatProxy ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "precision", "line", "stored_ms"),
    [
        ("lifeline", WritePrecision.MS, "m,device=a v=1 1700000000123", 1700000000123),
        ("lifeline/autogen", WritePrecision.S, "m,device=a v=1 1700000001", 1700000001000),
        ("lifeline", WritePrecision.US, "m,device=a v=1 1700000002123000", 1700000002123),
        ("lifeline", WritePrecision.NS, "m,device=a v=1 1700000003123000000", 1700000003123),
    ],
    ids=["ms", "s-with-rp", "us", "ns"],
)
def test_influxdb_client_2x_write_lands_in_1x(
    influx_compat: InfluxCompatProxy,
    influxdb: Influxd,
    bucket: str,
    precision: WritePrecision,
    line: str,
    stored_ms: int,
) -> None:
    with InfluxDBClient(url=influx_compat.url, token="lifeline:unused", org="lifeline") as client:
        assert client.ping()
        client.write_api(write_options=SYNCHRONOUS).write(bucket=bucket, record=[line], write_precision=precision)
    assert select(influxdb.url, 'SELECT "v" FROM "m"') == [[stored_ms, 1]]


def test_bucket_with_rp_writes_into_that_retention_policy(influx_compat: InfluxCompatProxy, influxdb: Influxd) -> None:
    select(influxdb.url, 'CREATE RETENTION POLICY "short" ON "lifeline" DURATION 1h REPLICATION 1')
    now_ms = time.time_ns() // 1_000_000  # a 1h policy refuses older points ("points beyond retention policy")
    with InfluxDBClient(url=influx_compat.url, token="", org="lifeline") as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        write_api.write(bucket="lifeline/short", record=[f"m v=7 {now_ms}"], write_precision=WritePrecision.MS)
        write_api.write(bucket="lifeline", record=[f"m v=8 {now_ms}"], write_precision=WritePrecision.MS)
    assert select(influxdb.url, 'SELECT "v" FROM "short"."m"') == [[now_ms, 7]]
    assert select(influxdb.url, 'SELECT "v" FROM "autogen"."m"') == [[now_ms, 8]]


def test_2x_write_errors_come_back_to_the_client(influx_compat: InfluxCompatProxy) -> None:
    with InfluxDBClient(url=influx_compat.url, token="", org="lifeline") as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        with pytest.raises(ApiException) as missing:
            write_api.write(bucket="no_such_db", record=["m v=1"], write_precision=WritePrecision.MS)
        write_api.write(bucket="lifeline", record=["m v=1 1700000000000"], write_precision=WritePrecision.MS)
        with pytest.raises(ApiException) as conflict:
            write_api.write(bucket="lifeline", record=['m v="x" 1700000000001'], write_precision=WritePrecision.MS)
    assert missing.value.status == 404
    assert 'database not found: \\"no_such_db\\"' in missing.value.body
    assert conflict.value.status == 400
    assert "field type conflict" in conflict.value.body


def test_2x_write_accepts_only_post(influx_compat: InfluxCompatProxy) -> None:
    assert httpx.get(f"{influx_compat.url}/api/v2/write", params={"bucket": "lifeline"}).status_code == 405


def test_proxy_passes_1x_calls_through(influx_compat: InfluxCompatProxy, influxdb: Influxd) -> None:
    assert httpx.get(f"{influx_compat.url}/ping").status_code == 204
    resp = httpx.post(f"{influx_compat.url}/write", params={"db": "lifeline", "precision": "ms"}, content=b"m v=4 5")
    assert resp.status_code == 204
    assert select(influx_compat.url, 'SELECT "v" FROM "m"') == [[5, 4]]


def test_health_follows_the_upstream(influx_compat: InfluxCompatProxy, influxdb: Influxd) -> None:
    resp = httpx.get(f"{influx_compat.url}/health")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["status"] == "pass"
    influxdb.stop()
    resp = httpx.get(f"{influx_compat.url}/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "fail"
    influxdb.start()
    assert httpx.get(f"{influx_compat.url}/health").json()["status"] == "pass"


def test_token_user_password_becomes_1x_credentials(tmp_path: Path) -> None:
    with Influxd(tmp_path / "influx", auth_enabled=True) as server:
        # with auth on, 1.x takes only CREATE USER … WITH ALL PRIVILEGES until an admin exists
        select(server.url, "CREATE USER \"admin\" WITH PASSWORD 'se.cret-1' WITH ALL PRIVILEGES")
        select(server.url, 'CREATE DATABASE "lifeline"', u="admin", p="se.cret-1")
        with InfluxCompatProxy(tmp_path / "proxy", server.url) as proxy:
            with InfluxDBClient(url=proxy.url, token="admin:se.cret-1", org="-") as client:
                client.write_api(write_options=SYNCHRONOUS).write(
                    bucket="lifeline", record=["m v=1 1700000000000"], write_precision=WritePrecision.MS
                )
            with (
                InfluxDBClient(url=proxy.url, token="admin:wrong", org="-") as client,
                pytest.raises(ApiException) as denied,
            ):
                client.write_api(write_options=SYNCHRONOUS).write(
                    bucket="lifeline", record=["m v=2 1700000000001"], write_precision=WritePrecision.MS
                )
        assert denied.value.status == 401
        assert select(server.url, 'SELECT "v" FROM "m"', u="admin", p="se.cret-1") == [[1700000000000, 1]]


def test_proxy_stops_and_frees_its_port(influx_compat: InfluxCompatProxy) -> None:
    assert influx_compat.running
    influx_compat.stop()
    assert not influx_compat.running
    assert refused(influx_compat.host, influx_compat.port)
    influx_compat.restart()
    assert httpx.get(f"{influx_compat.url}/ping").status_code == 204


def test_proxy_refuses_a_non_http_upstream(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="upstream_url"):
        InfluxCompatProxy(tmp_path, "https://127.0.0.1:8086")
