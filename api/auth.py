"""Roles, what each may do and see, password hashing, login throttling and bearer tokens. Pure: no database; the
throttle reads only the clock it is given."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Callable, Collection
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


class _Failures:
    """Failed logins of one kind of key: after ``max_failures`` within the window the key is refused for a while."""

    def __init__(self, max_failures: int, window_ms: float, block_ms: float, max_keys: int) -> None:
        self.max_failures, self.window_ms, self.block_ms, self.max_keys = max_failures, window_ms, block_ms, max_keys
        self._times: dict[object, list[int]] = {}
        self._blocked_until: dict[object, int] = {}

    def blocked_for_ms(self, key: object, now_ms: int) -> int | None:
        until = self._blocked_until.get(key)
        if until is None or now_ms >= until:
            return None
        return until - now_ms

    def failed(self, key: object, now_ms: int) -> bool:
        """Count a failure; True when it starts a block."""
        recent = [t for t in self._times.pop(key, []) if now_ms - t < self.window_ms] + [now_ms]
        if len(recent) >= self.max_failures:
            self._blocked_until[key] = int(now_ms + self.block_ms)
            return True
        self._times[key] = recent  # re-inserted: the dict stays in order of the last failure
        if len(self._times) > self.max_keys:  # bounded: forget the keys that failed longest ago
            for old in list(self._times)[: self.max_keys // 2]:
                del self._times[old]
        if len(self._blocked_until) > self.max_keys:
            self._blocked_until = {k: u for k, u in self._blocked_until.items() if u > now_ms}
        return False

    def forget(self, key: object) -> None:
        self._times.pop(key, None)
        self._blocked_until.pop(key, None)


def address_key(address: str) -> str:
    """The unit a client address is counted in: the address itself, or its /64 for IPv6 (one subscriber's)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True, slots=True)
class Refusal:
    wait_s: float
    scope: str  # "user": this user name from this address; "address": any name from this address


class LoginThrottle:
    """GB/T 22239-2019 §8.1.4.1 b): failed logins are limited per (user name, client address) pair and per address.

    After ``pair_max_failures`` within the window a name is refused *from that address* for ``block_s``, so that
    nobody can keep a user (say ``admin``) locked out from everywhere else by failing on purpose. After
    ``address_max_failures`` failures across any names an address is refused for every name (guessing across many
    names). A success clears its pair only: logging in to one's own account does not reset an address's count.
    """

    def __init__(
        self,
        clock: Callable[[], int],
        *,
        pair_max_failures: int = 5,
        address_max_failures: int = 20,
        window_s: float = 300.0,
        block_s: float = 300.0,
        max_keys: int = 100_000,
    ) -> None:
        self.clock = clock
        self._pairs = _Failures(pair_max_failures, window_s * 1000, block_s * 1000, max_keys)
        self._addresses = _Failures(address_max_failures, window_s * 1000, block_s * 1000, max_keys)

    def refused(self, username: str, address: str) -> Refusal | None:
        now, where = self.clock(), address_key(address)
        for scope, ms in (
            ("address", self._addresses.blocked_for_ms(where, now)),
            ("user", self._pairs.blocked_for_ms((username.lower(), where), now)),
        ):
            if ms is not None:
                return Refusal(ms / 1000, scope)
        return None

    def failed(self, username: str, address: str) -> list[str]:
        """Count a failed login; the scopes ("user", "address") whose block it starts (to audit once)."""
        now, where = self.clock(), address_key(address)
        started = []
        if self._pairs.failed((username.lower(), where), now):
            started.append("user")
        if self._addresses.failed(where, now):
            started.append("address")
        return started

    def succeeded(self, username: str, address: str) -> None:
        self._pairs.forget((username.lower(), address_key(address)))


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
