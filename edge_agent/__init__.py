"""Edge agent: polls Modbus devices, hears MQTT sensors, decodes by profile, publishes telemetry at QoS 1.

Public API:
    load_site(path) -> LoadedSite          validate a site file (ConfigError names file, line, device, field)
    EdgeAgent(site).run(stop_event)         run the agent until the event is set
    plan_report(site) -> str                every Modbus device's request plan
    plan(spec), split(request)              request coalescing (pure)
"""

from edge_agent.agent import AGENT_VERSION, EdgeAgent, plan_report
from edge_agent.config import DeviceConfig, EdgeConfig, LoadedSite, build_site, load_site
from edge_agent.outbox import Outbox, OutMessage
from edge_agent.planner import PlanError, ReadRequest, plan, split
from infra.mqtt import BrokerConfig

__all__ = [
    "AGENT_VERSION",
    "BrokerConfig",
    "DeviceConfig",
    "EdgeAgent",
    "EdgeConfig",
    "LoadedSite",
    "OutMessage",
    "Outbox",
    "PlanError",
    "ReadRequest",
    "build_site",
    "load_site",
    "plan",
    "plan_report",
    "split",
]
