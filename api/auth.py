"""Roles, what each may do and see, password hashing and bearer tokens. Pure: no database, no clock reads."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Role(StrEnum):
    VIEWER = "viewer"
    GATE_OPERATOR = "gate_operator"
    ENVIRONMENT_OFFICER = "environment_officer"
    SAFETY_INSPECTOR = "safety_inspector"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # sites, devices, readings, alerts, rules, commands, the live stream
    ALERT_ACTION = "alert_action"  # acknowledge, shelve, unshelve, comment, assign
    GATE_CONTROL = "gate_control"  # select and operate sluice gates
    ADMIN = "admin"  # users, API tokens, the audit log


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.GATE_OPERATOR: frozenset({Permission.READ, Permission.ALERT_ACTION, Permission.GATE_CONTROL}),
    Role.ENVIRONMENT_OFFICER: frozenset({Permission.READ, Permission.ALERT_ACTION}),
    Role.SAFETY_INSPECTOR: frozenset({Permission.READ, Permission.ALERT_ACTION}),
    Role.ADMIN: frozenset(Permission),
}

# Operators, officers and inspectors work in their areas; a viewer (the bureau's wall screen) and an admin see all.
SCOPED_ROLES = frozenset({Role.GATE_OPERATOR, Role.ENVIRONMENT_OFFICER, Role.SAFETY_INSPECTOR})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: the user (or the user a machine token acts for) and the token used."""

    username: str
    role: Role
    areas: frozenset[str] = field(default_factory=frozenset)
    token_id: int | None = None
    must_change_password: bool = False

    def may(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]

    @property
    def scoped(self) -> bool:
        return self.role in SCOPED_ROLES

    def sees_area(self, area: str | None) -> bool:
        """Whether this user may see a site of ``area`` (None: a site in no configured area, for unscoped only)."""
        if not self.scoped:
            return True
        return area is not None and area in self.areas

    def visible_areas(self, all_areas: Collection[str]) -> set[str] | None:
        """The areas to filter by, or None for no filter."""
        return None if not self.scoped else set(self.areas) & set(all_areas)


class Passwords:
    """argon2id hashes (argon2-cffi); the cost is configurable so tests can go fast."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # Checked against when the user does not exist, so that a wrong name costs as long as a wrong password.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


class LoginThrottle:
    """Failed logins per user name: after ``max_failures`` within ``window_s`` the name is refused for
    ``block_s`` (answer 429 with Retry-After), whatever the password. Guessing a password then takes years."""

    def __init__(self, max_failures: int = 5, window_s: float = 300.0, block_s: float = 300.0) -> None:
        self.max_failures, self.window_ms, self.block_ms = max_failures, window_s * 1000, block_s * 1000
        self._failures: dict[str, list[int]] = {}
        self._blocked_until: dict[str, int] = {}

    def blocked_for_s(self, username: str, now_ms: int) -> float | None:
        until = self._blocked_until.get(username.lower())
        if until is None or now_ms >= until:
            return None
        return (until - now_ms) / 1000

    def failed(self, username: str, now_ms: int) -> None:
        name = username.lower()
        recent = [t for t in self._failures.get(name, []) if now_ms - t < self.window_ms] + [now_ms]
        self._failures[name] = recent
        if len(recent) >= self.max_failures:
            self._blocked_until[name] = int(now_ms + self.block_ms)
            self._failures[name] = []
        if len(self._failures) > 100_000:  # bounded: forget the oldest names (guessing many names costs the same)
            for key in list(self._failures)[:50_000]:
                del self._failures[key]

    def succeeded(self, username: str) -> None:
        self._failures.pop(username.lower(), None)
        self._blocked_until.pop(username.lower(), None)


TOKEN_PREFIX_SESSION = "lls_"
TOKEN_PREFIX_API = "llt_"


def new_token(prefix: str) -> str:
    """A bearer token: 256 random bits, with a prefix that tells a login token from a machine token."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored: tokens carry 256 random bits, so a plain SHA-256 suffices (no slow hash needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(18)


MIN_PASSWORD = 12


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > 256:
        return "a password may have at most 256 characters"
    return None
