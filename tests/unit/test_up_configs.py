"""``lifeline up`` builds each service's typed config and writes it with one writer: every file it writes is valid
for the service's own loader, is 0600, and holds only what differs from the defaults. Sites are read by the edge's
loader: a gate without ``full_opening_m`` takes the top of its profile's ``gate_opening`` range, as at the edge, and
one whose profile gives no range is refused with the file and the field named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from api.config import load_config as load_api_config
from broker_bridge.config import load_bridge_config
from edge_agent.config import load_site
from edge_agent.hj212 import load_config as load_hj212_config
from infra.config_loader import ConfigError
from infra.mqtt import BrokerConfig
from infra.secret import Secret, write_secret_file
from lifeline.broker_auth import hj212_site
from lifeline.deployment import DeploymentSpec
from lifeline.rules_cli import load_rules_service_config
from lifeline.up import Stack, _add_local_settings, _api_config, _bridge_config, _hj212, _rules_config
from storage.connection import InfluxConfig
from telemetry.keys import create_site_keys

SITE = "yunzaobang"
ACCOUNTS = ["api", "bridge-1", "bridge-1-pub", "rules-1", "rules-1-pub", "hj212", f"edge-{SITE}"]


def _site_file(folder: Path) -> Path:
    """A site of one gate whose control section has no full_opening_m (nor max_opening_m)."""
    folder.mkdir(parents=True)
    path = folder / f"{SITE}.yaml"
    gate = {
        "id": "gate-1",
        "profile": "sluice_gate_plc",
        "host": "127.0.0.1",
        "port": 1502,
        "control": {"max_head_open_m": 3.0, "timeout_s": 40},
    }
    path.write_text(yaml.safe_dump({"site": SITE, "devices": [gate]}), encoding="utf-8")
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    credentials = tmp_path / "credentials"
    for name in ACCOUNTS:
        write_secret_file(credentials / f"{name}.password", f"pw-{name}\n")
    users = {}
    for s in ("bridge", "rules", "api"):
        write_secret_file(credentials / f"influx-{s}.password", f"influx-pw-of-{s}\n")
        users[s] = Secret(file=credentials / f"influx-{s}.password")
    influx = InfluxConfig(url="http://127.0.0.1:8086", database="lifeline")
    return Stack(broker=BrokerConfig(), influx=influx, credentials=credentials, api_port=8181, influx_users=users)


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_config_up_writes_loads_with_its_service_loader(tmp_path: Path, stack: Stack) -> None:
    deploy = DeploymentSpec(data_dir=tmp_path)
    site_file = _site_file(tmp_path / "sites")
    keys = tmp_path / "keys"
    create_site_keys(keys, [SITE])

    port = _add_local_settings(SITE, site_file, tmp_path / "edge" / SITE, stack, keys)
    edge = load_site(site_file).config
    assert _private(site_file)
    assert (edge.metrics_port, edge.broker.username, edge.state_dir) == (port, f"edge-{SITE}", tmp_path / "edge" / SITE)
    assert edge.control_public_key is not None
    assert edge.control_public_key.is_absolute()

    bridge = load_bridge_config(_bridge_config(tmp_path, stack, deploy, 9101))
    assert bridge.influx.username == "lifeline-bridge"
    assert bridge.influx.password is not None
    assert bridge.influx.password.reveal() == "influx-pw-of-bridge"  # read from its file: no password is in the config
    assert bridge.publisher is not None
    assert bridge.publisher.username == "bridge-1-pub"
    assert bridge.validation.sites == [(tmp_path / "sites").resolve()]

    rules = load_rules_service_config(_rules_config(tmp_path, stack, deploy, 9102))
    assert rules.influx is not None
    assert rules.influx.username == "lifeline-rules"
    assert rules.alerts.store_url.endswith("alerts.db")
    assert set(rules.alerts.notify.channels) == {"bus"}

    child, _fleet = _hj212(tmp_path, stack, "demo")
    hj212 = load_hj212_config(Path(child.argv[-1]))
    cems = next(s for s in hj212.stations.values() if s.config.device == "cems-1")
    assert cems.config.tags == {"source": "coal_power", "o2_ref": "6"}
    assert cems.password
    assert load_site(tmp_path / "sites" / f"{hj212_site('demo')}.yaml").config.site == hj212_site("demo")

    api_file = _api_config(tmp_path, stack, {SITE: site_file}, keys)
    api = load_api_config(api_file)
    assert api.listen.port == 8181
    assert api.influx.username == "lifeline-api"
    assert api.areas == {SITE: [SITE]}
    assert set(api.site_keys) == {SITE}
    for path in (tmp_path / "bridge.yaml", tmp_path / "rules.yaml", tmp_path / "hj212.yaml", api_file):
        assert _private(path), path


def test_a_gate_without_full_opening_takes_the_profile_range(tmp_path: Path, stack: Stack) -> None:
    site_file = _site_file(tmp_path / "sites")
    keys = tmp_path / "keys"
    create_site_keys(keys, [SITE])
    _add_local_settings(SITE, site_file, tmp_path / "edge" / SITE, stack, keys)
    api = load_api_config(_api_config(tmp_path, stack, {SITE: site_file}, keys))
    (gate,) = api.gates.devices
    # sluice_gate_plc's gate_opening range is [0, 6.5] m; max_opening_m defaults to the full opening too
    assert (gate.site, gate.device, gate.full_opening_m, gate.min_opening_m, gate.max_opening_m) == (
        SITE,
        "gate-1",
        6.5,
        0,
        6.5,
    )
    assert gate.max_head_open_m == 3.0
    assert gate.max_head_close_m is None
    assert api.gates.edge_timeout_s == 40 + 30  # the slowest gate's movement time-out, and a margin


def test_up_writes_only_what_differs_from_the_defaults(tmp_path: Path, stack: Stack) -> None:
    data = yaml.safe_load(_bridge_config(tmp_path, stack, DeploymentSpec(data_dir=tmp_path), 9101).read_text())
    assert "batch" not in data
    assert "retry" not in data
    assert "subscription" not in data
    assert data["broker"]["username"] == "bridge-1"
    assert set(data["broker"]["password"]) == {"file"}  # a reference to the 0600 file, never the password
    assert set(data["influx"]["password"]) == {"file"}


def test_a_gate_whose_profile_gives_no_range_is_refused_naming_file_and_field(tmp_path: Path, stack: Stack) -> None:
    catalogue = Path(__file__).parents[2] / "device_profiles" / "catalogue" / "sluice_gate_plc.yaml"
    text = catalogue.read_text(encoding="utf-8").replace("name: sluice_gate_plc", "name: gate_without_range")
    (tmp_path / "gate_without_range.yaml").write_text(text.replace(" range: [0, 6.5],", ""), encoding="utf-8")
    site_file = _site_file(tmp_path / "sites")
    doc = yaml.safe_load(site_file.read_text(encoding="utf-8"))
    doc["profile_paths"] = [str(tmp_path / "gate_without_range.yaml")]
    doc["devices"][0]["profile"] = "gate_without_range"
    site_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    keys = tmp_path / "keys"
    create_site_keys(keys, [SITE])
    with pytest.raises(ConfigError) as caught:
        _add_local_settings(SITE, site_file, tmp_path / "edge" / SITE, stack, keys)
    (problem,) = caught.value.problems
    assert str(site_file) in problem
    assert "field control.full_opening_m" in problem


def test_no_password_shows_in_the_deployment_or_any_config_derived_from_it(
    tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MQTT and InfluxDB passwords and the notifier's secrets never appear in a repr, a str or a dump of the
    deployment and of the configs derived from it, nor in the files written for the services."""
    monkeypatch.setenv("LL_TEST_SMTP", "smtp-secret-7")
    inline = stack.influx.model_copy(update={"password": Secret(value="influx-inline-9")})
    stack = Stack(
        broker=stack.broker,
        influx=inline,
        credentials=stack.credentials,
        api_port=8181,
        influx_users=stack.influx_users,
    )
    deploy = DeploymentSpec.model_validate(
        {
            "data_dir": str(tmp_path),
            "alerts": {
                "notify": {
                    "channels": {
                        "mail": {
                            "type": "email",
                            "host": "smtp.invalid",
                            "sender": "a@b.c",
                            "to": ["d@e.f"],
                            "username": "u",
                            "password": "env:LL_TEST_SMTP",
                        }
                    },
                    "routes": [{"channels": ["mail"]}],
                }
            },
        }
    )
    site_file = _site_file(tmp_path / "sites")
    keys = tmp_path / "keys"
    create_site_keys(keys, [SITE])
    _add_local_settings(SITE, site_file, tmp_path / "edge" / SITE, stack, keys)
    files = [
        _bridge_config(tmp_path, stack, deploy, 9101),
        _rules_config(tmp_path, stack, deploy, 9102),
        _api_config(tmp_path, stack, {SITE: site_file}, keys, deploy=deploy),
        site_file,
    ]
    configs = [
        deploy,
        load_bridge_config(files[0]),
        load_rules_service_config(files[1]),
        load_api_config(files[2]),
        load_site(site_file).config,
        inline,
    ]
    secrets = [
        "smtp-secret-7",
        "influx-inline-9",
        *(f"pw-{name}" for name in ACCOUNTS),
        *(f"influx-pw-of-{s}" for s in ("bridge", "rules", "api")),
    ]
    shown = [text for c in configs for text in (repr(c), str(c), str(c.model_dump()), c.model_dump_json())]
    shown += [path.read_text(encoding="utf-8") for path in files]
    for text in shown:
        for secret in secrets:
            assert secret not in text


