"""Request dependencies: the service, who is asking (bearer token), what they may do, and validated ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Permission, Principal
from api.service import ApiService

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"  # no control characters but tab and newlines
MAX_MS = 10**15  # far beyond any epoch-ms time the API will see; keeps integers inside 64 bits

SiteId = Annotated[str, Path(pattern=ID_PATTERN, description="site id (contract pattern)")]
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="device id (contract pattern)")]
CommandId = Annotated[str, Path(pattern=ID_PATTERN, description="command id (contract pattern)")]

_bearer = HTTPBearer(auto_error=False, description="a login token (POST /api/auth/login) or an API token")

# While a user still has a one-time password (the bootstrap admin's, or one an admin set), only these may be called:
# the change itself, and what the console needs to offer it (who am I, log out).
PASSWORD_CHANGE_PATHS = frozenset({"/api/auth/password", "/api/auth/me", "/api/auth/logout"})


def service(request: Request) -> ApiService:
    svc: ApiService = request.app.state.service
    return svc


Service = Annotated[ApiService, Depends(service)]


def error(status: int, reason: str, field: str | None = None, **extra: object) -> HTTPException:
    """An HTTP error whose body names the field at fault."""
    detail: dict[str, object] = {"reason": reason, **extra}
    if field is not None:
        detail["field"] = field
    return HTTPException(status, detail=detail)


def principal(
    request: Request,
    svc: Service,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or len(credentials.credentials) > 200:
        raise HTTPException(
            401, detail={"reason": "a bearer token is required"}, headers={"WWW-Authenticate": "Bearer"}
        )
    who = svc.users.authenticate(credentials.credentials)
    if who is None:
        raise HTTPException(
            401,
            detail={"reason": "the token is unknown, revoked, expired or was idle too long: log in again"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    if who.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise error(
            403,
            "change the one-time password first (POST /api/auth/password): it was set by someone else",
            must_change_password=True,
        )
    request.state.username = who.username
    return who


Who = Annotated[Principal, Depends(principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    def check(who: Who) -> Principal:
        if not who.may(permission):
            raise error(403, f"role {who.role.value} may not do this ({permission.value})")
        return who

    return check


Reader = Annotated[Principal, Depends(require(Permission.READ))]
AlertActor = Annotated[Principal, Depends(require(Permission.ALERT_ACTION))]
GateController = Annotated[Principal, Depends(require(Permission.GATE_CONTROL))]
Admin = Annotated[Principal, Depends(require(Permission.ADMIN))]


def source(request: Request) -> str:
    """Where the request came from (the client's address), for the audit log and the login throttle: the peer's
    address, or X-Forwarded-For's client when the peer is a configured trusted proxy (see ``create_app``)."""
    return request.client.host if request.client else ""


def check_site(svc: ApiService, who: Principal, site: str) -> str | None:
    """The site's area; 403 when it is outside the user's areas."""
    area = svc.config.area_of(site)
    if not who.sees_area(area):
        raise error(403, f"site {site!r} is outside your areas", "site")
    return area


def visible_sites(svc: ApiService, who: Principal) -> set[str] | None:
    """The sites a scoped user may see (None: every site)."""
    if not who.scoped:
        return None
    return {site for area in who.areas for site in svc.config.areas.get(area, [])}
