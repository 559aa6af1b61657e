"""The uvicorn server of ``lifeline api``: one that ends the live streams when it is told to stop.

uvicorn stops by closing its sockets, then waiting for every open response to finish before it runs the app's
lifespan shutdown (where the service would end the streams): an open ``/api/stream`` never finishes by itself, so
a plain uvicorn waited for its clients to go (47 s in the issue 13 test). Here the streams end first."""

from __future__ import annotations

import socket

import uvicorn

from api.service import ApiService


class ApiServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: ApiService) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.hub.close()  # every stream's generator returns: its response ends, uvicorn need not wait
        await super().shutdown(sockets)
