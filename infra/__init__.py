"""Shared infrastructure of the Lifeline services (not the wire contract, which is ``telemetry``).

Config loading (``infra.config_loader``), the one MQTT transport (``infra.mqtt``), the retry backoff
(``infra.backoff``), secrets (``infra.secret``), the InfluxDB reader (``infra.influx_query``) the metrics server (``infra.metrics``)
and the log format every process uses (``infra.logs``).
Every service may import it; it imports no service.
"""
