"""Bridge: telemetry from MQTT into InfluxDB, batched, retried, never silently dropped."""
