"""Alerts: one alert per rule and device (and point), ISA-18.2 lifecycle, notification decisions.

The pure core (``lifecycle``, ``policy``) does no I/O and reads no clock: every call takes ``now`` in epoch
milliseconds. ``alerts.pipeline`` is the notification pipeline (suppression, chattering, flood, escalation), its
stages keeping their state in the change's store transaction. The layers around it: ``alerts.db`` (the one engine
construction, shared with the API), ``alerts.store`` (SQL persistence, the authority, and the notification outbox),
``alerts.notify`` (channels and routing), ``alerts.delivery`` (the outbox delivered: retried until each channel
confirms, in order per alert and channel), ``alerts.manager`` (rule transitions in, stored alerts and notifications
out). ``may_notify`` is the lifecycle's test of whether an alert may notify now (the ``alerts.notify`` package is
the channels).
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
    StateChange,
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
from alerts.pipeline import Cause, Change, Pipeline, Stage
from alerts.policy import (
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
    "AlertKey",
    "AlertsConfig",
    "Cause",
    "Change",
    "ChatterConfig",
    "EscalationLevel",
    "EscalationPolicy",
    "FloodConfig",
    "InvalidAction",
    "Kind",
    "Note",
    "Notification",
    "Pipeline",
    "Severity",
    "Stage",
    "State",
    "StateChange",
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
