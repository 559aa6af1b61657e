"""Fixtures for notification tests: a real SMTP server (aiosmtpd) and a real HTTP receiver on loopback.

Registered for the whole suite by ``pytest_plugins`` in ``tests/conftest.py``.

- ``smtp_server``: collects every mail it accepts (``.messages``, parsed); may require a login (``.users``), refuse
  recipients (``.refuse``) or answer the next DATA commands with an error (``.fail_next``).
- ``http_receiver``: records every request (``.requests``); answers queued replies first (``.answer``,
  ``.fail_next``), then ``.responder`` if set (a stand-in for a service, e.g. a fake robot), then ``.default``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from testing import free_port

MAX_DELAY_S = 5.0  # a reply's delay is capped so that no test can hang on the receiver

T = TypeVar("T")


def _wait_for(snapshot: Callable[[], list[T]], n: int, timeout: float, what: str) -> list[T]:
    """What ``snapshot`` holds once it holds ``n`` items; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = snapshot()
        if len(got) >= n:
            return got
        time.sleep(0.02)
    raise AssertionError(f"expected {n} {what} within {timeout} s, got {len(snapshot())}")


# --- SMTP -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage  # parsed with the default (modern) policy: headers decoded
    raw: bytes
    login: str | None


class SmtpServer:
    """An aiosmtpd server on a free loopback port. Logins are checked against ``users`` (none by default: every
    login is refused); a mail without login is accepted."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.messages: list[ReceivedMail] = []
        self.users: dict[str, str] = {}
        self.refuse: set[str] = set()  # recipients answered 550
        self._fail: list[str] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # -- behaviour

    def fail_next(self, n: int, reply: str = "451 4.3.0 Try again later") -> None:
        """Answer the next ``n`` DATA commands with ``reply`` (4yz transient, 5yz permanent)."""
        with self._lock:
            self._fail.extend([reply] * n)

    def snapshot(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedMail]:
        return _wait_for(self.snapshot, n, timeout, "mails")

    # -- aiosmtpd handler hooks

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._fail:
                return self._fail.pop(0)
        content = envelope.original_content or envelope.content or b""
        raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        with self._lock:
            self.messages.append(ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw, login))
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(user) == password:
                return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)

    # -- lifetime

    def start(self) -> None:
        last: Exception | None = None
        for _ in range(5):  # the free port may be taken by another worker between the probe and the bind
            self.port = free_port(self.host)
            controller = Controller(
                self,
                hostname=self.host,
                port=self.port,
                ready_timeout=10,
                auth_require_tls=False,
                authenticator=self._authenticate,
            )
            try:
                controller.start()
            except (OSError, RuntimeError) as exc:
                last = exc
                continue
            self._controller = controller
            return
        raise RuntimeError(f"SMTP test server did not start: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server of this test's own on a free loopback port."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


# --- HTTP -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (capped at MAX_DELAY_S), for time-out tests

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, dict | list):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode(), headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        return self.body, headers


Responder = Callable[[RecordedRequest], "Reply | None"]


class HttpReceiver:
    """A small HTTP server on a free loopback port that records every request and answers as told."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.default = Reply(200, b"ok")
        self.responder: Responder | None = None
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # -- behaviour

    def answer(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order (before ``responder`` and ``default``)."""
        with self._lock:
            self._queue.extend(replies)

    def fail_next(
        self, n: int, status: int = 503, body: bytes | str = b"", headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``headers``, e.g. ``Retry-After``)."""
        self.answer(*[Reply(status, body, dict(headers or {})) for _ in range(n)])

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[RecordedRequest]:
        return _wait_for(self.snapshot, n, timeout, "requests")

    # -- serving

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        req = RecordedRequest(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, h.rfile.read(length))
        with self._lock:
            self.requests.append(req)
            reply = self._queue.pop(0) if self._queue else None
        if reply is None and self.responder is not None:
            reply = self.responder(req)
        if reply is None:
            reply = self.default
        if reply.delay_s:
            time.sleep(min(reply.delay_s, MAX_DELAY_S))
        body, headers = reply.encoded()
        h.send_response(reply.status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A real HTTP receiver of this test's own on a free loopback port (``.url``, ``.requests``, ``.answer``)."""
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


# --- fake robots (the real DingTalk and WeCom cannot be reached from tests) ------------------------------------


class FakeDingTalk:
    """A FAKE DingTalk custom group robot on the local HTTP receiver (the real robot cannot be reached from tests).

    Like the robot: ``POST /robot/send?access_token=..``; with a secret it wants ``timestamp`` (ms, within an hour)
    and ``sign`` = base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")), and answers HTTP 200 with
    ``{"errcode": 0, "errmsg": "ok"}``, or a non-zero errcode (300001 unknown token, 310000 bad signature)."""

    def __init__(self, receiver: HttpReceiver, token: str = "tok-ding", secret: str | None = None) -> None:
        self.receiver, self.token, self.secret = receiver, token, secret
        self.url = f"{receiver.url}/robot/send?access_token={token}"
        self.accepted: list[dict[str, Any]] = []
        receiver.responder = self.respond

    def respond(self, req: RecordedRequest) -> Reply:
        query = req.query
        if req.route != "/robot/send" or query.get("access_token") != self.token:
            return Reply(200, {"errcode": 300001, "errmsg": "token is not exist"})
        if self.secret is not None:
            ts = query.get("timestamp", "")
            expected = base64.b64encode(
                hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256).digest()
            ).decode()
            fresh = ts.isdigit() and abs(int(ts) - time.time() * 1000) < 3_600_000
            if not fresh or query.get("sign") != expected:
                return Reply(200, {"errcode": 310000, "errmsg": "sign not match, more: [sign]"})
        body = req.json()
        md = body.get("markdown") or {}
        if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
            return Reply(200, {"errcode": 40035, "errmsg": "missing parameter"})
        self.accepted.append(body)
        return Reply(200, {"errcode": 0, "errmsg": "ok"})


class FakeWeCom:
    """A FAKE WeCom group robot on the local HTTP receiver (the real robot cannot be reached from tests):
    ``POST /cgi-bin/webhook/send?key=..`` with a markdown ``content``; answers ``{"errcode": 0, "errmsg": "ok"}``
    or 93000 (invalid webhook URL)."""

    def __init__(self, receiver: HttpReceiver, key: str = "key-wecom") -> None:
        self.key = key
        self.url = f"{receiver.url}/cgi-bin/webhook/send?key={key}"
        self.accepted: list[dict[str, Any]] = []
        receiver.responder = self.respond

    def respond(self, req: RecordedRequest) -> Reply:
        if req.route != "/cgi-bin/webhook/send" or req.query.get("key") != self.key:
            return Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
        body = req.json()
        if body.get("msgtype") != "markdown" or not (body.get("markdown") or {}).get("content"):
            return Reply(200, {"errcode": 44004, "errmsg": "empty content"})
        self.accepted.append(body)
        return Reply(200, {"errcode": 0, "errmsg": "ok"})
