"""Broker accounts and their access, derived from the deployment: who may publish, subscribe and receive what.

Every account is one MQTT client (``use_username_as_clientid``: nobody can take over another's session by reusing
its client id). The access list is written for Mosquitto's dynamic-security plugin, which ships in Debian's
``mosquitto`` package, and not as an ``acl_file``: Mosquitto 2.0.11's ``acl_file`` never checks subscriptions
(``src/security_default.c``: "FIXME - implement ACL subscription strings"), so any account could join
``$share/lifeline-rules/...`` and take its share of gas readings, which the broker then drops at delivery. The
dynamic-security plugin checks the subscription string itself, ``$share/<group>/`` included.

    edge-<site>          publishes telemetry, status and agent state under its own site and results of its own
                         devices' commands; receives its own site's commands and stored acknowledgements, and the
                         broker's uptime ($SYS/broker/uptime)
    edge-<site>-sensors  the edge's sensor link: receives its own site's vendor sensor topics
    sensors-<site>       that site's MQTT sensors (or their gateway): publish their own vendor topics only
    bridge-<n>           reads telemetry only through $share/lifeline-bridge/
    bridge-<n>-pub       its publishing connection: stored acknowledgements, nothing else (no telemetry)
    deadletter-replay    ``lifeline deadletter replay`` of the bridge's letters: publishes telemetry, reads nothing
    rules-<n>            reads telemetry and status only through $share/lifeline-rules/
    rules-<n>-pub        its publishing connection: alert events and the MQTT notification channel, nothing else
    rules-<i>-of-<n>     a partitioned rules engine (``--rules-partitions N``): reads only through its partition's
                         own group, $share/lifeline-rules-<i>-of-<n>/ (and rules-<i>-of-<n>-pub publishes its alerts)
    api                  publishes commands; reads results, status, telemetry and alert events
    hj212                publishes telemetry and status of the HJ 212 stations' sites
    observer             reads (never writes) every Lifeline topic but commands: for people watching the bus

A password is generated per account (``secrets``) and stored hashed (PBKDF2-SHA512, as the plugin hashes). With
TLS, each account also gets a client certificate of the deployment's CA whose common name is the user name
(:func:`write_client_certs`): a broker with ``require_certificate`` and ``use_identity_as_username`` (``lifeline up``)
takes the user name from the certificate, so a password alone no longer connects anyone.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from pydantic import ValidationError

from infra.mqtt import BrokerConfig
from infra.secret import CredentialError, Secret, read_secret_file, write_secret_file
from lifeline.tls import issue
from rules.config import RULES_GROUP, PartitionConfig, engine_filters
from telemetry import topics

if TYPE_CHECKING:
    from simulators.scenario import PlannedDevice, Scenario

BRIDGE_GROUP = "lifeline-bridge"
BROKER_UPTIME = "$SYS/broker/uptime"  # Mosquitto's uptime, retained: nothing of any client
_P = topics.PREFIX


class Access(StrEnum):
    """The dynamic-security plugin's ACL types."""

    PUBLISH = "publishClientSend"  # the client may publish on the topic (filter)
    RECEIVE = "publishClientReceive"  # the broker may deliver messages on the topic to the client
    SUBSCRIBE = "subscribePattern"  # the client may subscribe with a filter within this pattern


@dataclass(frozen=True, slots=True)
class Grant:
    access: Access
    topic: str


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: str  # what kind of client (edge, bridge, ...): for the generated file's descriptions and for tests
    grants: tuple[Grant, ...]
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


def _read(*filters: str) -> list[Grant]:
    """Subscribe to and receive on each filter."""
    return [g for f in filters for g in (Grant(Access.SUBSCRIBE, f), Grant(Access.RECEIVE, f))]


def _write(*filters: str) -> list[Grant]:
    return [Grant(Access.PUBLISH, f) for f in filters]


def _shared(group: str, *filters: str) -> list[Grant]:
    """Subscribe only through ``$share/group/`` (receive is checked on the message's own topic)."""
    return [g for f in filters for g in (Grant(Access.SUBSCRIBE, f"$share/{group}/{f}"), Grant(Access.RECEIVE, f))]


def edge_account(site: str) -> Account:
    topics.check_site_id(site)
    grants = [
        *_write(
            topics.telemetry_filter(site),
            topics.status_filter(site),
            topics.agent_state(site),
            topics.command_result_filter(site),
        ),
        *_read(topics.command_filter(site), topics.stored(site)),
        *_read(BROKER_UPTIME),  # tells a session taken over from a broker restart (edge_agent.health.TakeoverWatch)
    ]
    return Account(f"edge-{site}", "edge", tuple(grants))


