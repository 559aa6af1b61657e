"""The simulated toxic-gas and oxygen detectors through the rules engine (rules/packs/toxic_gas.yaml, oxygen.yaml):
a baseline raises nothing, an excursion past the first-level set point raises the gas's rule at the right level and
clears, an oxygen dip raises the deficiency, a fault raises the fault rule only; random events by their rates,
deterministic by seed. And the Baoshan scenario: its chemical enterprises have them, with valid gas tags, in site
files that load. Time is a parameter: readings every 5 s of simulated time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from device_profiles import load_catalogue
from device_profiles.derive import settings_problems
from edge_agent.config import load_site
from infra.config_loader import ConfigError
from rules import PACKS, Engine, Rule, load_rules
from rules.standards.gas import TOXIC_GASES
from simulators import District, load_scenario, make_behaviour, plan
from simulators.behaviours import Behaviour, OxygenDetector, ToxicGasDetector, Value
from simulators.scenario import Scenario
from telemetry.models import Sample, Telemetry

CATALOGUE = load_catalogue()
RULES = load_rules([PACKS])
TOXIC_RULES = [r for r in RULES if r.id.startswith("toxic_gas.")]
OXYGEN_RULES = [r for r in RULES if r.id.startswith("oxygen.")]
T0 = datetime(2026, 6, 15, 9, tzinfo=timezone(timedelta(hours=8))).timestamp()  # 09:00 in Shanghai
STEP_S = 5.0

Event = Callable[[Behaviour, float], None]
Seen = list[tuple[str, str | None]]


def drive(
    b: Behaviour, tags: dict[str, str], hours: float, events: dict[float, Event] | None = None, step_s: float = STEP_S
) -> tuple[Seen, list[dict[str, Value]]]:
    """Step ``b`` every ``step_s`` for ``hours`` from T0, firing ``events`` (seconds after T0), feeding each reading
    to the engine with the pack's rules; (rule, severity or None for a clear) of each transition, and the readings."""
    rules: list[Rule] = TOXIC_RULES if b.profile == "toxic_gas_detector" else OXYGEN_RULES
    engine = Engine(rules)
    pending = dict(sorted((events or {}).items()))
    seen: Seen = []
    readings: list[dict[str, Value]] = []
    for i in range(int(hours * 3600 / step_s) + 1):
        now = T0 + i * step_s
        for at in [at for at in pending if at <= now - T0]:
            pending.pop(at)(b, now)
        values = b.step(now)
        readings.append(values)
        msg = Telemetry(
            site="chem-park",
            device="det-1",
            profile=b.profile,
            measurement="gas_safety",
            seq=i + 1,
            tags={"domain": "safety", **tags},
            samples=[Sample(ts=int(now * 1000), values=values)],
        )
        seen += [(t.rule, t.severity) for t in engine.observe(msg, received_ms=int(now * 1000))]
    return seen, readings


def excursion(pct: float) -> Event:
    def fire(b: Behaviour, now: float) -> None:
        assert isinstance(b, ToxicGasDetector)
        b.excursion(now, peak_pct_oel=pct)

    return fire


def dip(to: float) -> Event:
    def fire(b: Behaviour, now: float) -> None:
        assert isinstance(b, OxygenDetector)
        b.dip(now, to=to)

    return fire


def enrich(to: float) -> Event:
    def fire(b: Behaviour, now: float) -> None:
        assert isinstance(b, OxygenDetector)
        b.enrich(now, to=to)

    return fire


def fault(on: bool) -> Event:
    def fire(b: Behaviour, now: float) -> None:
        assert isinstance(b, ToxicGasDetector | OxygenDetector)
        b.set_fault(on)

    return fire


def alarms(readings: list[dict[str, Value]]) -> set[Value]:
    return {r["alarm_level"] for r in readings}


