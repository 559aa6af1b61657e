"""Alerts: one alert per rule and device (and point), ISA-18.2 lifecycle, notification decisions.

Pure core only: no I/O, no clock reads; every call takes ``now`` in epoch milliseconds.
Persistence and notification channels are separate layers (not yet written).
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
    notify,
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
    "notify",
    "out_of_service",
    "raise_",
    "return_to_service",
    "shelve",
    "suppression",
    "unshelve",
]
