"""InfluxDB end to end: the schema (measurement, field and suffix names), the one line-protocol encoder, the writers
(1.x and 2.x/3.x), the reader and InfluxQL building, and the derived series. Services import it; it imports only
``telemetry`` and ``infra``."""
