"""What the gate service needs of the alert store for forged commands: "is this audited already?" and the alert.

A verified refusal of a command the API did not send (``api.gates``) is audited once per id and state, however often
the broker hands it again; that "once" lives in the audit log itself, so it survives an API restart. Each such
refusal raises (or raises again) one alert per device under :data:`api.gates.FORGED_RULE`, critical, whose value is
the forged command's id; the API's own command refused as delivered too late raises :data:`api.gates.HELD_BACK_RULE`
the same way. The alert list shows them like any other and an operator acknowledges them there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alerts.lifecycle import Alert, AlertKey, raise_
from alerts.store import AlertMeta, AlertStore, Conflict, StoredAlert
from api.gates import FORGED_RULE, HELD_BACK_RULE
from rules import Severity

TITLES = {
    FORGED_RULE: "Forged command refused at the edge (a command the API did not send)",
    HELD_BACK_RULE: "Command held back on its way, refused at the edge as delivered too late",
}
SAVE_ATTEMPTS = 3


def audited(store: AlertStore, action: str, target: str) -> list[dict[str, object]]:
    """The details of the audit entries with exactly this action and target (the newest 100)."""
    return [
        row.detail for row in store.audit_log(action=action, target_prefix=target, limit=100) if row.target == target
    ]


class ForgedAlerts:
    """Raises a command alert (forged, held back) of a device in the alert store and tells live views
    (``announce``)."""

    def __init__(
        self,
        store: AlertStore,
        area_of: Callable[[str], str | None],
        clock: Callable[[], int],
        announce: Callable[[StoredAlert], None],
    ) -> None:
        self.store, self.area_of, self.clock, self.announce = store, area_of, clock, announce

    def __call__(self, rule: str, site: str, device: str, value: str, reason: str) -> None:
        key = AlertKey(rule, site, device)
        meta = AlertMeta(TITLES.get(rule, rule), "default", self.area_of(site), None, reason)
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
