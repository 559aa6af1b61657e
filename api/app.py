"""The FastAPI application: routes, request counting by route template, and the service's life cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import routes_alerts, routes_auth, routes_data, routes_env, routes_gates, routes_reports
from api.deps import error
from api.http_guard import BodyLimit, SecurityHeaders, http_error, validation_error
from api.metrics import RequestCounter
from api.service import ApiService
from rules.standards import load_permits


class CountRequests:
    """Pure ASGI middleware: counts every HTTP request by method, route template and status (a template, not the
    path, so that ids do not explode the label set; paths that match no route count as ``unmatched``)."""

    def __init__(self, app: ASGIApp, counter: RequestCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = scope.get("route")
            self.counter.add(scope["method"], str(getattr(route, "path", "unmatched")), status)


CONSOLE_DIR = Path(__file__).parent / "console"
# The console is one page, one script and one style sheet, all from here: nothing inline, nothing from elsewhere.
CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate (ETag): a new release's console is picked up at once
}
DOCS_DIR = Path(__file__).parent / "docs"
# Swagger UI's own files come from the fastapi-offline package (no CDN); the page, its start script, a style sheet
# and the icons Swagger UI would draw from data: URLs (which the CSP refuses) from here.
_SWAGGER = resources.files("fastapi_offline") / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
DOCS_FILES: dict[str, tuple[Traversable, str]] = {
    "": (DOCS_DIR / "index.html", _TYPES[".html"]),
    **{f.name: (f, _TYPES[f.suffix]) for f in DOCS_DIR.iterdir() if f.suffix in (".js", ".css", ".svg")},
    **{
        name: (_SWAGGER / name, _TYPES[Path(name).suffix])
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
    },
}


class ConsoleFiles(StaticFiles):
    """The web console's static files, with a strict Content-Security-Policy."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(CONSOLE_HEADERS)
        return response


def _serve_console(app: FastAPI) -> None:
    app.mount("/console", ConsoleFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def console_root() -> RedirectResponse:
        # relative, so that the console also works behind a proxy that serves the API under a path prefix
        return RedirectResponse("console/", status_code=302)


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs/`` from this package and fastapi-offline's files, under the console's strict CSP."""

    @app.get("/docs", include_in_schema=False)
    def docs_root() -> RedirectResponse:
        return RedirectResponse("docs/", status_code=302)

    @app.get("/docs/{name:path}", include_in_schema=False)
    def docs_file(name: str) -> FileResponse:
        if name not in DOCS_FILES:
            raise error(404, f"no docs file {name!r}", code="docs.not_found", params={"name": name})
        path, media_type = DOCS_FILES[name]
        return FileResponse(str(path), media_type=media_type, headers=CONSOLE_HEADERS)


def create_app(service: ApiService, *, manage: bool = True, connect: bool = True) -> FastAPI:
    """The API over ``service``. With ``manage`` the app starts and stops the service with its lifespan; tests
    that drive the app through httpx's ASGI transport (which runs no lifespan) start it themselves. Without
    ``connect`` the service does not connect to the broker (tests of the HTTP side alone)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage:
            await service.start(connect=connect)
        try:
            yield
        finally:
            if manage:
                await service.stop()

    app = FastAPI(
        title="Lifeline API",
        version="1",
        description="Sites, devices, readings, alerts and gate control of a district's lifelines.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own pages load Swagger UI and ReDoc from a CDN: _serve_docs serves it here
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.service = service
    permits = service.config.permits_file
    setattr(app.state, routes_reports.PERMITS_STATE, load_permits(permits) if permits is not None else {})
    for module in (routes_auth, routes_data, routes_alerts, routes_gates, routes_env, routes_reports):
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    _serve_console(app)
    _serve_docs(app)
    http = service.config.http
    # Added inside out: a request meets SecurityHeaders, CountRequests, then the proxy check, then the body limit.
    app.add_middleware(BodyLimit, max_bytes=http.max_body_bytes)
    # X-Forwarded-For only from the configured proxies (none by default): the client's address in the audit log
    # and the login throttle is otherwise the peer's. `lifeline api` turns uvicorn's own handling off (it trusts
    # 127.0.0.1 by default), so that this is the one place that decides.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[str(net) for net in http.trusted_proxies])
    app.add_middleware(CountRequests, counter=service.requests)
    app.add_middleware(SecurityHeaders, hsts_max_age_s=http.hsts_max_age_s)  # HSTS on HTTPS answers only
    return app
