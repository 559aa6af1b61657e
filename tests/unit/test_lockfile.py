"""The dependency lock against pyproject.toml (scripts/lockfile.py): what scripts/check catches, offline."""

from __future__ import annotations

import copy
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lockfile", ROOT / "scripts" / "lockfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lockfile"] = module
    spec.loader.exec_module(module)
    return module


lockfile = _load()
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCK = (ROOT / "requirements.lock").read_text(encoding="utf-8")


def test_the_committed_lock_matches_pyproject() -> None:
    assert lockfile.problems(PYPROJECT, LOCK) == []


def test_paho_is_locked_to_one_release() -> None:
    assert lockfile.locked(LOCK)["paho-mqtt"].startswith("2.2.")


def _added(spec: str) -> dict[str, Any]:
    changed = copy.deepcopy(PYPROJECT)
    changed["project"]["dependencies"].append(spec)
    return changed


def _dev_added(spec: str) -> dict[str, Any]:
    changed = copy.deepcopy(PYPROJECT)
    changed["project"]["optional-dependencies"]["dev"].append(spec)
    return changed


def _unrelated() -> dict[str, Any]:
    changed = copy.deepcopy(PYPROJECT)
    changed["tool"]["ruff"]["line-length"] = 100
    return changed


STALE = "pyproject.toml's dependencies changed since the lock was made"


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        (_unrelated(), []),
        (_added("pydantic>=2"), [STALE]),  # satisfied, but the tables changed: made again by scripts/lock
        (_added("paho-mqtt>=2.3"), [STALE, "paho-mqtt: locked 2.2.0, pyproject asks >=2.3"]),
        (_added("not-a-locked-package>=1"), [STALE, "not-a-locked-package is not in the lock"]),
        (_dev_added("Not_A.Locked-Package"), [STALE, "Not_A.Locked-Package is not in the lock"]),
        (_added("not-for-this-platform>=1; sys_platform == 'win32'"), [STALE]),
    ],
    ids=[
        "unrelated-setting",
        "dependency-added-already-locked",
        "version-outside-the-lock",
        "new-package",
        "new-dev-package",
        "marker-not-for-the-target",
    ],
)
def test_a_changed_pyproject_is_caught(pyproject: dict[str, Any], expected: list[str]) -> None:
    assert lockfile.problems(pyproject, LOCK) == expected


def test_a_lock_not_made_by_scripts_lock_is_caught() -> None:
    hand_made = LOCK.replace(lockfile.DIGEST_LINE, "# ")
    assert lockfile.problems(PYPROJECT, hand_made)[0].startswith("the lock has no")


def test_names_are_compared_canonically() -> None:
    assert lockfile.locked("PyYAML==6.0.4 \\\n    --hash=sha256:ab\nfastapi_offline==1.7.7\n") == {
        "pyyaml": "6.0.4",
        "fastapi-offline": "1.7.7",
    }
