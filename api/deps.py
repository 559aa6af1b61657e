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


# The code of an error raised without one, by status (docs/api.md, Errors as codes).
STATUS_CODES: dict[int, str] = {
    400: "request.bad",
    401: "auth.required",
    403: "auth.forbidden",
    404: "request.not_found",
    405: "request.method",
    409: "request.conflict",
    413: "request.too_large",
    415: "request.media_type",
    422: "request.invalid",
    429: "request.too_many",
    500: "server.error",
    502: "influxdb.refused",
    503: "service.unavailable",
}


def code_of_status(status: int) -> str:
    return STATUS_CODES.get(status, "request.failed" if status < 500 else "server.error")


def error(
    status: int,
    reason: str,
    field: str | None = None,
    *,
    code: str | None = None,
    params: dict[str, object] | None = None,
    **extra: object,
) -> HTTPException:
    """An HTTP error whose body names the field at fault, with a stable ``code`` and its ``params`` beside the
    English ``message`` (also ``reason``, as before): the console translates by code."""
    detail: dict[str, object] = {
        "code": code or code_of_status(status),
        "message": reason,
        "params": params or {},
        "reason": reason,
        **extra,
    }
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
            401,
            detail=error(401, "a bearer token is required", code="auth.token_required").detail,
            headers={"WWW-Authenticate": "Bearer"},
        )
    who = svc.users.authenticate(credentials.credentials)
    if who is None:
        raise HTTPException(
            401,
            detail=error(
                401,
                "the token is unknown, revoked, expired or was idle too long: log in again",
                code="auth.token_invalid",
            ).detail,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if who.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise error(
            403,
            "change the one-time password first (POST /api/auth/password): it was set by someone else",
            code="auth.must_change_password",
            must_change_password=True,
        )
    request.state.username = who.username
    return who


Who = Annotated[Principal, Depends(principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    def check(who: Who) -> Principal:
        if not who.may(permission):
            raise error(
                403,
                f"role {who.role.value} may not do this ({permission.value})",
                code="auth.role_forbidden",
                params={"role": who.role.value, "permission": permission.value},
            )
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
        raise error(
            403, f"site {site!r} is outside your areas", "site", code="auth.site_outside_areas", params={"site": site}
        )
    return area


def visible_sites(svc: ApiService, who: Principal) -> set[str] | None:
    """The sites a scoped user may see (None: every site)."""
    if not who.scoped:
        return None
    return {site for area in who.areas for site in svc.config.areas.get(area, [])}
