"""The API's configuration (``lifeline api --config API.yaml``), validated at load before any socket opens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, model_validator

from alerts.db import DEFAULT_STORE_URL
from device_profiles import field_error
from infra.config_loader import ConfigError, YamlDoc, read_yaml, validate
from infra.mqtt import BrokerConfig
from infra.secret import Secret
from storage.connection import InfluxConnection
from telemetry.interlocks import GateLimits
from telemetry.keys import KeyFileError, load_signing_key, load_verify_key
from telemetry.signing import SigningKey, VerifyKey

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
AreaName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ADMIN_PASSWORD_ENV = "LIFELINE_ADMIN_PASSWORD"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenTls(_Strict):
    """HTTPS: the server's certificate (with its chain) and key, PEM (``lifeline up``: one of the deployment's CA)."""

    cert_file: Path
    key_file: Path = Field(description="the private key, mode 0600")


class ListenConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535, description="0: a free port (printed at start)")
    tls: ListenTls | None = Field(default=None, description="serve HTTPS with this certificate; none: plain HTTP")


class StoreConfig(_Strict):
    url: str = Field(default=DEFAULT_STORE_URL, description="SQLAlchemy URL of the alert store (the rules service's)")


class HttpConfig(_Strict):
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="largest request body; a larger one is refused (413) before it is parsed",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="addresses or networks whose X-Forwarded-For is believed (audit log, login throttle); "
        "empty: none, the peer's address is the client's",
    )
    hsts_max_age_s: int = Field(
        default=31_536_000,
        ge=0,
        le=63_072_000,
        description="Strict-Transport-Security max-age on every HTTPS answer (browsers then refuse plain HTTP to "
        "this host name; they ignore it for an IP address); 0: not sent. Never sent over plain HTTP",
    )


class LoginThrottleConfig(_Strict):
    """GB/T 22239-2019 §8.1.4.1 b): limit failed logins, without letting anyone lock a user out from elsewhere."""

    pair_max_failures: int = Field(default=5, ge=1, le=1000, description="per user name and client address")
    address_max_failures: int = Field(default=20, ge=1, le=100_000, description="per client address, any names")
    window_s: float = Field(default=300.0, gt=0, le=86400, description="failures older than this are forgotten")
    block_s: float = Field(default=300.0, gt=0, le=86400, description="how long a refusal lasts")


class PasswordPolicyConfig(_Strict):
    """GB/T 22239-2019 §8.1.4.1 a): authentication information with complexity requirements."""

    min_length: int = Field(default=12, ge=12, le=128)
    min_character_classes: int = Field(
        default=0, ge=0, le=4, description="how many of lower case, upper case, digits and others; 0: no rule"
    )
    blocked_words: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="refused besides the shipped list of common passwords (site, company and product names)",
    )


class AuthConfig(_Strict):
    session_lifetime_s: int = Field(default=8 * 3600, ge=60, le=30 * 86400, description="login token lifetime")
    idle_timeout_s: int = Field(
        default=30 * 60,
        ge=60,
        le=30 * 86400,
        description="a login token unused for longer is refused and revoked (GB/T 22239-2019 §8.1.4.1 b))",
    )
    api_token_lifetime_days: int | None = Field(
        default=365, ge=1, le=3650, description="default lifetime of machine tokens; null: they never expire"
    )
    bootstrap_admin: str = Field(
        default="admin",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description=f"created on first start when there is no user; password from ${ADMIN_PASSWORD_ENV} or printed",
    )
    bootstrap_password: Secret | None = Field(
        default=None,
        description="the first admin's password as {file: PATH} or {env: NAME} (it must pass the "
        f"password policy); none: ${ADMIN_PASSWORD_ENV}, else a one-time password is printed",
    )
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=64, le=1 << 21)
    login_throttle: LoginThrottleConfig = Field(default_factory=LoginThrottleConfig)
    password: PasswordPolicyConfig = Field(default_factory=PasswordPolicyConfig)


class RulesConfig(_Strict):
    paths: list[Path] = Field(default_factory=list, description="rule files or folders; empty: the shipped packs")


class HistoryConfig(_Strict):
    max_points: int = Field(default=2000, ge=2, le=100_000, description="most points one history answer may hold")
    default_points: int = Field(default=500, ge=2, le=100_000)
    max_range_days: int = Field(default=400, ge=1, le=3650)

    @model_validator(mode="after")
    def _default_within(self) -> HistoryConfig:
        if self.default_points > self.max_points:
            raise field_error("default_points must not exceed max_points", "default_points")
        return self


class GateOverride(GateLimits):
    """One gate's limits (``telemetry.interlocks.GateLimits``, in metres, the edge's ``control:`` model and defaults):
    ``lifeline up`` copies them from the gate's edge site file, so that the API refuses what the edge would."""

    site: Id
    device: Id


