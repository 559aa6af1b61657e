"""The deployment spec (``lifeline.deployment``): the worked example loads; a key that would be ignored is an error
naming the file, the line and the key; the accounts, the rules engines and the API are derived from the one spec;
no secret shows in a repr, a str or a dump of the spec or of what is derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.config_loader import ConfigError
from lifeline.broker_auth import platform_accounts
from lifeline.deployment import DeploymentSpec, load_spec

EXAMPLE = Path(__file__).parents[2] / "docs" / "deployment.example.yaml"
SITES = ["yunzaobang-sluices", "lianqi-sluices", "env-monitoring", "emission-sources", "work-safety", "baoshan-sources"]
ENV = {
    "LIFELINE_INFLUX_PASSWORD": "influx-pw-from-env",
    "LIFELINE_SMTP_PASSWORD": "smtp-pw-from-env",
    "LIFELINE_DINGTALK_URL": "https://robot.invalid/robot/send?access_token=ding-token-from-env",
    "LIFELINE_DINGTALK_SECRET": "SEC-ding-from-env",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return ENV


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_worked_example_loads_and_names_every_site(env: dict[str, str]) -> None:
    spec = load_spec(EXAMPLE)
    spec.check_sites(SITES, EXAMPLE)
    assert spec.broker is not None
    assert spec.broker.host == "mqtt.district.example"
    assert [p.label for p in spec.rules_partitions] == ["north", "south"]
    assert spec.areas_of(SITES)["wusong"] == ["yunzaobang-sluices", "emission-sources", "baoshan-sources"]
    accounts = {a.username for a in platform_accounts(spec.inventory(SITES))}
    assert {"bridge-1", "bridge-2-pub", "rules-north", "rules-south-pub", "api", "observer"} <= accounts
    assert "rules-1" not in accounts  # partitioned: no unsplit engine's account


IGNORED = [
    pytest.param("scenario: mini\nbrokr: {host: x}\n", 2, "brokr", "Extra inputs", id="unknown-key"),
    pytest.param(
        "scenario: mini\nrules:\n  tick_s: 1\n  broker: {host: other}\n",
        4,
        "rules.broker",
        "would be ignored",
        id="rules-broker",
    ),
    pytest.param("rules:\n  packs: [x]\n", 2, "rules.packs", "rule_packs", id="rules-packs"),
    pytest.param(
        "broker:\n  host: h\n  username: u\nbroker_credentials: c\n",
        3,
        "broker.username",
        "own account",
        id="broker-account",
    ),
    pytest.param(
        "broker:\n  host: h\n  password_file: p\nbroker_credentials: c\n",
        3,
        "broker.password_file",
        "own account",
        id="broker-password-file",
    ),
    pytest.param("broker_credentials: c\n", 1, "broker_credentials", "local broker", id="credentials-without-broker"),
    pytest.param("broker: {host: h}\n", 1, "broker", "needs broker_credentials", id="broker-without-credentials"),
    pytest.param("areas: {a: [s1]}\nalerts:\n  areas: {b: [s2]}\n", 3, "alerts.areas", "once", id="areas-twice"),
    pytest.param(
        "rules_partitions:\n  - {name: a, sites: [s1]}\n  - {name: b, sites: [s1], windows: true}\n",
        3,
        "rules_partitions[1] (b)",
        "already in partition",
        id="site-in-two-partitions",
    ),
    pytest.param(
        "rules_partitions:\n  - {name: a, sites: [s1]}\n  - {name: b, sites: [s2]}\n",
        1,
        "rules_partitions",
        "exactly one partition runs the window rules",
        id="no-windows-partition",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "reason"), IGNORED)
def test_a_key_that_would_be_ignored_names_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, reason: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:{line}: deployment, field {key}"), problem
    assert reason in problem


def test_areas_and_partitions_name_sites_of_the_deployment(tmp_path: Path) -> None:
    text = "areas:\n  north: [s1, nowhere]\nrules_partitions:\n  - {name: a, sites: [s1], windows: true}\n"
    path = _write(tmp_path, text)
    spec = load_spec(path)
    with pytest.raises(ConfigError) as caught:
        spec.check_sites(["s1", "s2"], path)
    problems = caught.value.problems
    assert f"{path}:2: deployment, field areas.north[1]: site 'nowhere' is not in this deployment" in problems
    assert any(p.startswith(f"{path}:3: deployment, field rules_partitions") and "s2" in p for p in problems)


def test_a_site_in_no_area_is_its_own_area() -> None:
    spec = DeploymentSpec(areas={"north": ["s1", "s2"]})
    assert spec.areas_of(["s1", "s2", "s3"]) == {"north": ["s1", "s2"], "s3": ["s3"]}


def test_the_engines_run_the_spec_packs_with_their_own_partition(tmp_path: Path) -> None:
    pack = tmp_path / "pack.yaml"
    spec = DeploymentSpec(
        rule_packs=[pack],
        rules_partitions=yaml.safe_load("[{name: a, sites: [s1], windows: true}, {name: b, sites: [s2]}]"),
    )
    configs = [spec.rules_config(p) for p in spec.partitions()]
    assert [c.packs for c in configs] == [[pack.resolve()], [pack.resolve()]]
    assert [c.partition.label if c.partition else None for c in configs] == ["a", "b"]
    assert DeploymentSpec().partitions() == [None]  # unsplit: one engine


def test_no_secret_shows_in_the_spec(env: dict[str, str]) -> None:
    spec = load_spec(EXAMPLE)
    shown = [repr(spec), str(spec), str(spec.model_dump()), spec.model_dump_json()]
    for text in shown:
        for secret in env.values():
            assert secret not in text
        assert "ding-token-from-env" not in text


def test_broker_config_takes_the_accounts_counts_from_the_spec(tmp_path: Path) -> None:
    from lifeline.cli import main

    spec = _write(
        tmp_path,
        "bridges: 2\nrules_partitions:\n  - {name: water, sites: [mini-water], windows: true}\n"
        "  - {name: rest, sites: [mini-safety, mini-sources]}\n",
    )
    out = tmp_path / "broker"
    assert main(["broker", "config", "--scenario", "mini", "--deployment", str(spec), "--out", str(out)]) == 0
    dynsec = yaml.safe_load((out / "dynamic-security.json").read_text(encoding="utf-8"))
    users = {c["username"] for c in dynsec["clients"]}
    assert {"bridge-2", "bridge-2-pub", "rules-water", "rules-rest-pub"} <= users
    assert "rules-1" not in users
    bad = _write(tmp_path, "rules_partitions:\n  - {name: water, sites: [mini-water], windows: true}\n")
    assert main(["broker", "config", "--scenario", "mini", "--deployment", str(bad), "--out", str(out)]) == 1


def test_a_rules_service_file_with_its_own_rules_broker_is_refused(tmp_path: Path) -> None:
    """The rules service connects with its ``broker`` section; a ``rules.broker`` would be silently replaced."""
    from lifeline.rules_cli import load_rules_service_config

    path = tmp_path / "rules.yaml"
    path.write_text("broker: {host: 127.0.0.1}\nrules:\n  tick_s: 1\n  broker: {host: elsewhere}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules_service_config(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:4: rules service config, field rules.broker: would be ignored")


def test_the_spec_sites_give_the_production_accounts_and_up_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifeline.cli import main

    site = tmp_path / "north-sluices.yaml"
    gate = {"id": "gate-1", "profile": "sluice_gate_plc", "host": "192.0.2.10", "control": {"max_head_open_m": 2.0}}
    site.write_text(yaml.safe_dump({"site": "north-sluices", "devices": [gate]}), encoding="utf-8")
    spec = _write(tmp_path, f"sites: [{site}]\nbridges: 2\nareas: {{north: [north-sluices]}}\n")
    out = tmp_path / "broker"
    assert main(["broker", "config", "--deployment", str(spec), "--out", str(out)]) == 0
    dynsec = yaml.safe_load((out / "dynamic-security.json").read_text(encoding="utf-8"))
    users = {c["username"] for c in dynsec["clients"]}
    assert {"edge-north-sluices", "bridge-2", "rules-1", "api"} <= users
    assert not any(u.startswith("sim-") for u in users)  # a real district: no simulated sensors' account
    capsys.readouterr()
    assert main(["up", "--config", str(spec), "--data-dir", str(tmp_path / "up")]) == 1
    assert f"{spec}:1: deployment, field sites: would be ignored" in capsys.readouterr().err


def test_configs_only_derives_every_service_config_of_a_real_district(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lifeline up --configs-only``: the edge, bridge, rules and API configs of the spec's real sites, each valid
    for its service's own loader, on the external broker and InfluxDB, with the accounts of ``lifeline broker
    config --deployment`` of the same spec; no password in any of them."""
    from api.config import load_config as load_api_config
    from broker_bridge.config import load_bridge_config
    from edge_agent.config import load_site
    from lifeline.cli import main
    from lifeline.rules_cli import load_rules_service_config

    site = tmp_path / "in" / "north-sluices.yaml"
    site.parent.mkdir()
    gate = {
        "id": "gate-1",
        "profile": "sluice_gate_plc",
        "host": "192.0.2.10",
        "control": {"max_head_open_m": 2.0, "max_opening_m": 6.0},
    }
    site.write_text(yaml.safe_dump({"site": "north-sluices", "devices": [gate]}), encoding="utf-8")
    broker_dir = tmp_path / "broker"
    spec = _write(
        tmp_path,
        f"data_dir: {tmp_path / 'out'}\nsites: [{site}]\n"
        "broker: {host: mqtt.example, port: 8883}\n"
        f"broker_credentials: {broker_dir / 'credentials'}\n"
        "influx: {url: 'https://influx.example:8086', username: lifeline, password: {env: LL_X}}\n"
        "areas: {north: [north-sluices]}\n",
    )
    assert main(["broker", "config", "--deployment", str(spec), "--out", str(broker_dir)]) == 0
    assert main(["up", "--config", str(spec), "--configs-only"]) == 0
    out = tmp_path / "out"
    edge = load_site(out / "sites" / "north-sluices.yaml").config
    assert (edge.broker.host, edge.broker.username) == ("mqtt.example", "edge-north-sluices")
    bridge = load_bridge_config(out / "bridge.yaml")
    assert (bridge.influx.url, bridge.broker.username) == ("https://influx.example:8086", "bridge-1")
    rules = load_rules_service_config(out / "rules.yaml")
    assert rules.alerts.areas == {"north": ["north-sluices"]}
    api = load_api_config(out / "api.yaml")
    (limits,) = api.gates.devices
    assert (limits.full_opening_m, limits.max_opening_m, limits.max_head_open_m) == (6.5, 6.0, 2.0)
    assert str(out / "api.yaml") in capsys.readouterr().out
    for path in (out / "sites" / "north-sluices.yaml", out / "bridge.yaml", out / "rules.yaml", out / "api.yaml"):
        text = path.read_text(encoding="utf-8")
        for credential in (broker_dir / "credentials").iterdir():
            assert credential.read_text(encoding="utf-8").strip() not in text