# --- on demand, through the engine -------------------------------------------------------------------------------
CASES = [
    # (profile, params, events, expected transitions, the detector's own alarm levels seen)
    pytest.param("toxic_gas_detector", {"gas": "h2s"}, {}, [], {0}, id="h2s-baseline-nothing"),
    pytest.param("toxic_gas_detector", {"gas": "co2"}, {}, [], {0}, id="co2-ambient-nothing"),
    pytest.param(
        "toxic_gas_detector",
        {"gas": "h2s"},
        {600: excursion(150)},
        [("toxic_gas.h2s", "warning"), ("toxic_gas.h2s", None)],
        {0, 1},
        id="h2s-150pct-first-level-then-clears",
    ),
    pytest.param(
        "toxic_gas_detector",
        {"gas": "nh3"},
        {600: excursion(250)},
        [
            ("toxic_gas.nh3", "warning"),
            ("toxic_gas.nh3", "critical"),
            ("toxic_gas.nh3", "warning"),
            ("toxic_gas.nh3", None),
        ],
        {0, 1, 2},
        id="nh3-250pct-second-level-then-back-and-clears",
    ),
    pytest.param(
        "toxic_gas_detector",
        {"gas": "cl2"},
        {600: fault(True), 1800: fault(False)},
        [("toxic_gas.detector_fault", "warning"), ("toxic_gas.detector_fault", None)],
        {0, 3},
        id="toxic-fault-raises-the-fault-rule-only",
    ),
    pytest.param("oxygen_detector", {}, {}, [], {0}, id="o2-open-air-nothing"),
    pytest.param("oxygen_detector", {"confined": True}, {}, [], {0}, id="o2-confined-nothing"),
    pytest.param(
        "oxygen_detector",
        {"confined": True},
        {600: dip(18.0)},
        [("oxygen.deficiency", "critical"), ("oxygen.deficiency", None)],
        {0, 1},
        id="o2-dip-deficiency-then-clears",
    ),
    pytest.param(
        "oxygen_detector",
        {},
        {600: enrich(24.2)},
        [("oxygen.enrichment", "critical"), ("oxygen.enrichment", None)],
        {0, 2},
        id="o2-enrichment-then-clears",
    ),
    pytest.param(
        "oxygen_detector",
        {"confined": True},
        {600: fault(True), 1800: fault(False)},
        [("oxygen.detector_fault", "warning"), ("oxygen.detector_fault", None)],
        {0, 3},
        id="o2-fault-raises-the-fault-rule-not-a-deficiency",
    ),
]


@pytest.mark.parametrize(("profile", "params", "events", "expected", "own"), CASES)
def test_detector_through_the_rules(
    profile: str, params: dict[str, object], events: dict[float, Event], expected: Seen, own: set[int]
) -> None:
    gas = params.get("gas")
    tags = {"gas": str(gas)} if gas else {}
    seen, readings = drive(make_behaviour(profile, 11, params), tags, hours=2, events=events)
    assert seen == expected
    assert alarms(readings) == own


@pytest.mark.parametrize("gas", sorted(TOXIC_GASES))
def test_every_gas_excursion_raises_its_own_rule(gas: str) -> None:
    """The detector's scale is the gas's OEL: 150 %OEL raises the gas's first level, 250 %OEL its second."""
    first, _ = drive(make_behaviour("toxic_gas_detector", 3, {"gas": gas}), {"gas": gas}, 1, {60: excursion(150)})
    assert first == [(f"toxic_gas.{gas}", "warning"), (f"toxic_gas.{gas}", None)]
    second, _ = drive(make_behaviour("toxic_gas_detector", 3, {"gas": gas}), {"gas": gas}, 1, {60: excursion(250)})
    assert (f"toxic_gas.{gas}", "critical") in second
    assert second[-1] == (f"toxic_gas.{gas}", None)


# --- at random, by their rates -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "params", "tags", "rule"),
    [
        pytest.param(
            "toxic_gas_detector",
            {"gas": "hcl", "excursions_per_day": 8},
            {"gas": "hcl"},
            "toxic_gas.hcl",
            id="excursions",
        ),
        pytest.param(
            "toxic_gas_detector",
            {"gas": "co", "faults_per_day": 8, "fault_hours": 0.5},
            {"gas": "co"},
            "toxic_gas.detector_fault",
            id="toxic-faults",
        ),
        pytest.param("oxygen_detector", {"confined": True, "dips_per_day": 8}, {}, "oxygen.deficiency", id="dips"),
        pytest.param(
            "oxygen_detector", {"faults_per_day": 8, "fault_hours": 0.5}, {}, "oxygen.detector_fault", id="o2-faults"
        ),
    ],
)
def test_random_events_raise_and_clear_deterministically(
    profile: str, params: dict[str, object], tags: dict[str, str], rule: str
) -> None:
    seen, _ = drive(make_behaviour(profile, 5, params), tags, hours=24, step_s=15)
    active, raised, cleared = False, 0, 0  # an episode: raised (perhaps changing level on the way), then cleared
    for _, severity in seen:
        raised += severity is not None and not active
        cleared += severity is None
        active = severity is not None
    assert 2 <= cleared <= 20  # about 8 a day
    assert raised - cleared == int(active)  # each one clears (the last may still be on)
    assert {r for r, _ in seen} == {rule}  # and nothing else is raised
    assert drive(make_behaviour(profile, 5, params), tags, hours=24, step_s=15)[0] == seen  # same seed, same day


