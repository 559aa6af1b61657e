"""Alerts: one alert per rule and device (and point), ISA-18.2 lifecycle, notification decisions.

The pure core (``lifecycle``, ``policy``) does no I/O and reads no clock: every call takes ``now`` in epoch
milliseconds. The layers around it: ``alerts.store`` (SQL persistence), ``alerts.notify`` (channels and routing),
``alerts.manager`` (rule transitions in, stored alerts and notifications out). ``may_notify`` is the lifecycle's
test of whether an alert may notify now (the ``alerts.notify`` package is the channels).
"""

from __future__ import annotations

from alerts.lifecycle import (
    Action,
    Alert,
    AlertKey,
    InvalidAction,
    Note,
    Severity,
    State,
    Transition,
    acknowledge,
    add_note,
    assign,
    clear,
    expire,
    may_notify,
    out_of_service,
    raise_,
    return_to_service,
    shelve,
    suppression,
    unshelve,
)
from alerts.policy import (
    AlertBook,
    AlertsConfig,
    ChatterConfig,
    EscalationLevel,
    EscalationPolicy,
    FloodConfig,
    Kind,
    Notification,
)

__all__ = [
    "Action",
    "Alert",
    "AlertBook",
    "AlertKey",
    "AlertsConfig",
    "ChatterConfig",
    "EscalationLevel",
    "EscalationPolicy",
    "FloodConfig",
    "InvalidAction",
    "Kind",
    "Note",
    "Notification",
    "Severity",
    "State",
    "Transition",
    "acknowledge",
    "add_note",
    "assign",
    "clear",
    "expire",
    "may_notify",
    "out_of_service",
    "raise_",
    "return_to_service",
    "shelve",
    "suppression",
    "unshelve",
]
