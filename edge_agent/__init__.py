"""Edge agent: polls Modbus devices, hears MQTT sensors, decodes by profile, publishes telemetry."""
