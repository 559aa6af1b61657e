"""Bridge: telemetry from MQTT into InfluxDB, batched, retried, never silently dropped.

Public API:
    Bridge(config).run(stop_event)        consume, validate, encode, write, acknowledge
    BridgeConfig, load_bridge_config      configuration (ConfigError names file, line, field)
    LineEncoder                           telemetry -> InfluxDB line protocol (the storage schema)
    DeadLetterStore                       what could not be stored, with topic, payload, error and time
    InfluxQuery                           reads over InfluxQL: latest values, history with downsampling
    V1Writer, V2Writer                    InfluxDB 1.x /write; InfluxDB 2.x/3.x through influxdb-client
"""

from broker_bridge.bridge import Bridge
from broker_bridge.config import BridgeConfig, load_bridge_config
from broker_bridge.deadletter import DeadLetter, DeadLetterStore
from broker_bridge.lineproto import LineEncoder
from broker_bridge.writer import V1Writer, V2Writer
from infra.influx_query import InfluxQuery, QueryError

__all__ = [
    "Bridge",
    "BridgeConfig",
    "DeadLetter",
    "DeadLetterStore",
    "InfluxQuery",
    "LineEncoder",
    "QueryError",
    "V1Writer",
    "V2Writer",
    "load_bridge_config",
]
