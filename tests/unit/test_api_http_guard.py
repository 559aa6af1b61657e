"""The body limit and the security headers as ASGI middleware, driven in memory: a fake app that reads the whole
body (and counts what it got), fed the body in chunks, as a server does for a chunked request."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from api.http_guard import API_HEADERS, BodyLimit, SecurityHeaders

LIMIT = 1024


class FakeApp:
    """Reads the body to its end, then answers 200 with how many bytes it got; or, with ``swallow``, turns an
    error while reading into a 400 of its own (as FastAPI does for errors it does not know)."""

    def __init__(self, swallow: bool = False) -> None:
        self.received = 0
        self.swallow = swallow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 200
        try:
            while True:
                message = await receive()
                self.received += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
        except Exception:
            if not self.swallow:
                raise
            status = 400
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(self.received).encode()})


def call(app: object, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None) -> list[Message]:
    scope: Scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers or []}
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return sent


def _status_and_body(sent: list[Message]) -> tuple[int, bytes]:
    return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("chunks", "swallow"),
    [
        ([b"a" * 500] * 10, False),
        ([b"a" * 500] * 10, True),
        ([b"a" * (LIMIT + 1)], False),
    ],
    ids=["chunked", "chunked-app-turns-it-into-400", "one-chunk-over"],
)
def test_a_body_over_the_limit_is_cut_and_answered_413(chunks: list[bytes], swallow: bool) -> None:
    inner = FakeApp(swallow)
    status, body = _status_and_body(call(BodyLimit(inner, LIMIT), chunks))
    assert status == 413
    assert orjson.loads(body) == {
        "detail": {
            "code": "request.too_large",
            "message": f"the request body is larger than {LIMIT} bytes",
            "params": {"limit_bytes": LIMIT},
            "reason": f"the request body is larger than {LIMIT} bytes",
            "limit_bytes": LIMIT,
        }
    }
    assert inner.received <= LIMIT  # the app never saw more than the limit


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    inner = FakeApp()
    sent = call(BodyLimit(inner, LIMIT), [b"a" * 10], headers=[(b"content-length", str(LIMIT + 1).encode())])
    assert _status_and_body(sent)[0] == 413
    assert inner.received == 0


@pytest.mark.parametrize("size", [0, LIMIT - 1, LIMIT], ids=["empty", "under", "exactly"])
def test_a_body_within_the_limit_passes(size: int) -> None:
    inner = FakeApp()
    assert _status_and_body(call(BodyLimit(inner, LIMIT), [b"a" * size])) == (200, str(size).encode())


def test_security_headers_are_added_unless_the_answer_sets_its_own() -> None:
    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-security-policy", b"default-src 'self'")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    headers = dict(call(SecurityHeaders(page), [b""])[0]["headers"])
    assert headers[b"content-security-policy"] == b"default-src 'self'"
    for name, value in API_HEADERS:
        if name != b"content-security-policy":
            assert headers[name] == value
