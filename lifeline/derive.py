"""``lifeline up --configs-only``: every service's config of a production district, derived from its deployment spec.

No server is started. The spec names the external broker and InfluxDB the services will use, the credentials folder
of ``lifeline broker config --deployment`` (same spec: the same accounts), the real sites' edge site files and the
HJ 212 ingest config of the pollution sources' stations (``hj212``). Out come, under ``data_dir``, 0600 and with every
password as a file reference: each site's edge config (its accounts, its keys, a state folder), the bridges', the
rules engines' (one per partition), the API's (areas, rule packs, each gate's limits from its site file) and the HJ
212 ingest's (its account ``hj212``; a site file of each of its stations' sites tells the bridges and engines their
devices). Copy each to the machine that runs that service, with the files it names.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import DeviceConfig, EdgeConfig, load_site
from infra.config_loader import ConfigError
from infra.secret import Secret
from lifeline.deployment import DeploymentSpec
from lifeline.up import Stack, _add_local_settings, _api_config, _service_children, _write_config
from telemetry.keys import create_site_keys

__all__ = ["derive_configs"]


def _copy_sites(deploy: DeploymentSpec, sites_dir: Path) -> dict[str, Path]:
    """Each real site's config, read by the edge's own loader and written typed under ``sites_dir`` (its relative
    profile paths resolved against its own file)."""
    out: dict[str, Path] = {}
    for path in deploy.sites:
        config = load_site(path).config
        profiles = [p if p.is_absolute() else (path.parent / p).resolve() for p in config.profile_paths]
        if config.site in out:
            raise ConfigError([f"{path}: site {config.site!r} is given twice in the deployment's sites"])
        out[config.site] = _write_config(
            sites_dir / f"{config.site}.yaml", config.model_copy(update={"profile_paths": profiles})
        )
    return out


def _hj212_config(deploy: DeploymentSpec, stack: Stack, sites_dir: Path, edge_sites: dict[str, Path]) -> Path | None:
    """The spec's HJ 212 ingest config on the deployment's broker (account ``hj212``), its relative paths resolved
    against its own file, and a site file of each of its stations' sites (for the bridges' and engines' device
    registry: no edge agent runs for them)."""
    config = deploy.hj212_config()
    if config is None or deploy.hj212 is None:
        return None
    base = deploy.hj212.parent

    def at(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    def password(ref: str | None) -> str | None:  # file:PATH relative to the config's folder, as the ingest reads it
        if ref is None or not ref.startswith("file:"):
            return ref
        return f"file:{at(Path(ref.removeprefix('file:')))}"

    def key(secret: Secret | None) -> Secret | None:  # an SM4 key's {file: PATH}, relative to the config's folder
        if secret is None or secret.file is None or secret.file.is_absolute():
            return secret
        return Secret(file=at(secret.file))

    clash = sorted({s.site for s in config.stations} & set(edge_sites))
    if clash:
        raise ConfigError([f"{deploy.hj212}: site(s) {', '.join(clash)} of HJ 212 stations are edge sites too"])
    profiles = [at(p) for p in config.profile_paths]
    config = config.model_copy(
        update={
            "broker": stack.account("hj212"),
            "passwords_file": at(config.passwords_file) if config.passwords_file is not None else None,
            "profile_paths": profiles,
            "dead_letter_path": (deploy.data_dir / "hj212" / "deadletter.sqlite").resolve(),
            "stations": [
                s.model_copy(update={"password": password(s.password), "sm4_key": key(s.sm4_key)})
                for s in config.stations
            ],
        }
    )
    for site in sorted({s.site for s in config.stations}):
        devices = [DeviceConfig(id=s.device, profile=s.profile) for s in config.stations if s.site == site]
        _write_config(sites_dir / f"{site}.yaml", EdgeConfig(site=site, devices=devices, profile_paths=profiles))
    return _write_config(deploy.data_dir / "hj212.yaml", config)


def derive_configs(deploy: DeploymentSpec, source: Path | None = None) -> list[Path]:
    """Write every service's config for the spec's real district; return the files. ConfigError (naming ``source``,
    the line and the key) when the spec lacks what production configs need."""
    for key, value in (("broker", deploy.broker), ("influx", deploy.influx), ("sites", deploy.sites)):
        if not value:
            raise deploy.refuse(
                [key],
                "production configs need it (the external server the services use, or the real sites' edge site files)",
                source,
            )
    assert deploy.broker is not None
    assert deploy.influx is not None
    assert deploy.broker_credentials is not None  # the spec requires it with a broker
    data_dir = deploy.data_dir
    stack = Stack(broker=deploy.broker, influx=deploy.influx, credentials=deploy.broker_credentials.resolve())
    paths = _copy_sites(deploy, data_dir / "sites")
    sources = deploy.hj212_sites()  # the HJ 212 stations' sites: sites like any other
    deploy.check_sites(sorted({*paths, *sources}), source)
    keys_dir = data_dir / "keys"
    create_site_keys(keys_dir, sorted(paths))  # kept when present: the edges and the API stay paired
    for site, path in sorted(paths.items()):
        _add_local_settings(site, path, data_dir / "edge" / site, stack, keys_dir)
    hj212 = _hj212_config(deploy, stack, data_dir / "sites", paths)
    services = _service_children(data_dir, stack, deploy, sorted({*paths, *sources}))
    api = _api_config(data_dir, stack, paths, keys_dir, None, deploy, sources)
    return [*paths.values(), *(Path(child.argv[-1]) for child in services), api, *([hj212] if hj212 else [])]
