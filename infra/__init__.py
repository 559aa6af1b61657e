"""Shared infrastructure of the Lifeline services (not the wire contract, which is ``telemetry``).

Config loading (``infra.config_loader``), the one MQTT transport (``infra.mqtt``), the retry backoff
(``infra.backoff``), secrets (``infra.secret``), the metrics server (``infra.metrics``) and the log format every
process uses (``infra.logs``). InfluxDB (reader, writers, schema) is the ``storage`` package.
Every service may import it; it imports no service.
"""