def edge_sensor_account(site: str, sensor_topics: Iterable[str]) -> Account:
    return Account(f"edge-{site}-sensors", "edge-sensors", tuple(_read(*sorted(set(sensor_topics)))))


def sensor_account(name: str, sensor_topics: Iterable[str]) -> Account:
    """MQTT sensors (or the gateway they share) that may publish their own vendor topics and nothing else."""
    return Account(name, "sensors", tuple(_write(*sorted(set(sensor_topics)))))


# A service that consumes and publishes has two connections, so two accounts (one client id each): ``<name>`` reads,
# ``<name>-pub`` writes.
def bridge_account(n: int = 1) -> Account:
    return Account(f"bridge-{n}", "bridge", tuple(_shared(BRIDGE_GROUP, topics.telemetry_filter())))


def bridge_publisher_account(n: int = 1) -> Account:
    # stored acknowledgements to the edges only: a stolen bridge password cannot forge any site's readings
    return Account(f"bridge-{n}-pub", "bridge-pub", tuple(_write(topics.stored("+"))))


REPLAY_USER = "deadletter-replay"


def replay_account() -> Account:
    """``lifeline deadletter replay`` of the bridge's letters (any site's telemetry, as the bridge received it): an
    operator's tool, kept apart from the bridge's own accounts so that neither of those may publish telemetry."""
    return Account(REPLAY_USER, "replay", tuple(_write(topics.telemetry_filter())))


def rules_account(n: int = 1) -> Account:
    grants = _shared(RULES_GROUP, *engine_filters())  # telemetry, status, agent birth and death
    return Account(f"rules-{n}", "rules", tuple(grants))


def named_partitions(specs: Iterable[str], sites: Sequence[str]) -> list[PartitionConfig]:
    """``NAME:SITE,SITE`` each, checked against the deployment: every site in exactly one partition."""
    parts: list[PartitionConfig] = []
    owner: dict[str, str] = {}
    for spec in specs:
        name, sep, listed = spec.partition(":")
        if not sep or not listed:
            raise ValueError(f"--rules-partition {spec!r}: expected NAME:SITE[,SITE...]")
        try:
            part = PartitionConfig(name=name, sites=listed.split(","))
        except ValidationError as exc:
            detail = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"--rules-partition {spec!r}: {detail}") from exc
        for site in part.sites:
            if site not in sites:
                raise ValueError(f"--rules-partition {spec!r}: site {site!r} is not in this deployment")
            if site in owner:
                raise ValueError(f"--rules-partition {spec!r}: site {site!r} is already in partition {owner[site]!r}")
            owner[site] = part.label
        parts.append(part)
    if len({p.label for p in parts}) != len(parts):
        raise ValueError("--rules-partition: a partition name is given twice")
    missing = sorted(set(sites) - set(owner))
    if missing:
        raise ValueError(f"--rules-partition: no partition owns site(s) {', '.join(missing)}: no engine would see them")
    return parts


def rules_publisher_account(n: int | str = 1) -> Account:
    # alert changes for live views and the MQTT notification channel: nothing else under alerts/, nothing of a site
    grants = _write(topics.alert_events_filter(), f"{_P}/alerts/notify/+")
    return Account(f"rules-{n}-pub", "rules-pub", tuple(grants))


def rules_partition_accounts(partition: PartitionConfig) -> list[Account]:
    """A partitioned engine's two accounts: ``rules-<name>`` subscribes only in its partition's own group (a named
    partition only to its sites' topics), ``rules-<name>-pub`` publishes alerts."""
    reader = Account(f"rules-{partition.label}", "rules", tuple(_shared(partition.group, *partition.filters())))
    return [reader, rules_publisher_account(partition.label)]


def api_account() -> Account:
    grants = [
        *_write(f"{_P}/+/+/cmd/+"),
        *_read(
            topics.command_result_filter(),
            topics.status_filter(),
            topics.telemetry_filter(),
            topics.agent_state("+"),
            topics.alert_events_filter(),
        ),
    ]
    return Account("api", "api", tuple(grants))


def hj212_account(sites: Iterable[str]) -> Account:
    sites = sorted(set(sites))
    grants = _write(*(f for s in sites for f in (topics.telemetry_filter(s), topics.status_filter(s))))
    grants += _read(*(topics.stored(s) for s in sites))
    return Account("hj212", "hj212", tuple(grants))


def observer_account() -> Account:
    filters = [
        topics.telemetry_filter(),
        topics.status_filter(),
        topics.agent_state("+"),
        topics.command_result_filter(),
        f"{_P}/alerts/#",
    ]
    return Account("observer", "observer", tuple(_read(*filters)))