def test_rates_of_zero_give_a_quiet_week() -> None:
    quiet: list[tuple[str, dict[str, object], dict[str, str]]] = [
        ("toxic_gas_detector", {"gas": "cl2"}, {"gas": "cl2"}),
        ("oxygen_detector", {"confined": True}, {}),
    ]
    for profile, params, tags in quiet:
        seen, readings = drive(make_behaviour(profile, 8, params), tags, hours=7 * 24, step_s=120)
        assert seen == []
        assert alarms(readings) == {0}


def test_an_unknown_gas_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'ch4' has no OEL"):
        make_behaviour("toxic_gas_detector", 1, {"gas": "ch4"})


# --- the Baoshan scenario ------------------------------------------------------------------------------------------
def test_baoshan_chemical_enterprises_have_toxic_and_oxygen_detectors() -> None:
    devices = plan(load_scenario("baoshan"))
    toxic = [d for d in devices if d.profile.name == "toxic_gas_detector"]
    oxygen = [d for d in devices if d.profile.name == "oxygen_detector"]
    chemical = {d.id.split("-")[0] for d in oxygen}
    assert len(chemical) == 9  # 3 in 10 of the 30 enterprises, one oxygen detector each
    assert len(oxygen) == 9
    assert {d.id.split("-")[0] for d in toxic} == chemical
    assert 9 <= len(toxic) <= 18  # 1-2 each
    for d in toxic:
        assert d.site == "work-safety"
        assert d.tags["gas"] in TOXIC_GASES
        assert d.params["gas"] == d.tags["gas"]
        assert settings_problems(d.profile, d.tags) == []
    assert all(d.params["confined"] is True for d in oxygen)
    assert len({d.source_id for d in toxic + oxygen}) == len(toxic) + len(oxygen)


def test_kinds_leave_the_gas_and_fire_detectors_as_they_were() -> None:
    """The kinds draw from their own generator: the district without them is the one before them."""
    baoshan = load_scenario("baoshan")
    sites = []
    for site in baoshan.sites:
        ent = site.enterprises
        sites.append(
            site if ent is None else site.model_copy(update={"enterprises": ent.model_copy(update={"kinds": []})})
        )
    without = plan(baoshan.model_copy(update={"sites": sites}))
    with_kinds = plan(baoshan)
    assert [d for d in with_kinds if d.profile.name not in ("toxic_gas_detector", "oxygen_detector")] == without
    assert len(without) == 119
    assert len(with_kinds) > len(without)


def test_baoshan_work_safety_site_file_loads_with_the_gas_tags(tmp_path: Path) -> None:
    district = District(load_scenario("baoshan"), "127.0.0.1", 1883)  # no sockets: only the site file is written
    path = tmp_path / "work-safety.yaml"
    path.write_text(yaml.safe_dump(district.site_config("work-safety"), sort_keys=False), encoding="utf-8")
    devices = {d.id: d for d in load_site(path).config.devices}
    toxic = [d for d in devices.values() if d.profile == "toxic_gas_detector"]
    assert toxic
    assert all(d.tags["gas"] in TOXIC_GASES for d in toxic)
    assert sum(d.profile == "oxygen_detector" for d in devices.values()) == 9


def test_a_site_file_with_a_toxic_detector_without_its_gas_is_refused(tmp_path: Path) -> None:
    """The control for the test above: the edge does check the tag."""
    district = District(load_scenario("baoshan"), "127.0.0.1", 1883)
    config = district.site_config("work-safety")
    devices = config["devices"]
    assert isinstance(devices, list)
    for d in devices:
        if d["profile"] == "toxic_gas_detector":
            del d["tags"]
            break
    path = tmp_path / "work-safety.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match="tag 'gas' is required"):
        load_site(path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        pytest.param("{kind: chem, share: 0.3, toxic_detectors: [1, 2], gases: [ch4]}", "have no OEL", id="gas"),
        pytest.param("{kind: chem, share: 0.3, toxic_detectors: [1, 2]}", "needs gases", id="no-gases"),
        pytest.param("{kind: chem, share: 1.5}", "less than or equal to 1", id="share"),
        pytest.param("{kind: chem, share: 0.3, oxygen_detectors: [2, 1]}", r"oxygen_detectors \[2, 1\]", id="span"),
    ],
)
def test_scenario_kinds_are_checked(tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nsites:\n  - site: s\n    enterprises: {{count: 3, kinds: [{kind}]}}\n")
    with pytest.raises(ConfigError, match=message):
        load_scenario(path)


def test_shares_add_up_to_at_most_one() -> None:
    site = {
        "site": "s",
        "enterprises": {"count": 4, "kinds": [{"kind": "a", "share": 0.6}, {"kind": "b", "share": 0.6}]},
    }
    with pytest.raises(ValueError, match="more than 1"):
        Scenario.model_validate({"name": "t", "sites": [site]})
