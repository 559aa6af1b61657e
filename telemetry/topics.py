"""The versioned MQTT topic scheme shared by every Lifeline service.

Nobody else builds or parses a Lifeline topic string: call these functions.

    lifeline/v1/{site}/{device}/telemetry          telemetry messages (QoS 1)
    lifeline/v1/{site}/{device}/status             device online/offline (retained)
    lifeline/v1/{site}/agent/state                 agent birth and death (retained, last will)
    lifeline/v1/{site}/agent/stored                what the centre has stored (bridges to the edge, QoS 1)
    lifeline/v1/{site}/{device}/cmd/{command_id}   commands to a device
    lifeline/v1/{site}/{device}/cmd_result/{command_id}
    lifeline/v1/alerts/events/{alert_id}           alert changes, for live views (QoS 1)
    lifeline/v1/alerts/notify/{audience}           notifications of the MQTT channel (QoS 1)

The site id ``alerts`` is reserved for the alert topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "lifeline/v1"
AGENT = "agent"
ALERTS = "alerts"
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class TopicError(ValueError):
    """A topic or an id in it does not follow the scheme."""


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    STATUS = "status"
    AGENT_STATE = "state"
    STORED = "stored"
    CMD = "cmd"
    CMD_RESULT = "cmd_result"


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a valid site, device or command id, else raise TopicError."""
    if not _ID.fullmatch(value):  # not match(): "$" would let a trailing newline through
        raise TopicError(
            f"{what} id {value!r} is not valid: use 1-64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit"
        )
    return value


def check_site_id(value: str) -> str:
    check_id(value, "site")
    if value == ALERTS:
        raise TopicError(f"site id {ALERTS!r} is reserved for the alert topics")
    return value


def check_device_id(value: str) -> str:
    check_id(value, "device")
    if value == AGENT:
        raise TopicError(f"device id {AGENT!r} is reserved for the edge agent's own state topic")
    return value


# The builders check their ids, so that every topic they build is one that parse() accepts.


def telemetry(site: str, device: str) -> str:
    return f"{PREFIX}/{check_site_id(site)}/{check_device_id(device)}/telemetry"


def status(site: str, device: str) -> str:
    return f"{PREFIX}/{check_site_id(site)}/{check_device_id(device)}/status"


def agent_state(site: str) -> str:
    """The agent state topic of ``site`` ('+' for a subscription to every site's)."""
    return f"{PREFIX}/{site if site == '+' else check_site_id(site)}/{AGENT}/state"


def stored(site: str) -> str:
    """Where bridges confirm what they stored of ``site``'s telemetry ('+' for a subscription to every site)."""
    return f"{PREFIX}/{site if site == '+' else check_site_id(site)}/{AGENT}/stored"


def command(site: str, device: str, command_id: str) -> str:
    return f"{PREFIX}/{check_site_id(site)}/{check_device_id(device)}/cmd/{check_id(command_id, 'command')}"


def command_result(site: str, device: str, command_id: str) -> str:
    cid = check_id(command_id, "command")
    return f"{PREFIX}/{check_site_id(site)}/{check_device_id(device)}/cmd_result/{cid}"


def telemetry_filter(site: str = "+", device: str = "+") -> str:
    """Subscription filter for telemetry; '+' matches any site or device."""
    return f"{PREFIX}/{site}/{device}/telemetry"


def status_filter(site: str = "+") -> str:
    return f"{PREFIX}/{site}/+/status"


def command_filter(site: str, device: str = "+") -> str:
    return f"{PREFIX}/{site}/{device}/cmd/+"


def command_result_filter(site: str = "+", device: str = "+") -> str:
    return f"{PREFIX}/{site}/{device}/cmd_result/+"


def alert_event(alert_id: int) -> str:
    return f"{PREFIX}/{ALERTS}/events/{int(alert_id)}"


def alert_events_filter() -> str:
    return f"{PREFIX}/{ALERTS}/events/+"


def alert_notification(audience: str) -> str:
    return f"{PREFIX}/{ALERTS}/notify/{check_id(audience, 'audience')}"


def all_filter() -> str:
    return f"{PREFIX}/#"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: Kind
    site: str
    device: str | None
    command_id: str | None = None


_MAX_PARSED = 100_000
_parsed: dict[str, ParsedTopic] = {}  # topics already parsed: a district's are the same few thousand again and again


def parse(topic: str) -> ParsedTopic:
    """Split a Lifeline topic into its parts; raise TopicError naming what is wrong."""
    found = _parsed.get(topic)
    if found is None:
        found = _parse(topic)
        if len(_parsed) >= _MAX_PARSED:  # bounded: a foreign producer's topics could vary without end
            _parsed.clear()
        _parsed[topic] = found
    return found


def _parse(topic: str) -> ParsedTopic:
    parts = topic.split("/")
    if len(parts) < 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"topic {topic!r} is not under {PREFIX}/")
    site, device, rest = parts[2], parts[3], parts[4:]
    check_site_id(site)
    if device == AGENT and rest == ["state"]:
        return ParsedTopic(Kind.AGENT_STATE, site, None)
    if device == AGENT and rest == ["stored"]:
        return ParsedTopic(Kind.STORED, site, None)
    check_device_id(device)
    if rest == ["telemetry"]:
        return ParsedTopic(Kind.TELEMETRY, site, device)
    if rest == ["status"]:
        return ParsedTopic(Kind.STATUS, site, device)
    if len(rest) == 2 and rest[0] in (Kind.CMD, Kind.CMD_RESULT):
        return ParsedTopic(Kind(rest[0]), site, device, check_id(rest[1], "command"))
    raise TopicError(f"topic {topic!r}: unknown kind {'/'.join(rest)!r}")
