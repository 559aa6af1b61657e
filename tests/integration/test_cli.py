"""The ``lifeline`` command as a user runs it: profiles validate, edge --plan, simulate + edge, up."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from device_profiles import CATALOGUE
from infra.mqtt import BrokerConfig, TlsConfig
from lifeline.broker_auth import credential, platform_accounts, scenario_deployment, write_credentials
from lifeline.cli import main
from simulators import load_scenario
from telemetry import Sample, Telemetry, decode_telemetry, encode, topics
from testing import Influxd, Mosquitto
from tests.helpers import Publisher, Subscriber, probe, refused

ROOT = Path(__file__).resolve().parents[2]


def test_profiles_validate_accepts_the_shipped_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "validate", str(ROOT / "device_profiles")]) == 0
    assert "15 profile(s) in 15 file(s) are valid" in capsys.readouterr().out  # the catalogue and examples/


def test_profiles_validate_names_file_line_point_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, broken)
    path = broken / "water_quality_station.yaml"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "name: nh3_n" in line)
    lines[index] = lines[index].replace("type: float32", "type: float33")
    path.write_text("\n".join(lines) + "\n")
    assert main(["profiles", "validate", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{index + 1}:" in err
    assert "(nh3_n).type" in err
    assert "'float32'" in err  # the reason lists what is allowed


def test_profiles_validate_missing_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "validate", "no/such/place"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_edge_plan_prints_requests_without_polling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: s\ndevices:\n"
        "  - {id: wq, profile: water_quality_station, host: 127.0.0.1, port: 1}\n"
        "  - {id: gate, profile: sluice_gate_plc, host: 127.0.0.1, port: 1, unit_id: 3}\n"
        "  - {id: gas, profile: gas_detector, source_id: GD-1}\n"
    )
    assert main(["edge", "--config", str(site), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "wq (water_quality_station, 127.0.0.1:1 unit 1, every 1 s): 1 request(s) for 10 points" in out
    assert re.search(r"FC04 input_register\s+start=0\s+count=20\s+points: ph, do, codmn", out)
    assert "gate (sluice_gate_plc, 127.0.0.1:1 unit 3, every 1 s): 3 request(s)" in out
    assert "gas (gas_detector, MQTT): subscribes to vendor/gasdet/GD-1/up" in out


def test_edge_bad_config_exits_1_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("site: s\ndevices:\n  - {id: wq, profile: water_quality, host: 127.0.0.1}\n")
    assert main(["edge", "--config", str(site)]) == 1
    assert f"{site}:3: device 'wq', field profile: unknown profile 'water_quality'" in capsys.readouterr().err


def mini_accounts(broker: Mosquitto, folder: Path) -> Path:
    """The mini district's accounts on ``broker`` and their credentials in ``folder``, as ``lifeline broker config``
    would write them for an external broker."""
    accounts = platform_accounts(scenario_deployment(load_scenario("mini")))
    write_credentials(folder, accounts)
    for account in accounts:
        broker.add(account)
    return folder


def _lifeline(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lifeline", *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(15)


@pytest.mark.integration
def test_simulate_and_edge_put_every_scenario_device_on_the_broker(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    credentials = mini_accounts(mosquitto, tmp_path / "credentials")
    sub = Subscriber(mosquitto, topics.telemetry_filter())
    sim = _lifeline(
        "simulate",
        "--scenario",
        "mini",
        "--broker",
        f"{mosquitto.host}:{mosquitto.port}",
        "--credentials",
        str(credentials),
        "--sites-dir",
        str(sites),
        "--duration",
        "60",
        log=tmp_path / "sim.log",
    )
    edges = []
    try:
        deadline = time.monotonic() + 20
        while len(list(sites.glob("*.yaml"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        configs = sorted(sites.glob("*.yaml"))
        assert [p.stem for p in configs] == ["mini-safety", "mini-water"], (tmp_path / "sim.log").read_text()
        edges = [_lifeline("edge", "--config", str(p), log=tmp_path / f"{p.stem}.log") for p in configs]
        expected = {("mini-water", d) for d in ("gate-1", "wq-1", "air-1", "cems-1")} | {
            ("mini-safety", d) for d in ("gas-1", "fire-1", "noise-1")
        }

        def seen(ms: list) -> set[tuple[str, str]]:  # type: ignore[type-arg]
            return {(decode_telemetry(m.payload).site, decode_telemetry(m.payload).device) for m in ms}

        assert seen(sub.wait_for(lambda ms: seen(ms) >= expected, timeout=20)) >= expected
    finally:
        for proc in edges:
            _stop(proc)
        _stop(sim)
        sub.close()
    for proc in [sim, *edges]:
        assert proc.returncode == 0  # SIGTERM is a clean stop


@pytest.mark.integration
def test_up_runs_the_district_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lifeline",
            "up",
            "--scenario",
            "mini",
            "--mqtt-port",
            "0",
            "--influx-port",
            "0",
            "--data-dir",
            str(tmp_path / "up"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        port, influx_url = _up_servers(proc, lines)
        up = tmp_path / "up"
        tls = TlsConfig(ca_file=up / "tls" / "ca.pem")
        as_user = {
            name: credential(up / "credentials", name, BrokerConfig(port=port, tls=tls))
            for name in ("observer", "deadletter-replay")
        }
        sub = Subscriber(None, topics.telemetry_filter(), account=as_user["observer"])
        got = sub.wait_for(
            lambda ms: {decode_telemetry(m.payload).device for m in ms} >= {"gate-1", "wq-1", "gas-1"}, timeout=20
        )
        assert got
        sub.close()

        reader = ("lifeline-api", (up / "credentials" / "influx-api.password").read_text().strip())
        q = 'SELECT last("ph") FROM "water_quality"'

        def stored() -> list[object]:
            resp = httpx.get(f"{influx_url}/query", params={"db": "lifeline", "q": q}, auth=reader)
            series = resp.json()["results"][0].get("series", [])
            return series[0]["values"] if series else []

        deadline = time.monotonic() + 20
        while not stored() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored(), "no reading reached InfluxDB"

        # closed by default: InfluxDB refuses anonymous reads, writes and drops; MQTT refuses anonymous clients
        assert httpx.get(f"{influx_url}/query", params={"db": "lifeline", "q": q}).status_code == 401
        assert httpx.post(f"{influx_url}/write", params={"db": "lifeline"}, content=b"m v=1").status_code == 401
        drop = {"db": "lifeline", "q": 'DROP MEASUREMENT "water_quality"'}
        assert httpx.post(f"{influx_url}/query", params=drop, auth=reader).status_code == 403  # a reader drops nothing
        refused(BrokerConfig(port=port, tls=tls))  # no client certificate: the broker takes no connection
        # an account cannot publish telemetry it was not granted, nor join the bridge's group (the observer's: an
        # edge's identity would take the running agent's session, which then takes it back; every account's grants
        # against a real broker: test_broker_identity.py)
        other_site = probe(
            as_user["observer"],
            publish=topics.telemetry("mini-safety", "gas-1"),
            subscribe="$share/lifeline-bridge/lifeline/v1/+/+/telemetry",
        )
        assert other_site.puback == "Not authorized"
        assert other_site.suback == "Not authorized"

        # the rules service runs the shipped packs: a gas reading at 60 %LEL is notified on the MQTT channel
        notes = Subscriber(None, "lifeline/v1/alerts/notify/#", account=as_user["observer"])
        # a real device of the district (the engine refuses any other, and a body unlike its profile)
        leak = Telemetry(
            site="mini-safety",
            device="gas-1",
            profile="gas_detector",
            measurement="gas_safety",
            seq=1,
            samples=[Sample(ts=int(time.time() * 1000), values={"lel": 60.0})],
        )
        # sent as the dead-letter replay account (it may publish any site's telemetry; no running client uses it):
        # the edge's own identity would take the running agent's session, which the agent then takes back
        pub = Publisher(None, account=as_user["deadletter-replay"])
        deadline = time.monotonic() + 20
        while not notes.snapshot() and time.monotonic() < deadline:
            pub.send(topics.telemetry("mini-safety", "gas-1"), encode(leak))  # until the engine has subscribed
            time.sleep(0.5)
        pub.close()
        (note, *_) = notes.wait_for(bool, timeout=5)
        notes.close()
        assert note.topic == "lifeline/v1/alerts/notify/safety"
        assert orjson.loads(note.payload)["device"] == "gas-1"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    text = "".join(lines) + out.decode()
    assert proc.returncode == 0, text
    assert "stopped" in text
    assert (tmp_path / "up" / "sites" / "mini-water.yaml").exists()
    assert (tmp_path / "up" / "alerts.db").exists()
    from api.config import load_config as load_api_config

    api = load_api_config(tmp_path / "up" / "api.yaml")  # the HJ 212 stations' site is a site like any other
    assert (api.areas["mini-sources"], "mini-sources" in api.district.sites) == (["mini-sources"], True)


@pytest.mark.integration
def test_up_uses_an_external_broker_and_influxdb_from_its_config(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path
) -> None:
    deploy = tmp_path / "deploy.yaml"
    credentials = mini_accounts(mosquitto, tmp_path / "credentials")
    deploy.write_text(
        f"scenario: mini\ndata_dir: {tmp_path / 'up'}\n"
        f"broker: {{host: {mosquitto.host}, port: {mosquitto.port}}}\nbroker_credentials: {credentials}\n"
        f"influx: {{url: '{influxdb.url}', database: district, create_database: true}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "lifeline", "up", "--config", str(deploy), "--duration", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:

        def stored() -> list[object]:
            q = 'SELECT last("ph") FROM "water_quality"'
            resp = httpx.get(f"{influxdb.url}/query", params={"db": "district", "q": q}, timeout=5)
            series = resp.json()["results"][0].get("series", [])
            return series[0]["values"] if series else []

        deadline = time.monotonic() + 30
        while not stored() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert stored(), "no reading reached the external InfluxDB"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"mosquitto on {mosquitto.host}:{mosquitto.port} (external)" in text
    assert f"influxd on {influxdb.url}, database 'district' (external)" in text
    assert not (tmp_path / "up" / "mosquitto").exists()  # nothing local was started


def test_rules_validate_accepts_the_shipped_packs_and_names_a_broken_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "validate", str(ROOT / "rules" / "packs")]) == 0
    assert "gas.lel" in capsys.readouterr().out
    broken = tmp_path / "gas.yaml"
    text = (ROOT / "rules" / "packs" / "gas.yaml").read_text()
    assert "value: 50" in text
    broken.write_text(text.replace("value: 50", "value: fifty", 1))
    line = next(i for i, row in enumerate(broken.read_text().splitlines(), 1) if "value: fifty" in row)
    assert main(["rules", "validate", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}:{line}: rule 'gas.lel'" in err
    assert "value" in err


UP_MINI = (sys.executable, "-m", "lifeline", "up", "--scenario", "mini", "--mqtt-port", "0", "--influx-port", "0")


def _up_servers(proc: subprocess.Popen[bytes], lines: list[str], timeout_s: float = 60) -> tuple[int, str]:
    """The broker's port and InfluxDB's URL that a starting ``lifeline up`` prints (its lines kept in ``lines``)."""
    assert proc.stdout is not None
    port: int | None = None
    influx_url: str | None = None
    deadline = time.monotonic() + timeout_s
    while not (port and influx_url) and time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        found = re.search(r"mosquitto on 127\.0\.0\.1:(\d+)", line)
        port = int(found.group(1)) if found else port
        found = re.search(r"influxd on (http://127\.0\.0\.1:\d+)", line)
        influx_url = found.group(1) if found else influx_url
    assert port, "".join(lines)
    assert influx_url, "".join(lines)
    return port, influx_url


def _run_up(data_dir: Path, since_ms: int) -> str:
    """One ``lifeline up --scenario mini`` on ``data_dir``: its clients connect (the observer hears the edges) and a
    water reading sampled after ``since_ms`` reaches InfluxDB; then a clean stop. Its output."""
    proc = subprocess.Popen(
        [*UP_MINI, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        port, influx_url = _up_servers(proc, lines)
        observer = credential(data_dir / "credentials", "observer", BrokerConfig(port=port, tls=_ca(data_dir)))
        sub = Subscriber(None, topics.telemetry_filter(), account=observer)
        heard = sub.wait_for(lambda ms: {decode_telemetry(m.payload).device for m in ms} >= {"wq-1", "gas-1"}, 30)
        sub.close()
        assert heard, "the edges' telemetry did not reach the broker"
        reader = ("lifeline-api", (data_dir / "credentials" / "influx-api.password").read_text().strip())
        q = f'SELECT count("ph") FROM "water_quality" WHERE time > {since_ms}ms'

        def stored() -> int:
            resp = httpx.get(f"{influx_url}/query", params={"db": "lifeline", "q": q}, auth=reader, timeout=5)
            series = resp.json()["results"][0].get("series", [])
            return int(series[0]["values"][0][1]) if series else 0

        deadline = time.monotonic() + 30
        while not stored() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert stored(), "no reading of this run reached InfluxDB"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    text = "".join(lines) + out.decode()
    assert proc.returncode == 0, text
    return text


def _ca(data_dir: Path) -> TlsConfig:
    return TlsConfig(ca_file=data_dir / "tls" / "ca.pem")


@pytest.mark.integration
def test_up_twice_on_one_data_folder_keeps_accounts_passwords_and_data(tmp_path: Path) -> None:
    """A second ``lifeline up`` on the same data folder: every client still gets in (the broker's accounts file and
    the credential files agree), the keys and passwords are the first run's, and new readings are stored."""
    data_dir = tmp_path / "up"
    _run_up(data_dir, since_ms=0)
    credentials = data_dir / "credentials"
    first = {p.name: p.read_bytes() for p in sorted(credentials.glob("*.password"))}
    keys = {p.name: p.read_bytes() for p in sorted((data_dir / "keys").rglob("*")) if p.is_file()}
    assert first
    assert keys
    second_start_ms = int(time.time() * 1000)
    text = _run_up(data_dir, since_ms=second_start_ms)
    assert {p.name: p.read_bytes() for p in sorted(credentials.glob("*.password"))} == first
    assert {p.name: p.read_bytes() for p in sorted((data_dir / "keys").rglob("*")) if p.is_file()} == keys
    assert "not authori" not in text.lower(), text
