"""Load profiles from YAML files and folders, and the shipped catalogue."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from device_profiles.schema import Profile
from infra.config_loader import ConfigError, read_yaml, validate

CATALOGUE = Path(__file__).parent / "catalogue"


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file; raise ConfigError naming file, line, point and field."""
    doc = read_yaml(path)
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    return validate(Profile, doc, f"profile {name!r}" if name else "profile")


def profile_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into the YAML files below them (sorted); files are taken as given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]))
        else:
            files.append(path)
    return files


def load_profiles(paths: Iterable[Path]) -> dict[str, Profile]:
    """Load every profile under ``paths``; collect all problems of all files into one ConfigError."""
    profiles: dict[str, Profile] = {}
    where: dict[str, Path] = {}
    problems: list[str] = []
    files = profile_files(paths)
    if not files:
        raise ConfigError([f"{', '.join(str(p) for p in paths)}: no profile files (*.yaml) found"])
    for file in files:
        try:
            profile = load_profile(file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if profile.name in profiles:
            problems.append(f"{file}: profile name {profile.name!r} is already used by {where[profile.name]}")
            continue
        profiles[profile.name] = profile
        where[profile.name] = file
    if problems:
        raise ConfigError(problems)
    return profiles


def load_catalogue() -> dict[str, Profile]:
    """The profiles shipped with Lifeline, by name."""
    return load_profiles([CATALOGUE])
