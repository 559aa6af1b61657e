"""A pure streaming rule evaluator: telemetry in, alert transitions out.

Time comes only from sample times (``observe``) and the ``now_ms`` given to ``tick``; there is no clock here.

Silence is judged by sample time. A device is silent (deadman) when its site's other messages run ``timeout``
past its last sample: a broker outage, or a backlog the edge kept and sends later, moves neither, so a device the
edge kept sampling is never reported silent. Where the edge sends its own health, the silence must also lie before
what its outbox has confirmed (the health's ``oldest_unconfirmed_age_s``): after an outage the edge sends its live
messages (its health, other devices) before its backlog, so the site's newest sample runs ahead of a device whose
samples still wait in the outbox. And no silence is judged while the engine is cut off (its link down, or back
for less than its grace: a resumed session's queued messages may come after newer ones) or the site drains a
backlog.

When the whole site goes quiet, the cause is its agent or its uplink, not each device: an ``agent`` rule raises one
alert for the site (on the agent's death message, or, judged against ``now_ms``, when nothing of the site was heard
for its timeout while the engine is not cut off and the site is not draining a backlog), and the site's deadman rules
raise nothing while it is active. An alert's transitions never go back in time (a clear is never dated before its
raise).
``window`` rules are skipped: ``rules.scheduled`` judges them from stored data once per period.
State is per (rule, site, device, point) in plain dataclasses that export to and import from a JSON-safe dict,
so a restarted process keeps its active alerts and raises nothing twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from rules import _conditions as c
from rules import evidence as ev
from rules.schema import AGENT_DEVICE, FLOOD_SIDES, SEVERITY_RANK, AlertKey, Rule, Severity, severity_of
from rules.standards import NoiseZone, noise_verdict
from telemetry.models import AgentState, DeviceStatus, Quality, Value
from telemetry.wire import SampleLike, TelemetryLike

log = logging.getLogger(__name__)
# the edge agent's own health telemetry (device_profiles/catalogue/edge_agent.yaml): its outbox's oldest unconfirmed
HEALTH_PROFILE = "edge_agent"
OUTBOX_AGE_POINT = "oldest_unconfirmed_age_s"
_NOISE_ZONES = frozenset(z.value for z in NoiseZone)

# The engine's index of its states: an AlertKey's fields as a plain tuple ("" for a device-wide rule's point), which
# hashes several times faster than the dataclass on the per-sample path and is what a checkpoint stores.
Key = tuple[str, str, str, str]
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of an alert: raised, escalated, de-escalated (``severity`` lower) or cleared (None)."""

    rule: str
    site: str
    device: str
    point: str | None
    severity: Severity | None  # the one scale (rules.Severity)
    previous: Severity | None
    value: Value
    ts: int  # the sample time that caused it, or the tick's now_ms for delays and deadman
    reason: str
    profile: str | None = None  # the device's profile, when known (who is told may depend on it)
    evidence: ev.Evidence | None = None  # a raise or escalation: the readings that raised it (rules.evidence)

    @property
    def key(self) -> AlertKey:
        """The alert this transition moves (the one alert key, ``rules.schema.AlertKey``)."""
        return AlertKey(self.rule, self.site, self.device, self.point)


@dataclass(slots=True)
class AlertState:
    active: str | None = None
    target: str | None = None  # what the condition asked for at the last usable sample
    value: Value = None
    last_ts: int | None = None
    since: dict[str, int] = field(default_factory=dict)  # severity -> from when the target held it
    below_since: int | None = None  # from when the target was below the active severity
    repeat: int = 0  # frozen: consecutive equal samples
    history: list[list[float]] = field(default_factory=list)  # rate, noise: [ts, value] within the window
    detail: str = ""
    changed_ts: int | None = None  # the time of its last transition: the next one is never dated before it
    evidence: list[list[Any]] = field(default_factory=list)  # samples while the condition holds (rules.evidence)


_FIELDS = tuple(f.name for f in fields(AlertState))


@dataclass(slots=True)
class SiteState:
    """What the engine knows of a site's liveness: the newest sample time of any of its devices, when its last
    message arrived and how far behind the wall clock its samples were, and its agent's last birth or death."""

    last_ts: int | None = None  # newest sample time of any device of the site
    received_ms: int | None = None  # when its last telemetry arrived (the service's clock)
    lag_ms: int = 0  # received_ms minus that message's newest sample time: a backlog being drained is far behind
    agent_online: bool | None = None  # None: no birth or death seen
    agent_ts: int = 0
    agent: str = ""
    agent_reason: str = ""
    devices: list[str] | None = None  # the devices its agent's last birth listed (None: no birth with a list)
    death_ms: int | None = None  # when its agent's death arrived (the service's clock), while it is dead
    # from the agent's newest health (its outbox's oldest unconfirmed message): what the edge took before this time
    # the centre has confirmed; what it took since may still wait in its outbox (None: no health seen)
    confirmed_ts: int | None = None
    health_ts: int | None = None  # the sample time of that health

    def heard_ts(self) -> int | None:
        """The newest sign of life: a sample, or the agent's birth."""
        birth = self.agent_ts if self.agent_online else None
        if self.last_ts is None:
            return birth
        return self.last_ts if birth is None else max(self.last_ts, birth)


