"""A client of Mosquitto's dynamic-security plugin: how tests and benchmarks create accounts on a running broker."""

from __future__ import annotations

import queue
import threading

import orjson

from infra.mqtt import BrokerConfig, client
from lifeline.runners import ServiceError


class ControlClient:
    """A client on ``$CONTROL/dynamic-security/v1`` (the transport's :func:`infra.mqtt.client`) that sends a request
    and waits for its answer."""

    REQUEST = "$CONTROL/dynamic-security/v1"

    def __init__(self, broker: BrokerConfig) -> None:
        self._answers: queue.Queue[bytes] = queue.Queue()
        self._ready = threading.Event()
        self.client = client(broker, broker.username or "")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.REQUEST + "/response", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self._ready.set()
        self.client.on_message = lambda c, u, msg: self._answers.put(bytes(msg.payload))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            self.close()
            raise ServiceError("mosquitto: the control client could not connect and subscribe")

    def request(self, request: dict[str, object], timeout_s: float) -> None:
        self.client.publish(self.REQUEST, orjson.dumps(request), qos=1)
        try:
            answer = orjson.loads(self._answers.get(timeout=timeout_s))
        except queue.Empty:
            raise ServiceError("mosquitto: no answer from the dynamic-security plugin") from None
        errors = [r for r in answer.get("responses", []) if r.get("error")]
        if errors:
            raise ServiceError(f"mosquitto: the dynamic-security plugin refused: {errors}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
