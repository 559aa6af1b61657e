"""The uvicorn server of ``lifeline api``: one that ends the live streams when it is told to stop.

uvicorn stops by closing its sockets, then waiting for every open response to finish before it runs the app's
lifespan shutdown (where the service would end the streams): an open ``/api/stream`` never finishes by itself, so
a plain uvicorn waited for its clients to go (47 s in the issue 13 test). Here the streams end first."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from api.config import ListenConfig
from api.service import ApiService

TLS_MINIMUM = ssl.TLSVersion.TLSv1_2  # GB/T 22239-2019 §8.1.4.8 b): no TLS 1.0/1.1 (RFC 8996 deprecates them)


class ApiServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: ApiService) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.hub.close()  # every stream's generator returns: its response ends, uvicorn need not wait
        await super().shutdown(sockets)


def _tls_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = default()
    context.minimum_version = TLS_MINIMUM
    return context


def uvicorn_config(app: ASGIApp, listen: ListenConfig) -> uvicorn.Config:
    """How ``lifeline api`` serves ``app``: on ``listen``, over HTTPS when it has a certificate (TLS 1.2 at least),
    with uvicorn's proxy-header handling off (the app decides whose X-Forwarded-For to believe:
    ``http.trusted_proxies``) and no access log of its own."""
    tls = listen.tls
    return uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
        ssl_certfile=None if tls is None else str(tls.cert_file),
        ssl_keyfile=None if tls is None else str(tls.key_file),
        ssl_context_factory=None if tls is None else _tls_context,
    )
