"""Login, the caller's own account, user management and API tokens (admin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import Principal, Refusal, Role
from api.deps import NAME_PATTERN, TEXT_PATTERN, Admin, Service, Who, error, source
from api.password_policy import MAX_LENGTH, MIN_LENGTH_FLOOR
from api.service import ApiService
from api.users import TokenInfo, User, UserExistsError

router = APIRouter()

Username = Annotated[str, Field(pattern=NAME_PATTERN, description="1-64 of a-z 0-9 _ . -")]
UsernamePath = Annotated[str, Path(pattern=NAME_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    username: str
    role: Role
    areas: list[str]
    disabled: bool
    must_change_password: bool
    created_ms: int

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            username=u.username,
            role=u.role,
            areas=u.areas,
            disabled=u.disabled,
            must_change_password=u.must_change_password,
            created_ms=u.created_ms,
        )


class LoginOut(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_ms: int
    user: UserOut


class PasswordIn(_In):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


def _least_length(value: str) -> str:
    # The policy's floor, in the schema; the rest of the policy (configured length, common passwords, the user
    # name) needs the config and the user, and is checked by the route (_check_password).
    if len(value) < MIN_LENGTH_FLOOR:
        raise ValueError(f"a password needs at least {MIN_LENGTH_FLOOR} characters")
    return value


class UserIn(_In):
    username: Username
    password: str = Field(max_length=MAX_LENGTH, description="set by an admin: the user must change it at first login")
    role: Role
    areas: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list, max_length=100)

    @field_validator("password")
    @classmethod
    def _pw(cls, value: str) -> str:
        return _least_length(value)


class UserPatch(_In):
    role: Role | None = None
    areas: list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None = Field(None, max_length=100)
    password: str | None = Field(
        None, max_length=MAX_LENGTH, description="set by an admin: the user must change it at the next login"
    )
    disabled: bool | None = None

    @field_validator("password")
    @classmethod
    def _pw(cls, value: str | None) -> str | None:
        return None if value is None else _least_length(value)


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)
    username: Username | None = Field(None, description="the user the token acts for; default: you")
    lifetime_days: int | None = Field(None, ge=1, le=3650, description="default: the configured lifetime")


class TokenOut(BaseModel):
    id: int
    kind: str
    name: str
    username: str
    created_ms: int
    expires_ms: int | None
    last_used_ms: int | None
    revoked: bool

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, t: TokenInfo) -> TokenOut:
        return cls.model_validate(t)


class NewTokenOut(TokenOut):
    token: str = Field(description="shown once: only its hash is kept")


def _check_areas(svc: Service, areas: list[str] | None) -> None:
    unknown = sorted(set(areas or []) - set(svc.config.areas))
    if unknown:
        raise error(
            422,
            f"unknown area(s) {', '.join(unknown)} (known: {', '.join(sorted(svc.config.areas))})",
            "areas",
            code="user.unknown_areas",
            params={"areas": ", ".join(unknown)},
        )


def _check_password(svc: Service, password: str, username: str, field: str) -> None:
    refused = svc.password_policy.refusal(password, username)
    if refused is not None:
        raise error(422, refused.message, field, code=refused.code, params=refused.params)


def _too_many(refusal: Refusal, field: str = "username") -> HTTPException:
    # One throttle counts every wrong password of a user name from an address, at a login or a password change
    # alike: the messages and codes are the login's (the console translates them by code).
    wait_s = max(1, round(refusal.wait_s))
    wait = f"try again in {wait_s} s"
    if refusal.scope == "user":
        detail = error(
            429,
            f"too many failed logins for this user from your address: {wait}",
            field,
            code="auth.throttled_user",
            params={"wait_s": wait_s},
        ).detail
    else:
        detail = error(
            429, f"too many failed logins from your address: {wait}", code="auth.throttled", params={"wait_s": wait_s}
        ).detail
    return HTTPException(429, detail=detail, headers={"Retry-After": str(wait_s)})


# -- login and the caller's account ------------------------------------------------------------------------


@router.post(
    "/api/auth/login",
    tags=["auth"],
    responses={401: {"description": "wrong user name or password"}, 429: {"description": "too many failed logins"}},
)
def login(body: LoginIn, svc: Service, request: Request) -> LoginOut:
    address = source(request)
    refusal = svc.login_throttle.refused(body.username, address)
    if refusal is not None:
        raise _too_many(refusal)
    user = svc.users.check_password(body.username, body.password)
    if user is None:
        name = body.username[:64]
        for scope in svc.login_throttle.failed(body.username, address):  # audited once, when a block starts
            svc.audit(
                who=name,
                action="auth.login_blocked",
                target=f"user:{name}" if scope == "user" else f"address:{address}",
                source=address,
                detail={"scope": scope},
            )
        svc.audit(who=name, action="auth.login_failed", target=f"user:{name}", source=address)
        raise error(401, "wrong user name or password", code="auth.wrong_credentials")
    svc.login_throttle.succeeded(body.username, address)
    expires = svc.clock() + svc.config.auth.session_lifetime_s * 1000
    info, token = svc.users.issue(user.username, "session", "login", expires)
    svc.audit(
        who=user.username,
        action="auth.login",
        target=f"user:{user.username}",
        source=address,
        detail={"token_id": info.id},
    )
    return LoginOut(token=token, expires_ms=expires, user=UserOut.of(user))


@router.post("/api/auth/logout", tags=["auth"], status_code=204)
def logout(who: Who, svc: Service, request: Request) -> None:
    if who.token_id is not None:
        svc.users.revoke(who.token_id)
    svc.audit(who=who.username, action="auth.logout", target=f"user:{who.username}", source=source(request))


@router.get("/api/auth/me", tags=["auth"])
def me(who: Who, svc: Service) -> UserOut:
    user = svc.users.get(who.username)
    if user is None:
        raise error(404, "user no longer exists", code="user.gone")
    return UserOut.of(user)


@router.post(
    "/api/auth/password",
    tags=["auth"],
    status_code=204,
    responses={
        422: {"description": "the old password is wrong, or the new one is refused by the password policy"},
        429: {"description": "too many wrong passwords for this user from your address (logins count too)"},
    },
)
def change_password(body: PasswordIn, who: Who, svc: Service, request: Request) -> None:
    """Change the caller's password. Wrong old passwords count in the login throttle (a stolen session guessing the
    password is stopped as a guessing login is), and the session that starts a block is ended. Every failure and
    the change are audited with the user and the client's address. A new password ends every token of the user:
    its sessions (this one too) and its machine tokens, each audited (a token made with a stolen password must not
    outlive the change; an admin issues a machine a new one)."""
    address = source(request)
    refusal = svc.login_throttle.refused(who.username, address)
    if refusal is not None:
        raise _too_many(refusal, "old_password")
    if svc.users.check_password(who.username, body.old_password) is None:
        _wrong_old_password(svc, who, address)
        raise error(422, "the old password is wrong", "old_password", code="password.old_wrong")
    svc.login_throttle.succeeded(who.username, address)
    try:
        _check_password(svc, body.new_password, who.username, "new_password")
        if body.new_password == body.old_password:
            raise error(422, "the new password must differ from the old one", "new_password", code="password.unchanged")
    except HTTPException as exc:
        code = exc.detail.get("code") if isinstance(exc.detail, dict) else None
        _audit_failed(svc, who, address, str(code or "password.refused"))
        raise
    revoked = _machine_tokens_ended(
        svc,
        who.username,
        lambda: svc.users.update(who.username, password=body.new_password, must_change_password=False),
    )
    svc.audit(
        who=who.username,
        action="auth.password_changed",
        target=f"user:{who.username}",
        source=address,
        detail={"token_id": who.token_id, "machine_tokens_revoked": revoked},
    )
    _audit_revoked(svc, who.username, revoked, address, who.username)


def _audit_failed(svc: ApiService, who: Principal, address: str, reason: str, **detail: object) -> None:
    svc.audit(
        who=who.username,
        action="auth.password_change_failed",
        target=f"user:{who.username}",
        source=address,
        detail={"reason": reason, "token_id": who.token_id, **detail},
    )


def _wrong_old_password(svc: ApiService, who: Principal, address: str) -> None:
    """Count and audit a wrong old password; a block it starts is audited once and ends the token that asked."""
    started = svc.login_throttle.failed(who.username, address)
    for scope in started:
        svc.audit(
            who=who.username,
            action="auth.password_change_blocked",
            target=f"user:{who.username}" if scope == "user" else f"address:{address}",
            source=address,
            detail={"scope": scope, "token_id": who.token_id},
        )
    ended = bool(started) and who.token_id is not None and svc.users.revoke(who.token_id)
    _audit_failed(svc, who, address, "password.old_wrong", token_ended=ended)


def _machine_tokens_ended(svc: ApiService, username: str, change: Callable[[], User | None]) -> list[int]:
    """Run ``change`` (a new password, which ends every token of ``username``); the machine tokens it revoked."""
    before = {t.id for t in svc.users.list_tokens("api", username) if not t.revoked}
    change()
    return sorted(t.id for t in svc.users.list_tokens("api", username) if t.id in before and t.revoked)


def _audit_revoked(svc: ApiService, username: str, revoked: list[int], address: str, by: str) -> None:
    for token_id in revoked:
        svc.audit(
            who=by,
            action="token.revoke",
            target=f"token:{token_id}",
            source=address,
            detail={"reason": "password_changed", "for": username},
        )


# -- users (admin) -----------------------------------------------------------------------------------------------


class AreaOut(BaseModel):
    area: str
    sites: list[str] = Field(description="the area's sites as configured (some may not have reported yet)")


@router.get("/api/areas", tags=["users"])
def list_areas(who: Admin, svc: Service) -> list[AreaOut]:
    """The configured areas a user may be given (``areas`` of the API config), with their sites."""
    return [AreaOut(area=a, sites=list(sites)) for a, sites in sorted(svc.config.areas.items())]


@router.get("/api/users", tags=["users"])
def list_users(who: Admin, svc: Service) -> list[UserOut]:
    return [UserOut.of(u) for u in svc.users.list_users()]


@router.post("/api/users", tags=["users"], status_code=201)
def create_user(body: UserIn, who: Admin, svc: Service, request: Request) -> UserOut:
    _check_areas(svc, body.areas)
    _check_password(svc, body.password, body.username, "password")
    try:  # the admin knows this password: the user must replace it before anything else
        user = svc.users.create(body.username, body.password, body.role, body.areas, must_change_password=True)
    except UserExistsError as exc:
        raise error(409, str(exc), "username", code="user.exists") from exc
    svc.audit(
        who=who.username,
        action="user.create",
        target=f"user:{user.username}",
        source=source(request),
        detail={"role": user.role.value, "areas": user.areas},
    )
    return UserOut.of(user)


@router.get("/api/users/{username}", tags=["users"])
def get_user(username: UsernamePath, who: Admin, svc: Service) -> UserOut:
    user = svc.users.get(username)
    if user is None:
        raise error(404, f"no user {username!r}", "username", code="user.not_found", params={"username": username})
    return UserOut.of(user)


@router.patch("/api/users/{username}", tags=["users"])
def update_user(username: UsernamePath, body: UserPatch, who: Admin, svc: Service, request: Request) -> UserOut:
    _check_areas(svc, body.areas)
    current = svc.users.get(username)
    if current is None:
        raise error(404, f"no user {username!r}", "username", code="user.not_found", params={"username": username})
    losing_admin = current.role is Role.ADMIN and (
        (body.role is not None and body.role is not Role.ADMIN) or body.disabled
    )
    if losing_admin and svc.users.admins() <= 1:
        raise error(
            409,
            "this is the last enabled admin",
            "role" if body.role is not None else "disabled",
            code="user.last_admin",
        )
    if body.password is not None:
        _check_password(svc, body.password, username, "password")
    # A password an admin sets for someone else is one-time: its user must replace it at the next login.
    must_change = True if body.password is not None and username != who.username else None
    user: User | None = None

    def change() -> User | None:
        nonlocal user
        user = svc.users.update(
            username,
            role=body.role,
            areas=body.areas,
            password=body.password,
            disabled=body.disabled,
            must_change_password=must_change,
        )
        return user

    revoked = _machine_tokens_ended(svc, username, change)
    if user is None:
        raise error(404, f"no user {username!r}", "username", code="user.not_found", params={"username": username})
    changed = body.model_dump(exclude_none=True, exclude={"password"})
    svc.audit(
        who=who.username,
        action="user.update",
        target=f"user:{username}",
        source=source(request),
        detail={**changed, "password_changed": body.password is not None, "machine_tokens_revoked": revoked},
    )
    _audit_revoked(svc, username, revoked, source(request), who.username)
    return UserOut.of(user)


@router.delete("/api/users/{username}", tags=["users"], status_code=204)
def delete_user(username: UsernamePath, who: Admin, svc: Service, request: Request) -> None:
    current = svc.users.get(username)
    if current is None:
        raise error(404, f"no user {username!r}", "username", code="user.not_found", params={"username": username})
    if username == who.username:
        raise error(409, "you cannot delete yourself", "username", code="user.delete_self")
    if current.role is Role.ADMIN and not current.disabled and svc.users.admins() <= 1:
        raise error(409, "this is the last enabled admin", "username", code="user.last_admin")
    svc.users.delete(username)
    svc.audit(who=who.username, action="user.delete", target=f"user:{username}", source=source(request))


# -- API tokens for machines (admin) -------------------------------------------------------------------------


@router.get("/api/tokens", tags=["tokens"])
def list_tokens(who: Admin, svc: Service) -> list[TokenOut]:
    return [TokenOut.of(t) for t in svc.users.list_tokens("api")]


@router.post("/api/tokens", tags=["tokens"], status_code=201)
def create_token(body: TokenIn, who: Admin, svc: Service, request: Request) -> NewTokenOut:
    username = body.username or who.username
    if svc.users.get(username) is None:
        raise error(422, f"no user {username!r}", "username", code="user.not_found", params={"username": username})
    days = body.lifetime_days or svc.config.auth.api_token_lifetime_days
    expires = None if days is None else svc.clock() + days * 86_400_000
    info, token = svc.users.issue(username, "api", body.name, expires)
    svc.audit(
        who=who.username,
        action="token.create",
        target=f"token:{info.id}",
        source=source(request),
        detail={"name": body.name, "for": username, "expires_ms": expires},
    )
    return NewTokenOut(token=token, **TokenOut.of(info).model_dump())


@router.delete("/api/tokens/{token_id}", tags=["tokens"], status_code=204)
def revoke_token(token_id: Annotated[int, Path(ge=1, le=2**62)], who: Admin, svc: Service, request: Request) -> None:
    info = svc.users.get_token(token_id)
    if info is None or info.kind != "api":
        raise error(404, f"no API token {token_id}", "token_id", code="token.not_found", params={"token_id": token_id})
    svc.users.revoke(token_id)
    svc.audit(who=who.username, action="token.revoke", target=f"token:{token_id}", source=source(request))