def test_the_hj212_stations_sites_are_sites_of_a_real_district(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spec's HJ 212 ingest config (``hj212``): its stations' sites are in the areas of the API and the alerts, the
    bridges and engines know their devices, the ingest gets its account and its config; ``lifeline up`` refuses it."""
    from api.config import load_config as load_api_config
    from edge_agent.config import load_site
    from edge_agent.hj212 import load_config as load_hj212_config
    from lifeline.cli import main
    from lifeline.rules_cli import load_rules_service_config

    inp = tmp_path / "in"
    inp.mkdir()
    site = inp / "north-sluices.yaml"
    gate = {"id": "gate-1", "profile": "sluice_gate_plc", "host": "192.0.2.10", "control": {"max_head_open_m": 2.0}}
    site.write_text(yaml.safe_dump({"site": "north-sluices", "devices": [gate]}), encoding="utf-8")
    passwords = inp / "hj212-passwords.yaml"
    passwords.write_text("CEMS0001: '123456'\n", encoding="utf-8")
    passwords.chmod(0o600)
    station: dict[str, object] = {"mn": "CEMS0001", "site": "plant-7", "device": "cems-1"}
    station |= {"profile": "flue_gas_cems_hj212", "tags": {"source": "coal_power", "o2_ref": "6"}}
    key = inp / "outlet.key"
    key.write_text("0123456789abcdef0123456789abcdef\n", encoding="utf-8")
    key.chmod(0o600)
    pw = inp / "outlet.pw"
    pw.write_text("654321\n", encoding="utf-8")
    pw.chmod(0o600)
    outlet: dict[str, object] = {"mn": "WW0001", "site": "plant-7", "device": "outlet-1"}
    outlet |= {"profile": "wastewater_outlet_hj212", "password": "file:outlet.pw"}  # relative to the config
    outlet |= {"version": 2025, "sm4_key": {"file": "outlet.key"}}
    hj212 = inp / "hj212.yaml"
    hj212.write_text(
        yaml.safe_dump({"passwords_file": "hj212-passwords.yaml", "stations": [station, outlet]}), encoding="utf-8"
    )
    broker_dir = tmp_path / "broker"
    spec = _write(
        tmp_path,
        f"data_dir: {tmp_path / 'out'}\nsites: [{site}]\nhj212: {hj212}\n"
        "broker: {host: mqtt.example, port: 8883}\n"
        f"broker_credentials: {broker_dir / 'credentials'}\n"
        "influx: {url: 'https://influx.example:8086'}\n"
        "areas: {north: [north-sluices, plant-7]}\n",
    )
    assert load_spec(spec).hj212_sites() == ["plant-7"]
    assert main(["broker", "config", "--deployment", str(spec), "--out", str(broker_dir)]) == 0
    dynsec = yaml.safe_load((broker_dir / "dynamic-security.json").read_text(encoding="utf-8"))
    assert "hj212" in {c["username"] for c in dynsec["clients"]}
    assert main(["up", "--config", str(spec), "--configs-only"]) == 0
    out = tmp_path / "out"
    assert load_api_config(out / "api.yaml").areas == {"north": ["north-sluices", "plant-7"]}
    assert load_rules_service_config(out / "rules.yaml").alerts.areas == {"north": ["north-sluices", "plant-7"]}
    sources = load_site(out / "sites" / "plant-7.yaml").config  # what the bridges and engines know of its devices
    devices = {"cems-1": "flue_gas_cems_hj212", "outlet-1": "wastewater_outlet_hj212"}
    assert {d.id: d.profile for d in sources.devices} == devices
    ingest = load_hj212_config(out / "hj212.yaml")  # its own loader: passwords file, key file, profiles found
    assert ingest.config.broker.username == "hj212"
    assert ingest.devices() == {("plant-7", device): profile for device, profile in devices.items()}
    capsys.readouterr()
    plain = _write(tmp_path, f"hj212: {hj212}\n")
    assert main(["up", "--config", str(plain), "--data-dir", str(tmp_path / "up")]) == 1
    assert f"{plain}:1: deployment, field hj212: would be ignored" in capsys.readouterr().err


def test_an_area_may_not_name_an_unknown_source_site(tmp_path: Path) -> None:
    hj212 = tmp_path / "hj212.yaml"
    hj212.write_text(yaml.safe_dump({"stations": [{"mn": "A1", "site": "plant-7", "device": "c", "profile": "p"}]}))
    spec = DeploymentSpec(hj212=hj212, areas={"north": ["plant-7", "plant-8"]})
    with pytest.raises(ConfigError, match="'plant-8' is not in this deployment"):
        spec.check_sites(spec.hj212_sites())
    spec.check_sites([*spec.hj212_sites(), "plant-8"])
