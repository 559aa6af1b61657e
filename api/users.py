"""Users, login tokens and machine tokens, kept in the API's tables. Synchronous (SQLAlchemy Core)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, insert, select, update

from api._tables import tokens, users
from api.auth import (
    TOKEN_PREFIX_API,
    TOKEN_PREFIX_SESSION,
    Passwords,
    Principal,
    Role,
    new_password,
    new_token,
    token_hash,
)
from infra.clock import MillisClock as Clock


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    areas: list[str]
    disabled: bool
    must_change_password: bool
    created_ms: int


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    kind: str
    name: str
    username: str
    created_ms: int
    expires_ms: int | None
    last_used_ms: int | None
    revoked: bool


class UserExistsError(ValueError):
    pass


# A token's last use is written at most this often, not on every request; the idle timeout counts from the last
# written use, so a session may end up to this much earlier than its timeout says.
LAST_USED_EVERY_MS = 60_000


class UserStore:
    def __init__(self, engine: Engine, passwords: Passwords, clock: Clock, idle_timeout_ms: int | None = None) -> None:
        self.engine = engine
        self.passwords = passwords
        self.clock = clock
        self.idle_timeout_ms = idle_timeout_ms

    # -- users ---------------------------------------------------------------------------------------------
    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar_one())

    def bootstrap(self, username: str, env_password: str | None) -> str | None:
        """Create the first admin when there is no user. Returns the generated password (to print once), or None
        when users exist already or the password came from the environment."""
        if self.count():
            return None
        password = env_password or new_password()
        self.create(username, password, Role.ADMIN, [], must_change_password=env_password is None)
        return None if env_password else password

    def create(
        self, username: str, password: str, role: Role, areas: list[str], *, must_change_password: bool = False
    ) -> User:
        hashed = self.passwords.hash(password)
        now = self.clock()
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.username).where(users.c.username == username)).first():
                raise UserExistsError(f"user {username!r} exists")
            conn.execute(
                insert(users).values(
                    username=username,
                    password_hash=hashed,
                    role=role.value,
                    areas=json.dumps(sorted(set(areas))),
                    disabled=False,
                    must_change_password=must_change_password,
                    created_ms=now,
                )
            )
        return User(username, role, sorted(set(areas)), False, must_change_password, now)

    def get(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.username)).mappings()]

    def update(
        self,
        username: str,
        *,
        role: Role | None = None,
        areas: list[str] | None = None,
        password: str | None = None,
        disabled: bool | None = None,
        must_change_password: bool | None = None,
    ) -> User | None:
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = role.value
        if areas is not None:
            values["areas"] = json.dumps(sorted(set(areas)))
        if password is not None:
            values["password_hash"] = self.passwords.hash(password)
        if disabled is not None:
            values["disabled"] = disabled
        if must_change_password is not None:
            values["must_change_password"] = must_change_password
        with self.engine.begin() as conn:
            if values:
                done = conn.execute(update(users).where(users.c.username == username).values(**values))
                if not done.rowcount:
                    return None
            # A new password ends every token of the user, machine tokens too (one made with a stolen password
            # must not outlive the change); disabling ends the sessions (a disabled user's tokens are refused anyway).
            ended = tokens.c.username == username
            if password is not None:
                conn.execute(update(tokens).where(ended, ~tokens.c.revoked).values(revoked=True))
            elif disabled:
                conn.execute(update(tokens).where(ended, tokens.c.kind == "session").values(revoked=True))
        return self.get(username)

    def delete(self, username: str) -> bool:
        with self.engine.begin() as conn:
            conn.execute(delete(tokens).where(tokens.c.username == username))
            return bool(conn.execute(delete(users).where(users.c.username == username)).rowcount)

    def admins(self) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(users).where(users.c.role == Role.ADMIN.value, ~users.c.disabled)
            return int(conn.execute(query).scalar_one())

    def check_password(self, username: str, password: str) -> User | None:
        """The user, if enabled and the password is right (as slow for an unknown name as for a wrong password)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        ok = self.passwords.verify(None if row is None else row["password_hash"], password)
        if row is None or not ok or row["disabled"]:
            return None
        return _user(row)

    # -- tokens --------------------------------------------------------------------------------------------
    def issue(self, username: str, kind: str, name: str, expires_ms: int | None) -> tuple[TokenInfo, str]:
        """A new token for ``username``; the token text is returned once and only its hash is kept."""
        token = new_token(TOKEN_PREFIX_SESSION if kind == "session" else TOKEN_PREFIX_API)
        now = self.clock()
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(tokens).values(
                    hash=token_hash(token),
                    kind=kind,
                    name=name,
                    username=username,
                    created_ms=now,
                    expires_ms=expires_ms,
                    last_used_ms=None,
                    revoked=False,
                )
            )
            token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return TokenInfo(token_id, kind, name, username, now, expires_ms, None, False), token

    def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for, or None (unknown, revoked, expired, idle too long, or its user
        disabled). GB/T 22239-2019 §8.1.4.1 b): a login token unused for longer than the idle timeout is revoked."""
        now = self.clock()
        query = (
            select(tokens.c.id, tokens.c.kind, tokens.c.expires_ms, tokens.c.created_ms, tokens.c.last_used_ms, users)
            .join(users, users.c.username == tokens.c.username)
            .where(tokens.c.hash == token_hash(token), ~tokens.c.revoked, ~users.c.disabled)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None or (row["expires_ms"] is not None and row["expires_ms"] <= now):
            return None
        last_used = row["last_used_ms"] if row["last_used_ms"] is not None else row["created_ms"]
        if row["kind"] == "session" and self.idle_timeout_ms is not None and now - last_used > self.idle_timeout_ms:
            self.revoke(int(row["id"]))
            return None
        if row["last_used_ms"] is None or now - row["last_used_ms"] >= LAST_USED_EVERY_MS:
            with self.engine.begin() as conn:
                conn.execute(update(tokens).where(tokens.c.id == row["id"]).values(last_used_ms=now))
        return Principal(
            username=row["username"],
            role=Role(row["role"]),
            areas=frozenset(json.loads(row["areas"])),
            token_id=int(row["id"]),
            must_change_password=bool(row["must_change_password"]) and row["kind"] == "session",
        )

    def revoke(self, token_id: int) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(update(tokens).where(tokens.c.id == token_id, ~tokens.c.revoked).values(revoked=True))
            return bool(done.rowcount)

    def list_tokens(self, kind: str | None = None, username: str | None = None) -> list[TokenInfo]:
        query = select(tokens).order_by(tokens.c.id)
        if kind is not None:
            query = query.where(tokens.c.kind == kind)
        if username is not None:
            query = query.where(tokens.c.username == username)
        with self.engine.connect() as conn:
            return [_token(r) for r in conn.execute(query).mappings()]

    def get_token(self, token_id: int) -> TokenInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).mappings().first()
        return None if row is None else _token(row)


def _user(row: object) -> User:
    r = dict(row)  # type: ignore[call-overload]
    return User(
        r["username"],
        Role(r["role"]),
        list(json.loads(r["areas"])),
        bool(r["disabled"]),
        bool(r["must_change_password"]),
        int(r["created_ms"]),
    )


def _token(row: object) -> TokenInfo:
    r = dict(row)  # type: ignore[call-overload]
    return TokenInfo(
        int(r["id"]),
        r["kind"],
        r["name"],
        r["username"],
        int(r["created_ms"]),
        r["expires_ms"],
        r["last_used_ms"],
        bool(r["revoked"]),
    )
