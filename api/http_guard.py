"""What every HTTP answer gets, whatever the route: a bound on the request body, security headers, and validation
errors that never repeat the input. Pure ASGI middleware (no buffering of answers, streams pass through)."""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# GB/T 22239-2019 §8.1.4.4 d) (input checked against what the system expects) and §8.1.4.8: headers on every answer.
# Pages (console, docs) set their own Content-Security-Policy and Cache-Control; everything else is data.
API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """Adds API_HEADERS to every HTTP answer that does not set the header itself, and on an HTTPS answer
    Strict-Transport-Security (``hsts_max_age_s``; 0: none). RFC 6797 §7.2: never over plain HTTP, where a man in the
    middle could strip or forge it. HTTPS is the request's scheme: uvicorn's own TLS, or a trusted proxy's
    X-Forwarded-Proto (read when the answer starts, after the proxy middleware has set it)."""

    def __init__(self, app: ASGIApp, hsts_max_age_s: int = 0) -> None:
        self.app = app
        self.hsts = (b"strict-transport-security", f"max-age={hsts_max_age_s}".encode()) if hsts_max_age_s else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in API_HEADERS if name not in present)
                if self.hsts is not None and scope.get("scheme") == "https":
                    headers.append(self.hsts)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLargeError(Exception):
    """The request body went past the limit while the app read it."""


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with 413 and a JSON reason, before anything parses it: at once when
    Content-Length says so, else (chunked, or a Content-Length that lies) as soon as the bytes read pass the limit.
    The app never sees more than ``max_bytes``; if it answers anyway after the body was cut (it turned the error
    into a 400, say), that answer is replaced by the 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _answer(self) -> list[Message]:
        body = orjson.dumps(
            {
                "detail": {
                    "code": "request.too_large",
                    "message": f"the request body is larger than {self.max_bytes} bytes",
                    "params": {"limit_bytes": self.max_bytes},
                    "reason": f"the request body is larger than {self.max_bytes} bytes",
                    "limit_bytes": self.max_bytes,
                }
            }
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        return [
            {"type": "http.response.start", "status": 413, "headers": headers},
            {"type": "http.response.body", "body": body},
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            for message in self._answer():
                await send(message)
            return
        seen = 0
        cut = started = answered = False

        async def counted_receive() -> Message:
            nonlocal seen, cut
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    cut = True
                    raise BodyTooLargeError
            return message

        async def answer() -> None:
            nonlocal answered
            answered = True
            for own in self._answer():
                await send(own)

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut and not started:  # the app's own answer to a cut body is replaced
                if message["type"] == "http.response.start" and not answered:
                    await answer()
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLargeError:
            if started:  # the app was already answering when it read on: nothing clean left to send
                raise
            if not answered:
                await answer()


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 with each error's location, message and type only: FastAPI's default repeats the input (``input``,
    ``ctx``), which for a login or a password change is a password."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        msg = str(error.get("msg", ""))
        given = error.get("input")
        if isinstance(given, str) and len(given) >= 3 and given in msg:  # a message that quotes the input
            msg = msg.replace(given, "(the given value)")
        loc = list(error.get("loc", ()))
        kind = str(error.get("type", ""))
        errors.append(
            {
                "loc": loc,
                "msg": msg,
                "type": kind,
                "code": f"validation.{kind or 'invalid'}",
                "message": msg,
                "params": {"field": str(loc[-1]) if loc else ""},
            }
        )
    return JSONResponse(status_code=422, content={"detail": errors})


async def http_error(request: Request, exc: Exception) -> Response:
    """Every HTTP error with a stable ``code``, an English ``message`` and ``params`` (docs/api.md, Errors as codes):
    one raised with a bare string (Starlette's own 404 and 405, say) gets the code of its status."""
    assert isinstance(exc, StarletteHTTPException)
    from api.deps import code_of_status  # api.deps imports the service; this module is imported before it

    given: object = exc.detail
    detail: dict[str, object]
    if isinstance(given, dict):
        detail = {str(k): v for k, v in given.items()}
        if "code" not in detail:
            message = str(detail.get("reason", ""))
            detail = {"code": code_of_status(exc.status_code), "message": message, "params": {}, **detail}
    else:
        message = str(given)
        detail = {"code": code_of_status(exc.status_code), "message": message, "params": {}, "reason": message}
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=exc.headers)
