"""Bridge: telemetry from MQTT into InfluxDB, batched, retried, never silently dropped.

Public API:
    Bridge(config).run(stop_event)        consume, validate, encode, write, acknowledge
    BridgeConfig, load_bridge_config      configuration (ConfigError names file, line, field)

The line protocol, the writers and their retry policy are the storage package's (``storage``).
"""

from broker_bridge.bridge import Bridge
from broker_bridge.config import BridgeConfig, load_bridge_config

__all__ = [
    "Bridge",
    "BridgeConfig",
    "load_bridge_config",
]
