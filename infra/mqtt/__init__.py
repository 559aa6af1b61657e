"""The one MQTT transport of Lifeline: every service, simulator, bench and test reaches the broker through it.

- Settings: :class:`BrokerConfig` (host, port, account with a :class:`~infra.secret.Secret` password, TLS,
  keepalive, reconnect backoff), :class:`TlsConfig`, :class:`SubscriptionConfig` (a consumer's shared, persistent
  subscription), :func:`configure_client`.
- Connection: :func:`keep_connected`, the one reconnect loop (exponential backoff with full jitter from
  ``infra.backoff``, the first retry within ``reconnect_initial_s``, capped at ``reconnect_max_s``).
- Intake: :class:`Consumer` (MQTT 5, shared subscription, clean start false with a session expiry, manual
  acknowledgement, an intake bounded by a window) and :class:`Incoming`.
- A kept connection: :class:`Link` (subscriptions, a persistent session when asked, the windowed QoS 1 publish of a
  :class:`Window` owner such as the edge's outbox, and the awaitable :meth:`Link.publish`).
- Publish: :class:`Publisher` (a link without subscriptions; ``publish`` is awaitable and raises
  :class:`PublishError` when the broker did not take the message), the :data:`Publish` type components are given.
- :func:`client`: a configured paho client for tests and benchmarks that must drive MQTT by hand (``Client`` and
  ``MQTTMessage`` are its types, for annotations).

Only ``infra/mqtt/_paho.py`` touches paho's private members (decision 018); paho is pinned to the tested minor
release in pyproject.toml.
"""

from __future__ import annotations

from infra.mqtt._paho import Client, MQTTMessage, client
from infra.mqtt.consumer import Consumer, Incoming
from infra.mqtt.link import SESSION_TAKEN_OVER, Link, MessageHandler, PublishError, Sendable, Window
from infra.mqtt.publisher import Publish, Publisher, PublishNowait
from infra.mqtt.reconnect import keep_connected
from infra.mqtt.settings import BrokerConfig, SubscriptionConfig, TlsConfig, configure_client

__all__ = [
    "SESSION_TAKEN_OVER",
    "BrokerConfig",
    "Client",
    "Consumer",
    "Incoming",
    "Link",
    "MQTTMessage",
    "MessageHandler",
    "Publish",
    "PublishError",
    "PublishNowait",
    "Publisher",
    "Sendable",
    "SubscriptionConfig",
    "TlsConfig",
    "Window",
    "client",
    "configure_client",
    "keep_connected",
]