_SITE_FIELDS = tuple(f.name for f in fields(SiteState))


def _export(st: AlertState) -> dict[str, Any]:
    """The state's fields that differ from a new ``AlertState``'s (``from_state`` fills in the rest): most states are
    a quiet device's (no alert, no delay running, no history), and a checkpoint holds one per rule, device and point.
    Severities as plain names (a rule's are rules.Severity members): the checkpoint is data, not Python objects."""
    out: dict[str, Any] = {}
    if st.active is not None:
        out["active"] = str(st.active)
    if st.target is not None:
        out["target"] = str(st.target)
    if st.value is not None:
        out["value"] = st.value
    if st.last_ts is not None:
        out["last_ts"] = st.last_ts
    if st.since:
        out["since"] = {str(sev): ts for sev, ts in st.since.items()}
    if st.below_since is not None:
        out["below_since"] = st.below_since
    if st.repeat:
        out["repeat"] = st.repeat
    if st.history:
        out["history"] = [list(h) for h in st.history]
    if st.detail:
        out["detail"] = st.detail
    if st.changed_ts is not None:
        out["changed_ts"] = st.changed_ts
    if st.evidence:
        out["evidence"] = [list(e) for e in st.evidence]
    return out


def _restore(raw: dict[str, Any]) -> AlertState:
    """An ``AlertState`` from its export (or an older release's full one), sharing no list or dict with it."""
    st = AlertState(**{f: raw[f] for f in _FIELDS if f in raw})
    st.since = dict(st.since)
    st.history = [list(h) for h in st.history]
    st.evidence = [list(e) for e in st.evidence]
    return st


def _rank(sev: str | None) -> int:
    return SEVERITY_RANK[sev] if sev else 0


