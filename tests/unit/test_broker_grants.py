"""Every generated broker account holds exactly the grants its client needs, and nothing more (issue 24, least
privilege): the table below is the reviewed list, one row per account of a deployment with two sites, MQTT sensors,
an HJ 212 site and a partitioned rules engine. A grant added anywhere fails here until it is reviewed into the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.mqtt import BrokerConfig, TlsConfig
from lifeline.broker_auth import (
    Access,
    Inventory,
    credential,
    platform_accounts,
    replay_broker,
    write_client_certs,
    write_credentials,
)
from lifeline.tls import common_name, ensure_ca
from rules.config import PartitionConfig

PUB, SUB, RECV = Access.PUBLISH, Access.SUBSCRIBE, Access.RECEIVE
P = "lifeline/v1"


def _read(*filters: str) -> set[tuple[Access, str]]:
    return {(a, f) for f in filters for a in (SUB, RECV)}


def _shared(group: str, *filters: str) -> set[tuple[Access, str]]:
    return {g for f in filters for g in ((SUB, f"$share/{group}/{f}"), (RECV, f))}


EXPECTED: dict[str, set[tuple[Access, str]]] = {
    # commands to any gate; reads what an operator sees
    "api": {(PUB, f"{P}/+/+/cmd/+")}
    | _read(f"{P}/+/+/cmd_result/+", f"{P}/+/+/status", f"{P}/+/+/telemetry", f"{P}/+/agent/state")
    | _read(f"{P}/alerts/events/+"),
    "observer": _read(
        f"{P}/+/+/telemetry", f"{P}/+/+/status", f"{P}/+/agent/state", f"{P}/+/+/cmd_result/+", f"{P}/alerts/#"
    ),
    "deadletter-replay": {(PUB, f"{P}/+/+/telemetry")},
    "bridge-1": _shared("lifeline-bridge", f"{P}/+/+/telemetry"),
    "bridge-1-pub": {(PUB, f"{P}/+/agent/stored")},  # stored acknowledgements only: no site's telemetry
    "rules-a": _shared("lifeline-rules-a", f"{P}/s1/+/telemetry", f"{P}/s1/+/status", f"{P}/s1/agent/state"),
    "rules-a-pub": {(PUB, f"{P}/alerts/events/+"), (PUB, f"{P}/alerts/notify/+")},
    "rules-b": _shared(
        "lifeline-rules-b",
        *(f"{P}/{s}/{t}" for s in ("s2", "h1") for t in ("+/telemetry", "+/status", "agent/state")),
    ),
    "rules-b-pub": {(PUB, f"{P}/alerts/events/+"), (PUB, f"{P}/alerts/notify/+")},
    "edge-s1": {
        (PUB, f"{P}/s1/+/telemetry"),
        (PUB, f"{P}/s1/+/status"),
        (PUB, f"{P}/s1/agent/state"),
        (PUB, f"{P}/s1/+/cmd_result/+"),
    }
    | _read(f"{P}/s1/+/cmd/+", f"{P}/s1/agent/stored", "$SYS/broker/uptime"),  # uptime: a takeover, not a restart
    "edge-s1-sensors": _read("vendor/s1/a", "vendor/s1/b"),
    "sensors-s1": {(PUB, "vendor/s1/a"), (PUB, "vendor/s1/b")},
    "edge-s2": {
        (PUB, f"{P}/s2/+/telemetry"),
        (PUB, f"{P}/s2/+/status"),
        (PUB, f"{P}/s2/agent/state"),
        (PUB, f"{P}/s2/+/cmd_result/+"),
    }
    | _read(f"{P}/s2/+/cmd/+", f"{P}/s2/agent/stored", "$SYS/broker/uptime"),
    "hj212": {(PUB, f"{P}/h1/+/telemetry"), (PUB, f"{P}/h1/+/status")} | _read(f"{P}/h1/agent/stored"),
}


def _inventory() -> Inventory:
    return Inventory(
        sites=["s1", "s2"],
        sensor_topics={"s1": ["vendor/s1/b", "vendor/s1/a"]},
        named_partitions=[PartitionConfig(name="a", sites=["s1"]), PartitionConfig(name="b", sites=["s2", "h1"])],
        hj212_sites=["h1"],
    )


def test_the_deployment_has_exactly_the_reviewed_accounts() -> None:
    assert sorted(a.username for a in platform_accounts(_inventory())) == sorted(EXPECTED)


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_each_account_holds_only_its_reviewed_grants(username: str) -> None:
    (account,) = [a for a in platform_accounts(_inventory()) if a.username == username]
    got = [(g.access, g.topic) for g in account.grants]
    assert len(got) == len(set(got)), f"{username}: a grant twice"
    assert set(got) == EXPECTED[username]


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_no_account_but_the_api_may_publish_commands_nor_any_service_publish_under_a_wildcard_site_it_does_not_own(
    username: str,
) -> None:
    (account,) = [a for a in platform_accounts(_inventory()) if a.username == username]
    published = {g.topic for g in account.grants if g.access is PUB}
    if username != "api":
        assert not any("/cmd/" in t for t in published)
    if username not in {"api", "deadletter-replay"}:  # these two act for every site by design
        assert not any(t.startswith(f"{P}/+/+/") for t in published), published
    assert "#" not in published
    assert f"{P}/#" not in published


def test_each_account_gets_a_client_certificate_named_after_it_and_services_connect_with_their_own(
    tmp_path: Path,
) -> None:
    accounts = platform_accounts(_inventory())
    ca = ensure_ca(tmp_path / "ca")
    folder = tmp_path / "credentials"
    write_credentials(folder, accounts)
    write_client_certs(folder, accounts, ca)
    broker = BrokerConfig(port=8883, tls=TlsConfig(ca_file=ca[0]))
    for account in accounts:
        cfg = credential(folder, account.username, broker)
        assert cfg.tls is not None
        assert cfg.tls.cert_file is not None
        assert cfg.tls.key_file is not None
        assert common_name(cfg.tls.cert_file) == account.username
        assert cfg.tls.key_file.stat().st_mode & 0o777 == 0o600
    # plain TCP (no TLS asked for): no certificate is handed out
    plain = credential(folder, "edge-s1", BrokerConfig(port=1883))
    assert plain.tls is None


def test_certificates_are_kept_but_made_again_for_a_new_ca(tmp_path: Path) -> None:
    accounts = platform_accounts(Inventory(sites=["s1"]))
    folder = tmp_path / "credentials"
    write_client_certs(folder, accounts, ensure_ca(tmp_path / "ca1"))
    first = (folder / "edge-s1.pem").read_bytes()
    write_client_certs(folder, accounts, ensure_ca(tmp_path / "ca1"))
    assert (folder / "edge-s1.pem").read_bytes() == first  # kept: clients configured once stay valid
    write_client_certs(folder, accounts, ensure_ca(tmp_path / "ca2"))
    assert (folder / "edge-s1.pem").read_bytes() != first  # the old CA's certificate would be refused


def test_the_bridges_letters_are_replayed_as_the_replay_account_next_to_its_publisher(tmp_path: Path) -> None:
    folder = tmp_path / "credentials"
    write_credentials(folder, platform_accounts(Inventory(sites=["s1"])))
    publisher = credential(folder, "bridge-1-pub", BrokerConfig())
    assert replay_broker(publisher).username == "deadletter-replay"
    (folder / "deadletter-replay.password").unlink()  # a broker set up before the account existed: as before
    assert replay_broker(publisher).username == "bridge-1-pub"


def test_configs_only_gives_every_service_its_own_certificate(tmp_path: Path) -> None:
    """``lifeline broker config --ca`` then ``lifeline up --configs-only`` on a TLS broker: each service's derived
    config connects with its own account's certificate (the broker takes the user name from it)."""
    import yaml

    from api.config import load_config as load_api_config
    from broker_bridge.config import load_bridge_config
    from edge_agent.config import load_site
    from lifeline.cli import main
    from lifeline.rules_cli import load_rules_service_config

    site = tmp_path / "in" / "north.yaml"
    site.parent.mkdir()
    device = {"id": "wq-1", "profile": "water_quality_station", "host": "192.0.2.10"}
    site.write_text(yaml.safe_dump({"site": "north", "devices": [device]}), encoding="utf-8")
    ca_dir, broker_dir = tmp_path / "ca", tmp_path / "broker"
    spec = tmp_path / "deploy.yaml"
    spec.write_text(
        f"data_dir: {tmp_path / 'out'}\nsites: [{site}]\n"
        f"broker: {{host: mqtt.example, port: 8883, tls: {{ca_file: {ca_dir / 'ca.pem'}}}}}\n"
        f"broker_credentials: {broker_dir / 'credentials'}\n"
        "influx: {url: 'https://influx.example:8086', username: lifeline, password: {env: LL_X}}\n",
        encoding="utf-8",
    )
    args = ["broker", "config", "--deployment", str(spec), "--out", str(broker_dir), "--ca", str(ca_dir)]
    assert main(args) == 0
    assert main(["up", "--config", str(spec), "--configs-only"]) == 0
    out = tmp_path / "out"
    bridge = load_bridge_config(out / "bridge.yaml")
    rules = load_rules_service_config(out / "rules.yaml")
    connections = {
        "edge-north": load_site(out / "sites" / "north.yaml").config.broker,
        "bridge-1": bridge.broker,
        "bridge-1-pub": bridge.publisher,
        "rules-1": rules.broker,
        "rules-1-pub": rules.publisher,
        "api": load_api_config(out / "api.yaml").broker,
    }
    for username, cfg in connections.items():
        assert cfg is not None
        assert cfg.username == username
        assert cfg.tls is not None
        assert cfg.tls.cert_file is not None
        assert common_name(cfg.tls.cert_file) == username
