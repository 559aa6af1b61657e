"""Rules partitions: which engine owns which site, how a wrong partition is reported, the accounts they get."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from infra.config_loader import ConfigError
from lifeline.broker_auth import Access, Inventory, named_partitions, platform_accounts
from lifeline.rules_cli import RulesServiceConfig, _with_partition, load_rules_service_config
from rules.config import PartitionConfig, site_partition


def test_hash_partitions_split_the_sites_by_crc32_and_every_site_has_exactly_one_owner() -> None:
    parts = [PartitionConfig(index=i, count=3) for i in range(3)]
    sites = [f"site-{n}" for n in range(50)]
    for site in sites:
        assert [p.owns(site) for p in parts].count(True) == 1
        assert parts[zlib.crc32(site.encode()) % 3].owns(site)
    assert site_partition("plant-1", 2) == 0
    assert [p.label for p in parts] == ["0-of-3", "1-of-3", "2-of-3"]
    assert parts[1].group == "lifeline-rules-1-of-3"
    assert parts[1].state_name == "rules.engine.1-of-3"
    assert [p.runs_windows for p in parts] == [True, False, False]
    assert parts[0].filters() == ["lifeline/v1/+/+/telemetry", "lifeline/v1/+/+/status", "lifeline/v1/+/agent/state"]


def test_a_named_partition_subscribes_to_its_own_sites_only() -> None:
    part = PartitionConfig(name="north", sites=["yunzaobang", "lianqi"])
    assert part.owns("lianqi")
    assert not part.owns("other")
    assert part.group == "lifeline-rules-north"
    assert not part.runs_windows
    assert PartitionConfig(name="north", sites=["lianqi"], windows=True).runs_windows
    assert part.filters() == [
        "lifeline/v1/lianqi/+/telemetry",
        "lifeline/v1/lianqi/+/status",
        "lifeline/v1/lianqi/agent/state",
        "lifeline/v1/yunzaobang/+/telemetry",
        "lifeline/v1/yunzaobang/+/status",
        "lifeline/v1/yunzaobang/agent/state",
    ]


@pytest.mark.parametrize(
    ("partition", "message"),
    [
        ("{index: 2, count: 2}", "index 2 is not below count 2"),
        ("{index: 0}", "index and count go together"),
        ("{}", "give sites (named partition) or index and count"),
        ("{sites: [a], index: 0, count: 2}", "not both"),
        ("{sites: [a]}", "needs a name"),
        ("{name: n, sites: [a, a]}", "listed twice"),
        ("{index: 0, count: 2, colour: red}", "colour"),
    ],
)
def test_a_wrong_partition_is_refused_naming_file_and_field(tmp_path: Path, partition: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  partition: {partition}\n")
    with pytest.raises(ConfigError) as err:
        load_rules_service_config(path)
    text = str(err.value)
    assert str(path) in text
    assert "partition" in text
    assert message in text


def test_the_partition_flag_overrides_the_config_and_names_what_is_wrong() -> None:
    config = _with_partition(RulesServiceConfig(), "1/2")
    assert config.rules.partition == PartitionConfig(index=1, count=2)
    with pytest.raises(SystemExit, match=r"--partition '2/2': .*not below count 2"):
        _with_partition(RulesServiceConfig(), "2/2")
    with pytest.raises(SystemExit, match="INDEX/COUNT"):
        _with_partition(RulesServiceConfig(), "one")


def test_broker_config_gives_each_partition_its_own_accounts_and_group() -> None:
    accounts = {a.username: a for a in platform_accounts(Inventory(["s1"], rules_partitions=2))}
    assert "rules-1" not in accounts
    assert {"rules-0-of-2", "rules-0-of-2-pub", "rules-1-of-2", "rules-1-of-2-pub"} <= set(accounts)
    subs = {g.topic for g in accounts["rules-1-of-2"].grants if g.access is Access.SUBSCRIBE}
    assert subs == {
        "$share/lifeline-rules-1-of-2/lifeline/v1/+/+/telemetry",
        "$share/lifeline-rules-1-of-2/lifeline/v1/+/+/status",
        "$share/lifeline-rules-1-of-2/lifeline/v1/+/agent/state",  # the agents' birth and death
    }
    assert [g.topic for g in accounts["rules-1-of-2-pub"].grants] == [
        "lifeline/v1/alerts/events/+",
        "lifeline/v1/alerts/notify/+",
    ]


def test_named_partitions_for_broker_config_cover_every_site_once() -> None:
    parts = named_partitions(["north:a,b", "south:c"], ["a", "b", "c"])
    accounts = {a.username: a for a in platform_accounts(Inventory(["a", "b", "c"], named_partitions=parts))}
    assert {"rules-north", "rules-north-pub", "rules-south", "rules-south-pub"} <= set(accounts)
    subs = sorted(g.topic for g in accounts["rules-south"].grants if g.access is Access.SUBSCRIBE)
    assert subs == [
        "$share/lifeline-rules-south/lifeline/v1/c/+/status",
        "$share/lifeline-rules-south/lifeline/v1/c/+/telemetry",
        "$share/lifeline-rules-south/lifeline/v1/c/agent/state",
    ]
    for specs, message in [
        (["north:a,b"], r"no partition owns site\(s\) c"),
        (["north:a,b", "south:b,c"], "site 'b' is already in partition 'north'"),
        (["north:a,b,c,x"], "site 'x' is not in this deployment"),
        (["north"], "expected NAME:SITE"),
        (["north:a,b", "north:c"], "given twice"),
        (["no/rth:a,b,c"], "should match pattern"),
    ]:
        with pytest.raises(ValueError, match=message):
            named_partitions(specs, ["a", "b", "c"])
