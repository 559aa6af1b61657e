"""Storage least privilege against real servers: InfluxDB 1.x lets a writer delete (so no service holds a writer),
the write gateway accepts writes only, influxd has no port anyone else can reach, its files are its own, and a
stored reading is never overwritten with another value (the bridge refuses it and dead-letters it)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker_bridge.config import BridgeConfig
from infra.deadletter import DeadLetterStore
from storage import InfluxConfig, InfluxQuery, derived_writer
from telemetry import encode, topics
from testing import Influxd, Mosquitto, owns_port
from tests.helpers import Publisher, wait_until
from tests.integration.test_bridge import config, start_bridge, wq_message
from tests.integration.test_cli import ROOT, UP_MINI, _up_servers
from tests.servers import LockedInflux

pytestmark = pytest.mark.integration

ADMIN = ("lifeline-admin", "admin-Secret-1")


def _rows(url: str, auth: tuple[str, str], q: str) -> list[list[Any]]:
    resp = httpx.post(f"{url}/query", params={"db": "lifeline", "q": q, "epoch": "ms"}, auth=auth, timeout=10)
    resp.raise_for_status()
    return [row for r in resp.json()["results"] for s in r.get("series", []) for row in s["values"]]


def test_influxdb_1x_lets_a_writer_delete_and_a_reader_not(tmp_path: Path) -> None:
    """Why the services hold no InfluxDB writer: 1.x's WRITE includes DELETE and DROP SERIES (1.6.7)."""
    with Influxd(tmp_path / "influx", auth_enabled=True) as server:
        writer, reader = ("w", "w-Secret-1"), ("r", "r-Secret-1")
        server.set_up_users("lifeline", {writer[0]: (writer[1], "WRITE"), reader[0]: (reader[1], "READ")}, ADMIN)
        lines = b"gas_safety,device=gas-1 co=0.1 1000\ngas_safety,device=gas-2 co=0.2 1000"
        params = {"db": "lifeline", "precision": "ms"}
        assert httpx.post(f"{server.url}/write", params=params, content=lines, auth=writer).status_code == 204
        for q in ("DELETE FROM gas_safety WHERE device='gas-1'", "DROP SERIES FROM gas_safety WHERE device='gas-1'"):
            refused = httpx.post(f"{server.url}/query", params={"db": "lifeline", "q": q}, auth=reader)
            assert refused.status_code == 403, q
        assert len(_rows(server.url, reader, "SELECT * FROM gas_safety")) == 2
        for q in ("DELETE FROM gas_safety WHERE device='gas-1'", "DROP SERIES FROM gas_safety WHERE device='gas-2'"):
            assert httpx.post(f"{server.url}/query", params={"db": "lifeline", "q": q}, auth=writer).status_code == 200
        assert _rows(server.url, reader, "SELECT * FROM gas_safety") == []  # the writer erased history


@pytest.mark.parametrize(
    ("method", "path", "auth", "status"),
    [
        pytest.param("POST", "/write", "bridge", 204, id="bridge-writes"),
        pytest.param("POST", "/write", None, 401, id="anonymous-write"),
        pytest.param("POST", "/write", "influx-writer", 401, id="influxdb-account-is-no-gateway-account"),
        pytest.param("GET", "/write", "bridge", 403, id="write-by-get"),
        pytest.param("POST", "/query?q=DELETE+FROM+gas_safety", "bridge", 401, id="bridge-deletes"),
        pytest.param("POST", "/query?q=DROP+SERIES+FROM+gas_safety", "bridge", 401, id="bridge-drops-series"),
        pytest.param("POST", "/query?q=DELETE+FROM+gas_safety", "reader", 403, id="reader-deletes"),
        pytest.param("GET", "/debug/vars", None, 404, id="debug-vars"),
        pytest.param("GET", "/debug/vars", "reader", 404, id="debug-vars-with-an-account"),
        pytest.param("GET", "/debug/pprof/", None, 404, id="pprof"),
        pytest.param("GET", "/debug/requests", None, 404, id="debug-requests"),
        pytest.param("GET", "/ping", None, 204, id="ping"),
    ],
)
def test_the_write_gateway_accepts_writes_only(
    locked_influxdb: LockedInflux, method: str, path: str, auth: str | None, status: int
) -> None:
    accounts = {
        "bridge": ("bridge", LockedInflux.CLIENTS["bridge"]),
        "influx-writer": LockedInflux.WRITER,
        "reader": LockedInflux.READER,
    }
    url = f"{locked_influxdb.url}{path}"
    if path == "/write":
        url += "?db=lifeline&precision=ms"
    body = b"gas_safety,device=gas-1 co=0.1 1000" if method == "POST" else None
    got = httpx.request(method, url, content=body, auth=accounts[auth] if auth else None, timeout=10)
    assert got.status_code == status, got.text
    if status == 204 and path == "/write":
        assert _rows(locked_influxdb.url, LockedInflux.READER, "SELECT co FROM gas_safety") == [[1000, 0.1]]


