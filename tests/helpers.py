"""Test helpers: an MQTT subscriber that records what arrives, and asyncio services run in a thread."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from infra.mqtt import BrokerConfig, client
from lifeline.broker_auth import Account
from testing import Mosquitto, open_account

_names = itertools.count(1)


def client_account(broker: Mosquitto, prefix: str = "test", *, name: str | None = None) -> BrokerConfig:
    """Tests only: a fresh account on ``broker`` that may publish and subscribe anything (how a test plays a device,
    a vendor sensor or an attacker). ``name`` gives a fixed user name (the same one gives the same account back), so
    a persistent session can be taken up again; otherwise each call is a new client."""
    username = name or f"{prefix}-{os.getpid()}-{next(_names)}"
    return broker.add(open_account(username))


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """Records every message on ``topic_filter``; with ``persistent`` its session (QoS 1 queue) survives."""

    def __init__(
        self,
        broker: Mosquitto | None,
        topic_filter: str,
        *,
        client_id: str = "",
        persistent: bool = False,
        account: BrokerConfig | None = None,
    ):
        self.broker = broker
        self.topic_filter = topic_filter
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        if account is None:
            assert broker is not None
            account = client_account(broker, name=client_id) if client_id else client_account(broker, "test-sub")
        self.account = account
        self.client = client(self.account, self.account.username or "", clean=not persistent)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.connect_async(account.host, account.port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(10), "test subscriber could not connect"

    def _on_connect(self, c: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        c.subscribe(self.topic_filter, qos=1)
        self.connected.set()

    def _on_message(self, c: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        """Poll the received messages until ``predicate`` holds; fail with what arrived if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.snapshot()
            if predicate(got):
                return got
            time.sleep(0.05)
        got = self.snapshot()
        topics = sorted({m.topic for m in got})
        raise AssertionError(f"condition not met within {timeout} s; {len(got)} messages on {topics[:20]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LoopThread:
    """Runs ``main(stop_event)`` on its own asyncio loop in a thread; ``stop()`` ends it and waits."""

    def __init__(self, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self._main = main
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        async def runner() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._main(self._stop)

        try:
            asyncio.run(runner())
        except BaseException as exc:  # the test reads it in stop()
            self.error = exc
            self._ready.set()

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the thread's loop (for objects that live there)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def stop(self, timeout: float = 15.0) -> None:
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "service thread did not stop"
        if self.error is not None:
            raise self.error


def wait_until(pred: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``pred`` until it holds; fail naming ``what`` if it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s")


class Publisher:
    """A test publisher that waits for each QoS 1 acknowledgement."""

    def __init__(self, broker: Mosquitto | None, account: BrokerConfig | None = None) -> None:
        if account is None:
            assert broker is not None
            account = client_account(broker, "test-pub")
        self.client = client(account, account.username or "")
        self.client.max_inflight_messages_set(100)
        self.client.connect(account.host, account.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK (fails the test when none comes)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"no PUBACK for {topic} within 10 s"

    publish = send

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def account_for(broker: Mosquitto, account: Account, **overrides: Any) -> BrokerConfig:
    """``account``'s access under a user name of its own on ``broker`` (tests sharing a broker never share a client
    id), as the BrokerConfig a service of that role connects with."""
    return broker.add(
        dataclasses.replace(account, username=f"{account.username}-{os.getpid()}-{next(_names)}"), **overrides
    )


@dataclass
class Probe:
    """What the broker answered a client: CONNACK, and the PUBACK and SUBACK reason codes (MQTT 5)."""

    connack: str = ""
    puback: str = ""
    suback: str = ""


def probe(
    account: BrokerConfig, *, publish: str | None = None, subscribe: str | None = None, timeout: float = 5.0
) -> Probe:
    """Connect as ``account`` (MQTT 5), optionally publish once (QoS 1) and subscribe once; report the answers."""
    result = Probe()
    done = threading.Event()
    prober = client(account, account.username or "probe", v5=True, reconnect=False)
    expected = 1 + (publish is not None) + (subscribe is not None)
    answers: list[str] = []

    def answered(what: str, value: str) -> None:
        setattr(result, what, value)
        answers.append(what)
        if len(answers) >= expected or (what == "connack" and value != "Success"):
            done.set()

    def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        answered("connack", str(rc))
        if str(rc) == "Success":
            if publish is not None:
                c.publish(publish, b'{"forged": true}', qos=1)
            if subscribe is not None:
                c.subscribe(subscribe, qos=1)

    prober.on_connect = on_connect
    prober.on_publish = lambda c, u, mid, rc, p: answered("puback", str(rc))
    prober.on_subscribe = lambda c, u, mid, rcs, p: answered("suback", str(rcs[0]))
    prober.connect_async(account.host, account.port)
    prober.loop_start()
    try:
        assert done.wait(timeout), f"no answer from the broker within {timeout} s: {result}"
    finally:
        prober.disconnect()
        prober.loop_stop()
    return result


@dataclass
class FakeStateTx:
    """FAKE: the named-state part of ``alerts.store.Tx``, in a dict (the alert pipeline without a store)."""

    blobs: dict[str, dict[str, object]] = field(default_factory=dict)

    def get_state(self, name: str) -> dict[str, object] | None:
        return self.blobs.get(name)

    def put_state(self, name: str, data: dict[str, object]) -> None:
        self.blobs[name] = data

    def delete_state(self, name: str) -> None:
        self.blobs.pop(name, None)


# -- a client the broker may refuse at its TLS handshake (a broker that requires client certificates) -------------


@dataclass
class Attempt:
    """One MQTT 5 client's connection: whether the broker took it, and what it said when it ended it."""

    connected: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    refused: str = ""
    acks: dict[int, int] = field(default_factory=dict)  # packet id -> PUBACK reason code
    acked: threading.Event = field(default_factory=threading.Event)


def connect(cfg: BrokerConfig, client_id: str = "") -> tuple[Any, Attempt]:
    attempt = Attempt()
    made = client(cfg, client_id or cfg.username or "", v5=True, reconnect=False)

    def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            attempt.refused = str(rc)
            attempt.ended.set()
        else:
            attempt.connected.set()

    def on_publish(c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        attempt.acks[mid] = rc.value
        attempt.acked.set()

    made.on_connect = on_connect
    made.on_connect_fail = lambda c, u: attempt.ended.set()
    made.on_disconnect = lambda c, u, f, rc, p: attempt.ended.set()
    made.on_publish = on_publish
    try:
        made.connect(cfg.host, cfg.port, keepalive=10)
    except OSError as exc:  # the TLS handshake refused (no certificate, or one of another CA)
        attempt.refused = f"{type(exc).__name__}: {exc}"
        attempt.ended.set()
        return made, attempt
    made.loop_start()
    return made, attempt


def refused(cfg: BrokerConfig) -> str:
    made, attempt = connect(cfg)
    try:
        assert attempt.ended.wait(10), "the broker neither took nor refused the connection"
        assert not attempt.connected.is_set(), "the broker took the connection"
        return attempt.refused
    finally:
        made.loop_stop()


def close(made: Any) -> None:
    made.disconnect()
    made.loop_stop()