class Engine:
    def __init__(self, rules: list[Rule], *, max_lag_ms: int = 10_000) -> None:
        """``max_lag_ms``: a site whose last message arrived within this time with samples older than this is
        draining a backlog; its agent is not judged lost meanwhile."""
        self.rules = {r.id: r for r in rules}
        self.max_lag_ms = max_lag_ms
        self._agent_rules = [r for r in rules if r.agent is not None]
        self._sites: dict[str, SiteState] = {}
        # since when the engine has not been cut off (None: it is): after an outage every site gets a whole timeout
        # to be heard again (the edges reconnect with their own backoff, some later than the engine)
        self._live_since: int | None = None
        self._states: dict[Key, AlertState] = {}
        # a checkpoint's entry of each state, made again only for the states changed since the last ``state()``: a
        # checkpoint then costs what changed, not every device's every state (issue 26: 10,000 detectors)
        self._exported: dict[Key, dict[str, Any]] = {}
        self._dirty: set[Key] = set()
        # what changed since the last whole state its caller saved (``snapshot``, ``saved``): ``changes`` holds it,
        # so that a batch of transitions is saved with what it changed, not the whole state (each by the serial of
        # the snapshot it came after)
        self._serial = 0
        self._changed: dict[Key, int] = {}
        self._profiles_changed: dict[tuple[str, str], int] = {}
        # what ``tick`` looks at, so that a tick costs the devices that can go silent and the delays running, not
        # every state: the states of deadman rules, and those whose target is not the active severity (a superset:
        # ``tick`` drops the ones that caught up)
        self._deadman_rules = {r.id: r.deadman.timeout_ms for r in rules if r.deadman is not None}
        self._deadmen: dict[str, dict[Key, AlertState]] = {}  # by site
        self._pending: dict[Key, None] = {}
        self._profiles: dict[tuple[str, str], str] = {}  # (site, device) -> profile, as last seen
        self._noise_untagged: set[tuple[str, str, str]] = set()  # (rule, site, device) logged without a zone
        self._untagged: set[tuple[str, str, str]] = set()  # (rule, site, device) logged without a flood side
        # the sample rules that select a device, by what selection looks at (profile, site, device, tags)
        self._selected: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], list[Rule]] = {}

    # --- persistence -------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Every alert's state as a JSON-safe dict (see ``from_state``). Only the states changed since the last call
        are exported again; the rest are the entries exported then (never changed in place: share them freely)."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[dict[str, Any], int]:
        """``state()`` and its mark: once that state is saved, ``saved(mark)`` makes ``changes`` start from it."""
        self._export_dirty()
        profiles = [[site, device, profile] for (site, device), profile in self._profiles.items()]
        mark = self._serial
        self._serial += 1  # what changes from now on is not in this snapshot
        data = {"version": STATE_VERSION, "alerts": list(self._exported.values()), "profiles": profiles}
        data["sites"] = self._sites_state()
        return data, mark

    def saved(self, mark: int) -> None:
        """The snapshot of ``mark`` is saved: ``changes`` need no longer hold what it holds."""
        self._changed = {k: n for k, n in self._changed.items() if n > mark}
        self._profiles_changed = {k: n for k, n in self._profiles_changed.items() if n > mark}

    def has_changes(self) -> bool:
        """Whether anything changed since the last saved snapshot."""
        return bool(self._changed or self._profiles_changed)

    def changes(self, base: int) -> dict[str, Any]:
        """What changed since the last saved snapshot (whose ``generation`` the caller gives as ``base``): with that
        snapshot, ``from_state(snapshot, changes=...)`` continues from now. Costs what changed, not every state."""
        self._export_dirty()
        profiles = [[site, device, self._profiles[(site, device)]] for site, device in self._profiles_changed]
        alerts = [self._exported[key] for key in self._changed]
        data = {"version": STATE_VERSION, "base": base, "alerts": alerts, "profiles": profiles}
        data["sites"] = self._sites_state()
        return data

    def _export_dirty(self) -> None:
        exported, states = self._exported, self._states
        for key in self._dirty:
            st = states.get(key)
            if st is None:
                exported.pop(key, None)
            else:
                exported[key] = {"rule": key[0], "site": key[1], "device": key[2], "point": key[3], **_export(st)}
        self._dirty.clear()

    def _sites_state(self) -> dict[str, dict[str, Any]]:
        return {name: {f: getattr(st, f) for f in _SITE_FIELDS} for name, st in self._sites.items()}

    @classmethod
    def from_state(
        cls, rules: list[Rule], data: dict[str, Any], *, changes: dict[str, Any] | None = None, max_lag_ms: int = 10_000
    ) -> Engine:
        """An engine that continues from ``data`` and, when they were made after it (their ``base`` is its
        ``generation``), ``changes``; state of rules no longer present is dropped (and fields a checkpoint of an
        older release had, such as the deadman's receive time, are not read)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"rule engine state version {data.get('version')!r} is not {STATE_VERSION}")
        engine = cls(rules, max_lag_ms=max_lag_ms)
        engine._load(data)
        base = None if changes is None or changes.get("version") != STATE_VERSION else changes.get("base")
        if changes is not None and base is not None and base == data.get("generation"):
            engine._load(changes)
            # not in the saved snapshot: the next changes must hold them again
            keys = ((r["rule"], r["site"], r["device"], r["point"]) for r in changes.get("alerts", []))
            engine._changed = {key: 0 for key in keys if key in engine._states}
            engine._profiles_changed = {(site, device): 0 for site, device, _ in changes.get("profiles", [])}
        engine._dirty.update(engine._states)
        for key, st in engine._states.items():
            if key[0] in engine._deadman_rules:
                engine._deadmen.setdefault(key[1], {})[key] = st
            elif st.target is not None or st.active is not None:
                engine._pending[key] = None
        return engine

    def _load(self, data: dict[str, Any]) -> None:
        for site, device, profile in data.get("profiles", []):
            self._profiles[(site, device)] = profile
        for raw in data.get("alerts", []):
            key = (raw["rule"], raw["site"], raw["device"], raw["point"])
            if key[0] in self.rules:
                self._states[key] = _restore(raw)
        for name, raw in data.get("sites", {}).items():
            self._sites[name] = SiteState(**{f: raw[f] for f in _SITE_FIELDS if f in raw})

    def active(self) -> dict[Key, str]:
        return {k: st.active for k, st in self._states.items() if st.active}

    # --- evaluation --------------------------------------------------------------------------------------------
    def observe(self, msg: TelemetryLike, received_ms: int | None = None) -> list[Transition]:
        """Evaluate a message (of a device already validated: ``device_profiles.validate``). ``received_ms`` (when
        it arrived) tells how far behind the wall clock the site's samples arrive: a site draining a backlog is not
        judged lost."""
        out: list[Transition] = []
        self._profile(msg.site, msg.device, msg.profile)
        samples: Sequence[SampleLike] = msg.samples
        if len(samples) > 1:
            samples = sorted(samples, key=lambda s: s.ts)
        newest = samples[-1].ts
        site = self._sites.get(msg.site)
        if site is None:
            site = self._sites[msg.site] = SiteState()
        if site.last_ts is None or newest > site.last_ts:
            site.last_ts = newest
        if received_ms is not None:
            site.received_ms, site.lag_ms = received_ms, received_ms - newest
        if msg.profile == HEALTH_PROFILE:
            self._outbox_health(site, samples)
        for rule in self._rules_for(msg):
            for sample in samples:
                out.extend(self._sample(rule, msg, sample))
        if self._agent_rules:
            out.extend(self._judge_site(msg.site, site, None, cut_off=True))  # a lost agent heard again
        return out

    def _profile(self, site: str, device: str, profile: str) -> None:
        if self._profiles.get((site, device)) != profile:
            self._profiles[(site, device)] = profile
            self._profiles_changed[(site, device)] = self._serial

    @staticmethod
    def _outbox_health(site: SiteState, samples: Sequence[SampleLike]) -> None:
        """The agent's health says how old the oldest message its outbox still holds unconfirmed is: what it took
        before then has reached the centre, what it took since may still be on its way (a backlog sent after an
        outage, after the live messages)."""
        for sample in reversed(samples):
            age = sample.values.get(OUTBOX_AGE_POINT)
            if isinstance(age, bool) or not isinstance(age, int | float) or not math.isfinite(age):
                continue
            if site.health_ts is None or sample.ts >= site.health_ts:
                site.health_ts = sample.ts
                site.confirmed_ts = sample.ts - max(0, int(age * 1000))
            return

    def _rules_for(self, msg: TelemetryLike) -> list[Rule]:
        """The sample rules (not offline, not window) that select this message's device, in rule order."""
        tags = msg.tags
        key = (msg.profile, msg.site, msg.device, tuple(sorted(tags.items())) if tags else ())
        rules = self._selected.get(key)
        if rules is None:
            rules = [
                r
                for r in self.rules.values()
                if r.offline is None and r.window is None and r.agent is None and c.matches(r, msg)
            ]
            if len(self._selected) >= 100_000:  # bounded: a foreign producer's tags could vary without end
                self._selected.clear()
            self._selected[key] = rules
        return rules

    def status(self, st: DeviceStatus) -> list[Transition]:
        """A device's online/offline change from its edge agent: drives the ``offline`` rules."""
        out: list[Transition] = []
        self._profile(st.site, st.device, st.profile)
        for rule in self.rules.values():
            if rule.offline is None or not c.matches_status(rule, st):
                continue
            key = (rule.id, st.site, st.device, "")
            state = self._get(key, st.ts)
            if state is None:
                continue
            state.value = st.online
            why = f" ({st.reason})" if st.reason else ""
            state.detail = "back online" if st.online else f"device offline{why}"
            out.extend(self._advance(rule, key, state, None if st.online else rule.severity, st.ts))
        return out

    def agent_state(self, state: AgentState, received_ms: int | None = None) -> list[Transition]:
        """An agent's birth or death (its retained ``agent/state``), arrived at ``received_ms`` (default: its ts):
        drives the ``agent`` rules. A death is judged by ``tick`` after the rule's hold; a birth clears at once."""
        site = self._sites.get(state.site)
        if site is None:
            site = self._sites[state.site] = SiteState()
        # in the order they arrive, not by ts: the last will's ts is the time the agent connected (its payload is
        # made then), older than the birth it follows
        site.agent_online, site.agent_ts = state.online, state.ts
        site.agent, site.agent_reason = state.agent, state.reason
        if state.online and state.devices:  # a birth lists the agent's devices (its last will does not)
            site.devices = sorted(state.devices)
        site.death_ms = None if state.online else (received_ms if received_ms is not None else state.ts)
        return self._judge_site(state.site, site, None, cut_off=True)

    def born_devices(self, site: str) -> list[str] | None:
        """The devices the site's agent listed in its last birth (None: no such birth seen)."""
        st = self._sites.get(site)
        return None if st is None else st.devices

    def tick(self, now_ms: int, *, cut_off: bool = False) -> list[Transition]:
        """Deadman silences (by sample time: see the module's text), on/off delays that expire with no new data (the
        last target is held), and agents lost. ``cut_off``: the engine's own intake is down or still catching up
        after a reconnect, so a site's silence says nothing about the site."""
        out: list[Transition] = []
        if cut_off:
            self._live_since = None
        elif self._live_since is None:
            self._live_since = now_ms
        if not cut_off:
            states, timeouts, draining = self._states, self._deadman_rules, dict[str, bool]()
            for where, watched in self._deadmen.items():
                # not while the engine is cut off or catching up, nor while the site drains a backlog: the broker
                # may hand a resumed session's queued messages (a device's samples) after newer ones of the site
                site = self._sites.get(where)
                newest = site.last_ts if site is not None else None
                if newest is None:
                    continue
                silent = [
                    (key, st)
                    for key, st in watched.items()
                    if st.last_ts is not None  # heard within its timeout (most devices at most ticks) or alerted
                    and newest - st.last_ts >= timeouts[key[0]]
                    and st.active is None
                    and now_ms >= st.last_ts
                ]
                if silent and not self._draining(where, now_ms):
                    for key, st in silent:
                        out.extend(self._deadman(self.rules[key[0]], key, st))
            for key in list(self._pending):
                # a delay expires on the wall clock only while the site's data is current: cut off or draining a
                # backlog, the samples still to come may show the condition gone
                st, rule = states[key], self.rules[key[0]]
                if rule.window is not None or _rank(st.target) == _rank(st.active):
                    del self._pending[key]  # caught up (the next change of its target puts it back)
                    continue
                if st.last_ts is None or now_ms < st.last_ts:
                    continue
                where = key[1]
                if where not in draining:
                    draining[where] = self._draining(where, now_ms)
                if not draining[where]:
                    out.extend(self._advance(rule, key, st, st.target, now_ms))
        if self._agent_rules:
            for name, site in self._sites.items():
                out.extend(self._judge_site(name, site, now_ms, cut_off))
        return out

    def _deadman(self, rule: Rule, key: Key, st: AlertState) -> list[Transition]:
        """Silent: the site's newest sample is the deadman's timeout past this device's last one (not while the
        site's agent is lost: that one alert stands for its devices)."""
        assert rule.deadman is not None
        assert st.last_ts is not None
        site = self._sites.get(key[1])
        if site is None or site.last_ts is None or self._agent_lost(key[1]):
            return []
        timeout = rule.deadman.timeout_ms
        silent = site.last_ts - st.last_ts
        if silent < timeout:
            return []
        if site.confirmed_ts is not None and site.confirmed_ts < st.last_ts + timeout:
            # the edge still holds unconfirmed what it took within the timeout after this device's last sample: its
            # samples may be among them (a backlog replayed after the live messages, another device's first)
            return []
        st.detail = f"no data for {silent / 1000:g} s while the site sent data"
        return self._advance(rule, key, st, rule.severity, st.last_ts + timeout)

    def _draining(self, site: str, now_ms: int) -> bool:
        """The site's last message arrived within ``max_lag_ms`` with samples older than that: a backlog."""
        st = self._sites.get(site)
        return (
            st is not None
            and st.received_ms is not None
            and now_ms - st.received_ms <= self.max_lag_ms
            and st.lag_ms > self.max_lag_ms
        )

    def _agent_lost(self, site: str) -> bool:
        for rule in self._agent_rules:
            st = self._states.get((rule.id, site, AGENT_DEVICE, ""))
            if st is not None and st.active is not None:
                return True
        return False

    def _judge_site(self, name: str, site: SiteState, now_ms: int | None, cut_off: bool) -> list[Transition]:
        """The site's agent rules: lost on its death not followed by a birth within the rule's hold, or (``now_ms``
        given, not ``cut_off``, the site not draining a backlog) when nothing of it was heard for the rule's timeout,
        counted from no earlier than the end of the engine's last cut-off; back on its birth or a newer sample."""
        out: list[Transition] = []
        heard = site.heard_ts()
        draining = now_ms is not None and self._draining(name, now_ms)
        for rule in self._agent_rules:
            assert rule.agent is not None
            if rule.select.site is not None and name not in rule.select.site:
                continue
            key = (rule.id, name, AGENT_DEVICE, "")
            st = self._states.get(key)
            target: str | None = None
            if site.agent_online is False:
                held = now_ms is None or cut_off or now_ms - (site.death_ms or 0) < rule.agent.death_hold_ms
                if held or (st is not None and st.active is not None):
                    continue  # no birth could have followed yet (or the engine could not have seen it)
                ts = max(site.agent_ts, site.last_ts or 0)  # it died after the last sample it sent
                why = f" ({site.agent_reason})" if site.agent_reason else ""
                detail = f"agent {site.agent or name} is gone{why}"
                target = rule.severity
            elif (
                now_ms is not None
                and site.agent_online is not None  # a site with an agent (HJ 212 stations may push hourly)
                and not cut_off
                and not draining
                and heard is not None
                and now_ms - max(heard, self._live_since or now_ms) >= rule.agent.timeout_ms
            ):
                ts = heard + rule.agent.timeout_ms
                detail = f"nothing heard from any device of the site for {(now_ms - heard) / 1000:g} s"
                target = rule.severity
            elif st is not None and st.active is not None and heard is not None and heard > (st.changed_ts or 0):
                ts, detail = heard, "agent heard again"
            else:
                continue  # nothing new: an active alert is held, none is raised
            if st is None:
                if target is None:
                    continue
                st = self._states[key] = AlertState()
            if target is not None and st.active is not None:
                continue
            st.detail = detail
            out.extend(self._advance(rule, key, st, target, ts))
        return out

    def _sample(self, rule: Rule, msg: TelemetryLike, sample: SampleLike) -> list[Transition]:
        out: list[Transition] = []
        for point, target in self._targets(rule, msg, sample):
            key = (rule.id, msg.site, msg.device, point)
            st = self._states[key]  # made by _get when the sample was accepted
            if target is not None:  # the condition holds: this sample is evidence for a raise to come
                st.evidence.append(ev.reading(sample, ev.rule_points(rule, point)))
                if len(st.evidence) > ev.SAMPLES:
                    del st.evidence[0]
            out.extend(self._advance(rule, key, st, target, sample.ts))
        return out

    def _targets(self, rule: Rule, msg: TelemetryLike, sample: SampleLike) -> list[tuple[str, str | None]]:
        """(point, target) pairs for one sample; this also updates the per-kind memory (rate, frozen, deadman)."""
        sev = rule.severity
        dev = (rule.id, msg.site, msg.device)
        if rule.threshold is not None:
            th = rule.threshold
            v = c.number(c.good_value(sample, th.point))
            st = self._get((*dev, th.point), sample.ts)
            if v is None or st is None:
                return []
            target = c.threshold_target(th, v, st.active)
            st.value, st.detail = v, f"{th.point} = {v:g} ({th.direction})"
            return [(th.point, target)]
        if rule.rate is not None:
            return self._rate(rule, dev, sample)
        if rule.state is not None:
            value = c.good_value(sample, rule.state.point)
            return self._bool((*dev, rule.state.point), sample.ts, c.state_matches(rule.state, value), value, sev)
        if rule.all_ is not None or rule.any_ is not None:
            terms = rule.all_ if rule.all_ is not None else rule.any_
            assert terms is not None
            hit = c.composite(terms, rule.all_ is not None, sample)
            return self._bool((*dev, ""), sample.ts, hit, None, sev)
        if rule.bad_quality is not None:
            return self._bad_quality(rule, dev, sample)
        if rule.deviation is not None:
            dv = rule.deviation
            a, b = c.number(c.good_value(sample, dv.point)), c.number(c.good_value(sample, dv.reference))
            hit = None if a is None or b is None else abs(a - b) > dv.more_than
            out = self._bool((*dev, dv.point), sample.ts, hit, a, sev)
            if hit is not None and a is not None and b is not None:
                self._states[(*dev, dv.point)].detail = f"{dv.point} = {a:g}, {dv.reference} = {b:g}"
            return out
        if rule.frozen is not None:
            return self._frozen(rule, dev, sample)
        if rule.noise is not None:
            return self._noise(rule, msg, dev, sample)
        if rule.tide_gate is not None:
            return self._tide_gate(rule, msg, dev, sample)
        return self._bool((*dev, ""), sample.ts, False, None, sev)  # deadman: data arrived, so it clears

    def _bad_quality(self, rule: Rule, dev: tuple[str, str, str], sample: SampleLike) -> list[tuple[str, str | None]]:
        """``_bool`` for each point, with ``c.is_bad`` inline: this rule selects every device and looks at every
        point of every sample, so it is the engine's most frequent evaluation."""
        bq = rule.bad_quality
        assert bq is not None
        values, quality, ts, sev = sample.values, sample.quality, sample.ts, rule.severity
        uncertain = bq.include_uncertain
        out: list[tuple[str, str | None]] = []
        for p in [bq.point] if bq.point else sorted(values):
            st = self._get((*dev, p), ts)
            if st is None or p not in values:
                continue
            pq = quality.get(p) if quality else None
            hit = pq is not None and (pq.q is Quality.BAD or (uncertain and pq.q is Quality.UNCERTAIN))
            st.value = None
            st.detail = "condition met" if hit else "condition clear"
            out.append((p, sev if hit else None))
        return out

    def _get(self, key: Key, ts: int) -> AlertState | None:
        """The key's state, or None when the sample is older than one already seen (out of order: ignored)."""
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = AlertState()
            if key[0] in self._deadman_rules:
                self._deadmen.setdefault(key[1], {})[key] = st
        elif st.last_ts is not None and ts < st.last_ts:
            return None
        st.last_ts = ts
        self._dirty.add(key)  # what follows may change it further: it is exported at the next checkpoint
        self._changed[key] = self._serial
        return st

    def _bool(self, key: Key, ts: int, hit: bool | None, value: Value, sev: str | None) -> list[tuple[str, str | None]]:
        st = self._get(key, ts)
        if hit is None or st is None:
            return []
        st.value = value
        st.detail = "condition met" if hit else "condition clear"
        return [(key[3], sev if hit else None)]

    def _rate(self, rule: Rule, dev: tuple[str, str, str], sample: SampleLike) -> list[tuple[str, str | None]]:
        assert rule.rate is not None
        r = rule.rate
        v = c.number(c.good_value(sample, r.point))
        st = self._get((*dev, r.point), sample.ts)
        if v is None or st is None:
            return []
        st.history = [h for h in st.history if sample.ts - h[0] <= r.window_s * 1000] + [[float(sample.ts), v]]
        t0, v0 = st.history[0]
        if sample.ts <= t0:
            return []
        per_min = abs(v - v0) / ((sample.ts - t0) / 60000)
        st.value, st.detail = v, f"{r.point} changes {per_min:.3g}/min"
        return [(r.point, rule.severity if per_min > r.per_minute_above else None)]

    def _frozen(self, rule: Rule, dev: tuple[str, str, str], sample: SampleLike) -> list[tuple[str, str | None]]:
        assert rule.frozen is not None
        fr = rule.frozen
        v = c.good_value(sample, fr.point)
        st = self._get((*dev, fr.point), sample.ts)
        if v is None or st is None:
            return []
        same = st.repeat > 0 and type(v) is type(st.value) and v == st.value
        st.repeat = st.repeat + 1 if same else 1
        st.value, st.detail = v, f"{fr.point} unchanged for {st.repeat} samples"
        return [(fr.point, rule.severity if st.repeat >= fr.samples else None)]

    def _noise(
        self, rule: Rule, msg: TelemetryLike, dev: tuple[str, str, str], sample: SampleLike
    ) -> list[tuple[str, str | None]]:
        """GB 3096-2008 Table 1: the zone's day or night limit at the sample's local time (rules.standards)."""
        assert rule.noise is not None
        nz = rule.noise
        zone = msg.tags.get(nz.zone_tag)
        if zone not in _NOISE_ZONES:
            if (rule.id, msg.site, msg.device) not in self._noise_untagged:
                self._noise_untagged.add((rule.id, msg.site, msg.device))
                log.warning(
                    "noise rule has no verdict: device tag %s=%r is not a GB 3096-2008 zone (%s) rule=%s "
                    "site=%s device=%s",
                    nz.zone_tag,
                    zone,
                    ", ".join(sorted(_NOISE_ZONES)),
                    rule.id,
                    msg.site,
                    msg.device,
                )
            return []
        v = c.number(c.good_value(sample, nz.point))
        st = self._get((*dev, nz.point), sample.ts)
        if v is None or st is None or not math.isfinite(v):
            return []
        lmax = c.number(c.good_value(sample, nz.lmax_point)) if nz.lmax_point else None
        # the equivalent level over the window: 10·lg of the mean of 10^(L/10) (GB 3096-2008 §3 Leq)
        st.history = [h for h in st.history if sample.ts - h[0] < nz.window_s * 1000] + [[float(sample.ts), v]]
        leq = round(10 * math.log10(math.fsum(10 ** (h[1] / 10) for h in st.history) / len(st.history)), 1)
        verdict = noise_verdict(zone, datetime.fromtimestamp(sample.ts / 1000, UTC), leq, lmax_db=lmax)
        hit = verdict.exceeded or bool(verdict.lmax_exceeded)
        st.value = leq
        st.detail = (
            f"Leq of {nz.point} over {nz.window_s:g} s = {leq:g} dB(A), zone {zone} "
            f"{verdict.period.value} limit {verdict.limit_db} (GB 3096-2008 Table 1)"
        )
        if verdict.lmax_exceeded:
            st.detail += f", {nz.lmax_point} = {lmax:g} above {verdict.lmax_limit_db} (§5.4)"
        return [(nz.point, rule.severity if hit else None)]

    def _tide_gate(
        self, rule: Rule, msg: TelemetryLike, dev: tuple[str, str, str], sample: SampleLike
    ) -> list[tuple[str, str | None]]:
        """The gate by head direction and its flood side (the device tag; ``rules.schema.TideGate``)."""
        tg = rule.tide_gate
        assert tg is not None
        side = msg.tags.get(tg.side_tag)
        if side not in FLOOD_SIDES:
            if (rule.id, msg.site, msg.device) not in self._untagged:
                self._untagged.add((rule.id, msg.site, msg.device))
                log.warning(
                    "tide gate rule has no verdict: device tag %s=%r is not a flood side (upstream or downstream: "
                    "the outer, tidal side of the gate) rule=%s site=%s device=%s",
                    tg.side_tag,
                    side,
                    rule.id,
                    msg.site,
                    msg.device,
                )
            return []
        up, down = c.number(c.good_value(sample, tg.upstream)), c.number(c.good_value(sample, tg.downstream))
        opening = c.number(c.good_value(sample, tg.opening))
        st = self._get((*dev, ""), sample.ts)
        if up is None or down is None or opening is None or st is None:
            return []
        target, st.detail = c.tide_gate_target(tg, side, up, down, opening, st.active)
        st.value = None
        return [("", target)]

    def _on_delay_ms(self, rule: Rule, sev: str) -> float:
        if rule.bad_quality is not None:
            return rule.bad_quality.for_s * 1000
        if rule.offline is not None:
            return rule.offline.for_s * 1000
        if rule.threshold is not None:
            level = next(lv for lv in rule.threshold.levels if lv.severity == sev)
            if level.on_delay_s is not None:
                return level.on_delay_s * 1000
        if rule.tide_gate is not None:
            tg = rule.tide_gate
            delays = [lv.on_delay_s for lv in [*tg.inner.levels, *tg.inflow_head.levels] if lv.severity == sev]
            given = [d for d in delays if d is not None]
            if given:
                return min(given) * 1000
        return rule.on_delay_s * 1000

    def _severities(self, rule: Rule) -> list[str]:
        if rule.threshold is not None:
            return [lv.severity for lv in rule.threshold.levels]
        if rule.tide_gate is not None:
            tg = rule.tide_gate
            return sorted({lv.severity for lv in [*tg.inner.levels, *tg.inflow_head.levels]}, key=_rank)
        return [rule.severity] if rule.severity else []

    def _advance(self, rule: Rule, key: Key, st: AlertState, target: str | None, ts: int) -> list[Transition]:
        """The shared delay machine: raise or escalate after the on-delay, de-escalate or clear after the off-delay."""
        self._dirty.add(key)  # every change of a state goes through _get or here
        self._changed[key] = self._serial
        if target is None:
            if st.evidence:
                st.evidence.clear()  # the condition ended: a later raise has its own readings
            if st.active is None:  # nothing asked, nothing active (most samples): what the rest does
                st.target = st.below_since = None
                if st.since:
                    st.since.clear()
                return []
        if key[0] not in self._deadman_rules:
            self._pending[key] = None  # a target or an active severity: a delay may run out at a tick
        st.target = target
        rt, ra = _rank(target), _rank(st.active)
        for sev in SEVERITY_RANK:
            if rt >= SEVERITY_RANK[sev]:
                st.since.setdefault(sev, ts)
            else:
                st.since.pop(sev, None)
        st.below_since = (st.below_since if st.below_since is not None else ts) if rt < ra else None
        new: str | None = st.active
        if rt > ra:
            for sev in self._severities(rule):
                if ra < SEVERITY_RANK[sev] <= rt and ts - st.since[sev] >= self._on_delay_ms(rule, sev):
                    new = sev
        elif rt < ra and st.below_since is not None and ts - st.below_since >= rule.off_delay_s * 1000:
            new = target
        if new == st.active:
            return []
        prev, st.active, st.below_since = st.active, new, None
        if st.changed_ts is not None and ts < st.changed_ts:
            ts = st.changed_ts  # a late sample: the alert's history never goes back in time
        st.changed_ts = ts
        verb = "cleared" if new is None else ("raised" if prev is None else "now " + new)
        return [
            Transition(
                rule=rule.id,
                site=key[1],
                device=key[2],
                point=key[3] or None,
                severity=severity_of(new),  # the state may hold a name (a restored checkpoint's)
                previous=severity_of(prev),
                value=st.value,
                ts=ts,
                reason=f"{rule.title} {verb}: {st.detail}",
                profile=self._profiles.get((key[1], key[2])),
                evidence=self._evidence(rule, key, st) if _rank(new) > _rank(prev) else None,
            )
        ]

    @staticmethod
    def _evidence(rule: Rule, key: Key, st: AlertState) -> ev.Evidence | None:
        """A raise's or escalation's readings: a rate or noise rule's window (what it computed from), else the
        samples over which the condition held; None when there are none (silence, a device's status)."""
        if rule.rate is not None or rule.noise is not None:
            point = key[3]
            kept = ev.Evidence(tuple(ev.Reading(int(h[0]), {point: h[1]}) for h in st.history[-ev.SAMPLES :]))
        else:
            kept = ev.Evidence.from_kept(st.evidence)
        return kept if kept.readings else None