@dataclass(frozen=True, slots=True)
class Inventory:
    """The deployment's sites, sensors and service counts once resolved: what the broker's accounts are derived from
    (:func:`platform_accounts`). ``lifeline up`` makes it from its deployment spec
    (``lifeline.deployment.DeploymentSpec.inventory``), ``lifeline broker config`` from a scenario or site files. Not
    a second config model: nothing here is read from a file by itself."""

    sites: Sequence[str]
    sensor_topics: dict[str, list[str]] = field(default_factory=dict)  # site -> vendor topics of its MQTT sensors
    bridges: int = 1
    rules_engines: int = 1
    rules_partitions: int = 0  # >0: that many hash partitions, one account pair each, instead of rules-1..N
    named_partitions: Sequence[PartitionConfig] = ()  # or these partitions by site, one account pair each
    hj212_sites: Sequence[str] = ()
    simulated_sensors: bool = False  # one account for the simulated district's sensors (``sim-sensors``)


def platform_accounts(d: Inventory) -> list[Account]:
    """Every account of the deployment: the services', each site's, the sensors' and the observer."""
    accounts = [api_account(), observer_account(), replay_account()]
    for n in range(1, d.bridges + 1):
        accounts += [bridge_account(n), bridge_publisher_account(n)]
    if d.named_partitions:
        for part in d.named_partitions:
            accounts += rules_partition_accounts(part)
    elif d.rules_partitions:
        for i in range(d.rules_partitions):
            accounts += rules_partition_accounts(PartitionConfig(index=i, count=d.rules_partitions))
    else:
        for n in range(1, d.rules_engines + 1):
            accounts += [rules_account(n), rules_publisher_account(n)]
    for site in sorted(d.sites):
        accounts.append(edge_account(site))
        if d.sensor_topics.get(site):
            accounts.append(edge_sensor_account(site, d.sensor_topics[site]))
            if not d.simulated_sensors:
                accounts.append(sensor_account(f"sensors-{site}", d.sensor_topics[site]))
    if d.simulated_sensors:
        every = [t for ts in d.sensor_topics.values() for t in ts]
        if every:
            accounts.append(sensor_account("sim-sensors", every))
    if d.hj212_sites:
        accounts.append(hj212_account(d.hj212_sites))
    return accounts


# -- the plugin's file and commands ---------------------------------------------------------------------------------
ITERATIONS = 101  # what mosquitto_passwd and mosquitto_ctrl use (PW_DEFAULT_ITERATIONS)


def _hash(password: str) -> tuple[str, str]:
    salt = secrets.token_bytes(12)  # the plugin's SALT_LEN
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return base64.b64encode(digest).decode(), base64.b64encode(salt).decode()


def _acls(account: Account) -> list[dict[str, object]]:
    return [{"acltype": g.access.value, "topic": g.topic, "priority": 0, "allow": True} for g in account.grants]


def dynsec_config(accounts: Iterable[Account]) -> dict[str, object]:
    """The dynamic-security plugin's configuration: one role per account, everything else denied."""
    clients, roles = [], []
    for account in accounts:
        digest, salt = _hash(account.password)
        roles.append({"rolename": account.username, "textdescription": account.role, "acls": _acls(account)})
        clients.append(
            {
                "username": account.username,
                "textdescription": account.role,
                "password": digest,
                "salt": salt,
                "iterations": ITERATIONS,
                "roles": [{"rolename": account.username}],
            }
        )
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def control_commands(account: Account) -> dict[str, object]:
    """The ``$CONTROL/dynamic-security/v1`` request that creates ``account`` on a running broker."""
    return {
        "commands": [
            {"command": "createRole", "rolename": account.username, "acls": _acls(account)},
            {
                "command": "createClient",
                "username": account.username,
                "password": account.password,
                "roles": [{"rolename": account.username}],
            },
        ]
    }


# -- where the accounts come from, and where their passwords go -----------------------------------------------------
def district_deployment(planned: Iterable[PlannedDevice], **counts: int) -> Inventory:
    """The accounts of a simulated district: its sites, and its MQTT sensors behind one simulated gateway."""
    sites: set[str] = set()
    sensor_topics: dict[str, list[str]] = {}
    for d in planned:
        sites.add(d.site)
        if d.profile.mqtt is not None:
            sensor_topics.setdefault(d.site, []).extend(d.profile.mqtt.topics_for(d.source_id or d.id))
    return Inventory(sorted(sites), sensor_topics, simulated_sensors=True, **counts)  # type: ignore[arg-type]