class GatesConfig(_Strict):
    selection_s: float = Field(default=10.0, gt=0, le=300, description="how long a selection stays valid")
    default_ttl_s: float = Field(default=30.0, gt=0, le=3600)
    max_ttl_s: float = Field(default=300.0, gt=0, le=3600)
    edge_timeout_s: float = Field(
        default=10.0, ge=0, le=3600, description="after expires_ms, how long to wait for a final result"
    )
    max_state_age_s: float = Field(default=30.0, gt=0, description="gate telemetry older than this is no data")
    receipt_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="a command whose receipt the edge has not confirmed by then ends not_delivered and is cancelled",
    )
    write_selection: bool = Field(
        default=False, description="point writes (set points) need a selection first (select-before-operate)"
    )
    defaults: GateLimits | None = Field(
        default=None, description="limits of a gate not listed in devices; none: such a gate is refused"
    )
    devices: list[GateOverride] = Field(default_factory=list, description="limits of single gates")

    def limits(self, site: str, device: str) -> GateLimits | None:
        """The gate's limits as configured (not yet resolved against its profile); None: the API knows none."""
        for gate in self.devices:
            if gate.site == site and gate.device == device:
                return gate
        return self.defaults


class StreamConfig(_Strict):
    keepalive_s: float = Field(default=15.0, gt=0, le=300)
    queue_size: int = Field(default=1000, ge=10, le=1_000_000, description="events held per slow client")


class LiveConfig(_Strict):
    """When a silent device is shown stale, then offline (docs/api.md, Device state)."""

    stale_intervals: float = Field(default=3.0, ge=1, le=1000, description="poll intervals without a sample: stale")
    min_stale_s: float = Field(default=5.0, gt=0, le=86400, description="never stale sooner than this")
    hj212_stale_s: float = Field(
        default=180.0, gt=0, le=86400, description="an HJ 212 station without a real-time packet for this long: stale"
    )
    offline_after_s: float = Field(default=300.0, gt=0, le=7 * 86400, description="no sample for this long: offline")
    stale_after_s: dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[float, Field(gt=0, le=86400)]] = (
        Field(
            default_factory=dict,
            description="profile name -> seconds without a sample before stale, over the profile's own (an HJ 212 "
            "station's upload period or heartbeat, which its ingest config knows)",
        )
    )


class SiteKeysConfig(_Strict):
    """One site's keys at the API (``lifeline keys create`` makes them; decision record 009)."""

    control_private_key: Path = Field(description="signs this site's commands (PEM, mode 0600): DIR/SITE/control.key")
    site_public_key: Path = Field(description="verifies this site's results (PEM): DIR/SITE/site.pub")


@dataclass(frozen=True, slots=True)
class SiteKeys:
    control: SigningKey
    site: VerifyKey


class DistrictSite(_Strict):
    """Where a site lies, for the console's overview: a schematic by river and area, not a map (no outside tiles)."""

    title: str = Field(default="", max_length=200)
    river: str = Field(default="", max_length=64, description="the waterway it lies on; empty: off the rivers")
    area: str = Field(default="", max_length=64, description="the part of the district it is in")
    km: float | None = Field(default=None, ge=0, description="its place along the river, km from the mouth")


class DistrictConfig(_Strict):
    title: str = Field(default="", max_length=200)
    sites: dict[Id, DistrictSite] = Field(default_factory=dict, description="site id -> where it lies")