def test_influxd_has_no_port_in_reach_and_its_files_are_its_own(locked_influxdb: LockedInflux) -> None:
    server = locked_influxdb.server
    assert server.proc is not None
    # the RPC port (influxd backup, no credentials) and the HTTP port (/debug/vars) are in influxd's namespace only
    for port in (server.rpc_port, server.port):
        assert not owns_port(server.proc.pid, port), f"influxd listens on {port} where others reach it"
    assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o600
    opened = []
    for folder in (server.data_dir, locked_influxdb.gateway.data_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                mode = (Path(root) / name).lstat().st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    opened.append(f"{Path(root) / name} {oct(stat.S_IMODE(mode))}")
    assert opened == []
    conf = server.conf_path.read_text()
    assert "pprof-enabled = false" in conf
    assert server.shared_secret in conf  # hence 0600 (checked above)


def _gateway_bridge(broker: Mosquitto, locked: LockedInflux, tmp_path: Path) -> BridgeConfig:
    """The bridge as ``lifeline up`` configures it: reads with a READ account, writes through the gateway."""
    reader, gateway = LockedInflux.READER, ("bridge", LockedInflux.CLIENTS["bridge"])
    influx = {
        "url": locked.url,
        "database": "lifeline",
        "timeout_s": 2.0,
        "username": reader[0],
        "password": reader[1],
        "gateway": {"url": locked.url, "username": gateway[0], "password": gateway[1]},
    }
    base = config(broker, locked.server, tmp_path)
    return base.model_copy(update={"influx": BridgeConfig.model_validate({"influx": influx}).influx})


def test_a_stored_reading_is_never_overwritten_with_another_value(
    mosquitto: Mosquitto, locked_influxdb: LockedInflux, tmp_path: Path, publisher: Publisher
) -> None:
    """The attack of issue 24: an edge account resends a stored reading with its own seq and time and another value
    (here ph 7.01 -> 55.0). Refused and dead-lettered, with the reason; an honest redelivery is accepted; after a
    bridge restart (nothing in memory) the same; what is stored never changes."""
    cfg = _gateway_bridge(mosquitto, locked_influxdb, tmp_path)
    topic = topics.telemetry("s1", "wq-1")
    ts = int(time.time() * 1000) - 60_000
    honest = wq_message("wq-1", 1, ts)
    forged = honest.model_copy(deep=True)
    forged.samples[0].values["ph"] = 55.0
    q = "SELECT ph, cod FROM water_quality WHERE device='wq-1'"

    def stored() -> list[list[Any]]:
        return _rows(locked_influxdb.url, LockedInflux.READER, q)

    def letters() -> list[Any]:
        store = DeadLetterStore(tmp_path / "dead.sqlite")
        try:
            return store.list(100)
        finally:
            store.close()

    bridge, thread = start_bridge(cfg)
    try:
        publisher.send(topic, encode(honest))
        wait_until(lambda: len(stored()) == 1, 15, "the reading stored")
        before = stored()
        publisher.send(topic, encode(forged))
        wait_until(lambda: bridge.counters.dead_lettered == 1, 15, "the forged reading dead-lettered")
        publisher.send(topic, encode(honest))  # the broker's or the edge's redelivery
        wait_until(lambda: bridge.counters.written_messages == 2, 15, "the redelivery accepted")
        assert bridge.counters.overwrites_refused == 1
        assert stored() == before
    finally:
        thread.stop()
    [letter] = letters()
    assert letter.stage == "overwrite"
    assert "would overwrite the reading" in letter.reason
    assert "ph stored 7.01, received 55.0" in letter.reason
    assert letter.payload == encode(forged)

    bridge, thread = start_bridge(cfg)  # a restart: the guard learns from InfluxDB
    try:
        publisher.send(topic, encode(forged))
        wait_until(lambda: bridge.counters.dead_lettered == 1, 15, "the forged reading dead-lettered again")
        publisher.send(topic, encode(honest))
        wait_until(lambda: bridge.counters.written_messages == 1, 15, "the redelivery accepted after the restart")
        assert bridge.counters.overwrite_reads >= 1  # judged by what InfluxDB holds
        newer = wq_message("wq-1", 2, ts + 1000)
        publisher.send(topic, encode(newer))
        wait_until(lambda: len(stored()) == 2, 15, "a new reading stored")
        assert stored()[0] == before[0]
    finally:
        thread.stop()
    assert len(letters()) == 2


def test_a_user_granted_write_by_an_earlier_run_keeps_only_what_is_granted_now(tmp_path: Path) -> None:
    with Influxd(tmp_path / "influx", auth_enabled=True) as server:
        user = ("lifeline-bridge", "bridge-Secret-1")
        server.set_up_users("lifeline", {user[0]: (user[1], "WRITE")}, ADMIN)  # what an earlier release granted
        server.set_up_users("lifeline", {user[0]: (user[1], "READ")}, ADMIN)
        delete = {"db": "lifeline", "q": "DELETE FROM gas_safety"}
        assert httpx.post(f"{server.url}/query", params=delete, auth=user).status_code == 403
        write = {"db": "lifeline", "precision": "ms"}
        assert httpx.post(f"{server.url}/write", params=write, content=b"m v=1 1", auth=user).status_code == 403


def _influxd_pid(conf: Path) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and Path(argv[0].decode()).name == "influxd" and str(conf).encode() in argv:
                return int(entry.name)
    raise AssertionError(f"no influxd runs with {conf}")


def _group_or_world_accessible(folder: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        for name in (root, *(os.path.join(root, n) for n in (*dirs, *files))):
            mode = os.lstat(name).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(f"{name} {oct(stat.S_IMODE(mode))}")
    return found


def test_lifeline_up_storage_is_least_privilege_and_its_files_are_private(tmp_path: Path) -> None:
    """``lifeline up`` as the attack kit met it: no service's InfluxDB account deletes, the writing services' gateway
    accounts neither read nor delete, influxd answers on no port (RPC/backup, /debug/vars), and nothing under the
    data folder is open to group or others, while it runs and after it stopped."""
    data_dir = tmp_path / "up"
    proc = subprocess.Popen(
        [*UP_MINI, "--data-dir", str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT
    )
    lines: list[str] = []
    try:
        _port, url = _up_servers(proc, lines)
        cred = data_dir / "credentials"

        def account(name: str) -> tuple[str, str]:
            return name.removeprefix("influx-").removeprefix("gateway-"), (
                cred / f"{name}.password"
            ).read_text().strip()

        api = ("lifeline-api", account("influx-api")[1])
        q = 'SELECT count("ph") FROM "water_quality"'
        wait_until(lambda: _rows(url, api, q) != [], 45, "a reading stored through the gateway")
        stored = _rows(url, api, q)
        for service in ("bridge", "rules", "api"):
            own = (f"lifeline-{service}", account(f"influx-{service}")[1])
            for statement in ("DELETE FROM water_quality", "DROP SERIES FROM water_quality"):
                got = httpx.post(f"{url}/query", params={"db": "lifeline", "q": statement}, auth=own, timeout=10)
                assert got.status_code == 403, (service, statement, got.text)
            write = httpx.post(f"{url}/write", params={"db": "lifeline"}, content=b"water_quality ph=55 1", auth=own)
            assert write.status_code == 401, service  # an InfluxDB account does not open the gateway
        for service in ("bridge", "rules"):
            gateway = account(f"gateway-{service}")
            got = httpx.post(f"{url}/query", params={"db": "lifeline", "q": "DELETE FROM water_quality"}, auth=gateway)
            assert got.status_code == 401, service  # a gateway account is no InfluxDB account
        for path in ("/debug/vars", "/debug/pprof/", "/debug/requests"):
            assert httpx.get(f"{url}{path}", timeout=5).status_code == 404, path
        pid = _influxd_pid(data_dir / "influxdb" / "influxdb.conf")
        for port in (8086, 8088):  # its HTTP and RPC ports, in its own network namespace
            assert not owns_port(pid, port)
        assert _rows(url, api, q) >= stored  # nothing was deleted
        assert _group_or_world_accessible(data_dir) == []
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out.decode(errors="replace")
    assert _group_or_world_accessible(data_dir) == []


def test_the_rules_engines_derived_series_go_through_the_gateway(locked_influxdb: LockedInflux) -> None:
    """The rules engine's config as ``lifeline up`` writes it: it reads with a READ account and writes the derived
    series (valid means, indices) through the gateway with its gateway account."""
    config = InfluxConfig.model_validate(
        {
            "url": locked_influxdb.url,
            "database": "lifeline",
            "username": LockedInflux.READER[0],
            "password": LockedInflux.READER[1],
            "gateway": {"url": locked_influxdb.url, "username": "rules", "password": LockedInflux.CLIENTS["rules"]},
        }
    )

    async def main() -> list[Any]:
        writer = derived_writer(config)
        try:
            assert await writer.write_lines(["water_quality_hourly,device=wq-1 ph=7.2,ph.n=45i 3600000"]) == []
        finally:
            await writer.close()
        async with InfluxQuery(config) as q:
            return [row for s in await q.query('SELECT "ph" FROM "water_quality_hourly"') for row in s.values]

    assert asyncio.run(main()) == [[3600000, 7.2]]