def test_the_api_shows_the_rule_packs_the_engines_run(tmp_path: Path, stack: Stack) -> None:
    pack = tmp_path / "our-rules.yaml"
    pack.write_text("rules: []\n", encoding="utf-8")
    deploy = DeploymentSpec(data_dir=tmp_path, rule_packs=[pack], areas={"north": [SITE]})
    site_file = _site_file(tmp_path / "sites")
    keys = tmp_path / "keys"
    create_site_keys(keys, [SITE])
    _add_local_settings(SITE, site_file, tmp_path / "edge" / SITE, stack, keys)
    rules = load_rules_service_config(_rules_config(tmp_path, stack, deploy, 9102, [SITE]))
    api = load_api_config(_api_config(tmp_path, stack, {SITE: site_file}, keys, deploy=deploy))
    assert rules.rules.packs == api.rules.paths == [pack.resolve()]
    assert rules.alerts.areas == api.areas == {"north": [SITE]}  # one place for the areas too


def test_the_hj212_stations_site_is_in_the_areas_of_the_api_and_the_alerts(tmp_path: Path, stack: Stack) -> None:
    sources = hj212_site("demo")
    deploy = DeploymentSpec(data_dir=tmp_path, areas={"wusong": [SITE, sources]})
    deploy.check_sites([SITE, sources])  # an area may name the HJ 212 stations' site
    site_file = _site_file(tmp_path / "sites")
    keys = tmp_path / "keys"
    create_site_keys(keys, [SITE])
    _add_local_settings(SITE, site_file, tmp_path / "edge" / SITE, stack, keys)
    rules = load_rules_service_config(_rules_config(tmp_path, stack, deploy, 9102, [SITE, sources]))
    api = load_api_config(_api_config(tmp_path, stack, {SITE: site_file}, keys, deploy=deploy, sources=[sources]))
    assert rules.alerts.areas == api.areas == {"wusong": [SITE, sources]}
    assert api.area_of(sources) == "wusong"
    assert set(api.site_keys) == {SITE}  # no edge agent, no commands: no keys
    alone = load_api_config(_api_config(tmp_path, stack, {SITE: site_file}, keys, sources=[sources]))
    assert alone.areas == {SITE: [SITE], sources: [sources]}  # in no area: its own, as every site


