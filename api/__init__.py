"""The Lifeline API (FastAPI): auth and roles, sites and devices with live status, readings, alerts, gate control
and a live stream. ``lifeline api --config API.yaml`` serves it.

- ``ApiConfig`` / ``load_config(path)``: the configuration, validated at load (errors name file, line and field).
- ``ApiService(config)``: stores, live cache, MQTT link, gate control; ``create_app(service)``: the FastAPI app.
"""

from api.app import create_app
from api.config import ApiConfig, load_config
from api.service import ApiService

__all__ = ["ApiConfig", "ApiService", "create_app", "load_config"]
