"""What the gate service needs of the alert store for forged commands: "is this audited already?" and the alert.

A verified refusal of a command the API did not send (``api.gates``) is audited once per id and state, however often
the broker hands it again; that "once" lives in the audit log itself, so it survives an API restart. Each such
refusal raises (or raises again) one alert per device under :data:`api.gates.FORGED_RULE`, critical, whose value is
the forged command's id: the alert list shows it like any other and an operator acknowledges it there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alerts.lifecycle import Alert, AlertKey, raise_
from alerts.store import AlertMeta, AlertStore, Conflict, StoredAlert
from api.gates import FORGED_RULE
from rules import Severity

FORGED_TITLE = "Forged command refused at the edge (a command the API did not send)"
SAVE_ATTEMPTS = 3


def audited(store: AlertStore, action: str, target: str) -> list[dict[str, object]]:
    """The details of the audit entries with exactly this action and target (the newest 100)."""
    return [
        row.detail for row in store.audit_log(action=action, target_prefix=target, limit=100) if row.target == target
    ]


class ForgedAlerts:
    """Raises the forged-command alert of a device in the alert store and tells live views (``announce``)."""

    def __init__(
        self,
        store: AlertStore,
        area_of: Callable[[str], str | None],
        clock: Callable[[], int],
        announce: Callable[[StoredAlert], None],
    ) -> None:
        self.store, self.area_of, self.clock, self.announce = store, area_of, clock, announce

    def __call__(self, site: str, device: str, value: str, reason: str) -> None:
        key = AlertKey(FORGED_RULE, site, device)
        meta = AlertMeta(FORGED_TITLE, "default", self.area_of(site), None, reason)
        for attempt in range(SAVE_ATTEMPTS):
            try:
                with self.store.begin() as tx:
                    stored = tx.get(key)
                    alert = stored.alert if stored is not None else Alert(key)
                    raise_(alert, Severity.CRITICAL, value, self.clock(), reason, who="api")
                    saved = tx.save(alert, meta, stored.version if stored is not None else None)
            except Conflict:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                continue
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a worker thread: announcing may block here
                self.announce(saved)
            else:  # the MQTT loop (a result arrived): the broker publish blocks, so it goes to a worker thread
                loop.run_in_executor(None, self.announce, saved)
            return
