"""The dependency lock (requirements.lock) against pyproject.toml, offline.

    python scripts/lockfile.py digest    print the digest of pyproject's dependency tables (scripts/lock records it)
    python scripts/lockfile.py check     exit 1, saying why, unless the lock matches pyproject.toml

The lock matches when the digest in its header is that of pyproject's dependency tables now (so a dependency added,
removed or changed in pyproject without running scripts/lock is caught, while a new upstream release changes
nothing), and every requirement of pyproject (runtime, every extra, the build system's) names a locked package at a
version its specifier admits. Needs nothing but the standard library and ``packaging`` (in the lock).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
DIGEST_LINE = "# pyproject-dependencies-sha256: "
# what the lock is made for (scripts/lock passes the same to the resolver): markers are evaluated for it
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def dependency_tables(pyproject: dict[str, Any]) -> dict[str, Any]:
    """The parts of pyproject.toml the lock is made from (nothing else in it asks for a new lock)."""
    project, build = pyproject.get("project", {}), pyproject.get("build-system", {})
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system.requires": build.get("requires", []),
    }


def digest(pyproject: dict[str, Any]) -> str:
    canonical = json.dumps(dependency_tables(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def requirements(pyproject: dict[str, Any]) -> list[str]:
    """Every requirement the lock must satisfy: runtime, each extra, and the build system's."""
    tables = dependency_tables(pyproject)
    extras: list[str] = [spec for specs in tables["optional-dependencies"].values() for spec in specs]
    return [*tables["dependencies"], *extras, *tables["build-system.requires"]]


def locked(text: str) -> dict[str, str]:
    """Package name (canonical) -> locked version, from the ``name==version`` lines of the lock."""
    return {canonicalize_name(m.group(1)): m.group(2) for m in map(_PIN.match, text.splitlines()) if m}


def problems(pyproject: dict[str, Any], lock_text: str) -> list[str]:
    """Why the lock does not match ``pyproject`` (empty: it matches)."""
    found: list[str] = []
    recorded = next(
        (line.removeprefix(DIGEST_LINE).strip() for line in lock_text.splitlines() if line.startswith(DIGEST_LINE)),
        None,
    )
    if recorded is None:
        found.append(f"the lock has no '{DIGEST_LINE.strip()}' line: it was not made by scripts/lock")
    elif recorded != digest(pyproject):
        found.append("pyproject.toml's dependencies changed since the lock was made")
    versions = locked(lock_text)
    for spec in requirements(pyproject):
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({**TARGET, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name not in versions:
            found.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(versions[name], prereleases=True):
            found.append(f"{req.name}: locked {versions[name]}, pyproject asks {req.specifier}")
    return found


def main(argv: list[str]) -> int:
    pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    if argv == ["digest"]:
        print(digest(pyproject))
        return 0
    if argv != ["check"]:
        print(__doc__, file=sys.stderr)
        return 2
    if not LOCK.exists():
        print(f"lock: {LOCK.name} is missing: run scripts/lock", file=sys.stderr)
        return 1
    found = problems(pyproject, LOCK.read_text(encoding="utf-8"))
    for problem in found:
        print(f"lock: {problem}", file=sys.stderr)
    if found:
        print(f"lock: {LOCK.name} does not match pyproject.toml: run scripts/lock and commit both", file=sys.stderr)
        return 1
    print(f"lock: {LOCK.name} matches pyproject.toml ({len(locked(LOCK.read_text(encoding='utf-8')))} packages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