def hj212_site(scenario: str) -> str:
    """The site of a simulated district's HJ 212 stations (its pollution sources that push to the centre)."""
    return f"{scenario}-sources"


def scenario_deployment(scenario: Scenario, **counts: int) -> Inventory:
    """The accounts `lifeline up` makes for a simulated district: its sites, sensors and HJ 212 stations."""
    from simulators import plan

    deployment = district_deployment(plan(scenario), **counts)
    return dataclasses.replace(deployment, hj212_sites=[hj212_site(scenario.name)])


def sites_deployment(site_files: Iterable[Path], **counts: int) -> Inventory:
    """The accounts of the sites whose edge configs are ``site_files`` (each MQTT sensor's vendor topics included)."""
    from edge_agent import load_site

    sites: list[str] = []
    sensor_topics: dict[str, list[str]] = {}
    for path in site_files:
        site = load_site(path)
        sites.append(site.config.site)
        for device in site.config.devices:
            profile = site.profile_of(device)
            if profile.mqtt is not None and device.enabled:
                sensor_topics.setdefault(site.config.site, []).extend(profile.mqtt.topics_for(device.vendor_id))
    return Inventory(sites, sensor_topics, **counts)  # type: ignore[arg-type]


def keep_passwords(folder: Path, accounts: Iterable[Account]) -> list[Account]:
    """``accounts``, each with the password its ``<user>.password`` file in ``folder`` already holds (a second
    ``lifeline up`` on the same data folder keeps every client's password: configs written for the first run, and
    clients still holding them, go on working); an account without a file keeps its new password."""
    out: list[Account] = []
    for account in accounts:
        path = folder / f"{account.username}.password"
        kept = read_secret_file(path, f"MQTT account {account.username!r} password") if path.exists() else ""
        out.append(dataclasses.replace(account, password=kept) if kept else account)
    return out


def write_credentials(folder: Path, accounts: Iterable[Account]) -> None:
    """One ``<user>.password`` file per account in ``folder``, each 0600 (the folder 0700)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for account in accounts:
        write_secret_file(folder / f"{account.username}.password", account.password + "\n")


def write_client_certs(folder: Path, accounts: Iterable[Account], ca: tuple[Path, Path]) -> None:
    """A client certificate per account in ``folder``, ``<user>.pem`` (common name: the user name) and its key
    ``<user>.key`` (0600), signed by ``ca`` (its certificate and key); existing ones are kept."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for account in accounts:
        issue(folder, ca, account.username, client=True)


def credential(folder: Path, username: str, broker: BrokerConfig, **overrides: object) -> BrokerConfig:
    """``broker`` (host, port, TLS) as ``username``, its password read from ``folder`` at connect time; over TLS with
    the account's own client certificate when ``folder`` holds one (``<user>.pem`` and ``<user>.key``)."""
    path = folder / f"{username}.password"
    if not path.exists():
        raise CredentialError(f"no credentials for MQTT account {username!r} in {folder} (lifeline broker config)")
    update: dict[str, object] = {"username": username, "password": Secret(file=path.resolve())}
    cert, key = folder / f"{username}.pem", folder / f"{username}.key"
    if broker.tls is not None and cert.exists() and key.exists():
        update["tls"] = broker.tls.model_copy(update={"cert_file": cert.resolve(), "key_file": key.resolve()})
    return broker.model_copy(update={**update, **overrides})


def replay_broker(publisher: BrokerConfig) -> BrokerConfig:
    """Where ``lifeline deadletter replay`` sends the bridge's letters: as :data:`REPLAY_USER` from the folder that
    holds the bridge publisher's password file, when that folder has the account; else ``publisher`` itself (a
    broker set up by hand, whose bridge account may publish telemetry)."""
    secret = publisher.password
    if secret is None or secret.file is None or not (secret.file.parent / f"{REPLAY_USER}.password").exists():
        return publisher
    return credential(secret.file.parent, REPLAY_USER, publisher)


def write_broker_files(out: Path, accounts: Sequence[Account], ca: tuple[Path, Path] | None = None) -> Path:
    """``lifeline broker config``: the dynamic-security file for Mosquitto and the credentials, all 0600; with ``ca``
    (its certificate and key) each account's client certificate next to its password."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    dynsec = out / "dynamic-security.json"
    write_secret_file(dynsec, orjson.dumps(dynsec_config(accounts), option=orjson.OPT_INDENT_2).decode())
    write_credentials(out / "credentials", accounts)
    if ca is not None:
        write_client_certs(out / "credentials", accounts, ca)
    return dynsec