def test_the_scenario_places_the_sources_site_and_tags_its_cems(tmp_path: Path, stack: Stack) -> None:
    from lifeline.simulate import load
    from lifeline.up import _district
    from simulators.scenario import Scenario, SourcesSpec

    mini = load("mini", None)
    sources = _district(mini, [hj212_site("mini")]).sites[hj212_site("mini")]
    assert (sources.title, sources.area) == ("Pollution sources (HJ 212 stations)", "North")  # mini.yaml's hj212
    turbine = SourcesSpec(cems_tags={"source": "gas_turbine", "o2_ref": "15"})
    child, _fleet = _hj212(tmp_path, stack, "mini", turbine)
    hj212 = load_hj212_config(Path(child.argv[-1]))
    cems = next(s for s in hj212.stations.values() if s.config.device == "cems-1")
    assert cems.config.tags == {"source": "gas_turbine", "o2_ref": "15"}
    site = {"site": "mini-sources", "devices": [{"id": "x", "profile": "noise_meter"}]}
    with pytest.raises(ValueError, match="'mini-sources' is the HJ 212 stations' site"):
        Scenario.model_validate({"name": "mini", "sites": [site]})


def test_the_simulated_sources_hold_permits_that_the_api_reports_against(tmp_path: Path, stack: Stack) -> None:
    """lifeline up gives each simulated pollution source the permit of its kind (by its `source` tag), the HJ 212
    CEMS included, so the bureau's source reports count exceedances; the API loads the file when it starts."""
    from api.app import create_app
    from api.routes_reports import PERMITS_STATE
    from api.service import ApiService
    from lifeline.bridge_cli import known_site
    from simulators.scenario import SourcesSpec

    site_file = _site_file(tmp_path / "sites")
    _hj212(tmp_path, stack, "mini", SourcesSpec(cems_tags={"source": "coal_power", "o2_ref": "6"}))
    sources = hj212_site("mini")
    keys = tmp_path / "keys"
    create_site_keys(keys, [SITE])
    _add_local_settings(SITE, site_file, tmp_path / "edge" / SITE, stack, keys)
    source_file = tmp_path / "sites" / f"{sources}.yaml"
    api = load_api_config(
        _api_config(tmp_path, stack, {SITE: site_file}, keys, sources=[sources], source_files=[source_file])
    )
    assert api.permits_file is not None
    permits = getattr(create_app(ApiService(api, load_site=known_site), manage=False).state, PERMITS_STATE)
    cems = permits[(sources, "cems-1")]
    assert (cems.template, cems.o2_ref, cems.limits["so2"].hourly_mean) == ("gb13223_coal_new", 6, 100)
    assert (sources, "outlet-1") not in permits  # no source tag: no permit invented
    bare = load_api_config(_api_config(tmp_path / "bare", stack, {SITE: site_file}, keys))
    assert bare.permits_file is None  # no pollution source: no permit file