class ApiConfig(_Strict):
    listen: ListenConfig = Field(default_factory=ListenConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    client_id: str = Field(default="lifeline-api", min_length=1, max_length=64)
    influx: InfluxConnection = Field(default_factory=InfluxConnection)
    store: StoreConfig = Field(default_factory=StoreConfig)
    areas: dict[AreaName, list[Id]] = Field(default_factory=dict, description="area name -> its site ids")
    auth: AuthConfig = Field(default_factory=AuthConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    live: LiveConfig = Field(default_factory=LiveConfig, description="when silent devices are stale or offline")
    district: DistrictConfig = Field(default_factory=DistrictConfig, description="the overview's layout")
    profile_paths: list[Path] = Field(default_factory=list, description="profiles besides the catalogue")
    sites: list[Path] = Field(
        default_factory=list,
        description="the deployment's edge site files or folders (the bridge's validation.sites): a site they declare "
        "lists their devices and no others; another site the devices its agent's birth names. Empty: a site "
        "without a birth yet takes any device (api/live.py, LiveCache)",
    )
    permits_file: Path | None = Field(
        default=None,
        description="the pollution sources' permits (a permit file, rules/standards/permits.py): source reports "
        "count exceedances against them; none: reports give means, capture and totals only",
    )
    site_keys: dict[Id, SiteKeysConfig] = Field(
        default_factory=dict,
        description="site id -> its keys; a site without keys can neither be sent a command "
        "nor have its results recorded",
    )

    @model_validator(mode="after")
    def _one_area_per_site(self) -> ApiConfig:
        seen: dict[str, str] = {}
        for area, sites in self.areas.items():
            for i, site in enumerate(sites):
                if site in seen:
                    raise field_error(f"site {site!r} is already in area {seen[site]!r}", "areas", area, i)
                seen[site] = area
        if self.gates.default_ttl_s > self.gates.max_ttl_s:
            raise field_error("default_ttl_s must not exceed max_ttl_s", "gates", "default_ttl_s")
        return self

    def area_of(self, site: str) -> str | None:
        for area, sites in self.areas.items():
            if site in sites:
                return area
        return None


def load_config(path: Path) -> ApiConfig:
    """Read and validate an API file; ConfigError names the file, the line, the field and the reason.
    Key files are read too (and read again by the service), so that a bad one stops the API before it starts."""
    doc = read_yaml(path)
    config = validate(ApiConfig, doc, "api config")
    base = path.parent

    def rel(p: Path) -> Path:  # relative paths in the file are relative to the file, as in the site files
        return p if p.is_absolute() else base / p

    keys = {
        site: SiteKeysConfig(control_private_key=rel(k.control_private_key), site_public_key=rel(k.site_public_key))
        for site, k in config.site_keys.items()
    }
    config = config.model_copy(
        update={
            "rules": RulesConfig(paths=[rel(p) for p in config.rules.paths]),
            "profile_paths": [rel(p) for p in config.profile_paths],
            "sites": [rel(p) for p in config.sites],
            "listen": config.listen.model_copy(
                update={"tls": _tls_files(config.listen.tls, rel)} if config.listen.tls else {}
            ),
            "site_keys": keys,
        }
    )
    load_site_keys(config, doc)
    return config


def _tls_files(tls: ListenTls, rel: Callable[[Path], Path]) -> ListenTls:
    return ListenTls(cert_file=rel(tls.cert_file), key_file=rel(tls.key_file))


def load_site_keys(config: ApiConfig, doc: YamlDoc | None = None) -> dict[str, SiteKeys]:
    """Every site's keys from their files; ConfigError names the site, the field and the file for each bad one."""
    out: dict[str, SiteKeys] = {}
    problems: list[str] = []
    for site, files in config.site_keys.items():
        loaded: dict[str, SigningKey | VerifyKey] = {}
        for field, load in (("control_private_key", load_signing_key), ("site_public_key", load_verify_key)):
            try:
                loaded[field] = load(getattr(files, field))
            except KeyFileError as exc:
                line = doc.line_of(["site_keys", site, field]) if doc else None
                where = f"{doc.path}:{line}" if doc and line else (str(doc.path) if doc else "api config")
                problems.append(f"{where}: field site_keys.{site}.{field}: {exc}")
        control, public = loaded.get("control_private_key"), loaded.get("site_public_key")
        if isinstance(control, SigningKey) and isinstance(public, VerifyKey):
            out[site] = SiteKeys(control, public)
    if problems:
        raise ConfigError(problems)
    return out


__all__ = [
    "ADMIN_PASSWORD_ENV",
    "ApiConfig",
    "ConfigError",
    "GateLimits",
    "GatesConfig",
    "SiteKeys",
    "SiteKeysConfig",
    "load_config",
    "load_site_keys",
]
