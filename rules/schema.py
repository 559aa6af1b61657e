"""Rule file schema: which points a rule watches and the structured condition that raises it (no string eval).

A rule file is ``rules: [Rule, ...]``. A rule has a selector and exactly one condition kind; the evaluator in
``rules.evaluate`` gives every streaming kind the same on-delay / off-delay machine. The ``window`` kind is judged
once per calendar period from stored data by ``rules.scheduled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from device_profiles import field_error
from storage.schema import MAX_8H


class Severity(StrEnum):
    """The one severity scale: what a rule raises at, what an alert holds and is stored with, what alert events on
    MQTT and notifications carry (by name), what routes and API filters select on. Members are ordered by rank.

    Three levels, because the rule packs use three and ISA-18.2 asks for few: ``info`` (record, tell nobody
    urgently), ``warning`` (someone acts this shift), ``critical`` (act now). The alert store keeps ``rank``; critical
    is 4 because stores of 0.2 wrote a four-level priority (1, 2 and 4 were ever written, 3 never): those rows read
    the same without a data migration.
    """

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.value]

    @classmethod
    def from_rank(cls, rank: int) -> Severity:
        """The severity stored as ``rank`` (ValueError for a rank no severity has)."""
        for severity in cls:
            if severity.rank == rank:
                return severity
        raise ValueError(f"no severity has rank {rank}")

    def __lt__(self, other: object) -> bool:
        return self.rank < Severity(other).rank if isinstance(other, str) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self.rank <= Severity(other).rank if isinstance(other, str) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self.rank > Severity(other).rank if isinstance(other, str) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self.rank >= Severity(other).rank if isinstance(other, str) else NotImplemented

    __hash__ = str.__hash__  # equal to its name (a checkpoint's "warning" finds Severity.WARNING), hashed alike


def severity_of(name: str | None) -> Severity | None:
    """The severity of that name (a Severity is itself), None for None."""
    return None if name is None else Severity(name)


# name -> rank, for the evaluator's hot path (plain string keys: a checkpoint written as text reads back the same)
SEVERITY_RANK: dict[str, int] = {"info": 1, "warning": 2, "critical": 4}


@dataclass(frozen=True, slots=True)
class AlertKey:
    """The one alert key: one alert per rule, site, device and point (None: a device-wide rule). The rules engine
    emits it with every transition (``rules.Transition.key``) and the alert store keys its rows by it."""

    rule_id: str
    site: str
    device: str
    point: str | None = None

    def __str__(self) -> str:
        tail = f"/{self.point}" if self.point is not None else ""
        return f"{self.rule_id}@{self.site}/{self.device}{tail}"


Scalar = bool | int | float | str

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=128)]
PointName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Seconds = Annotated[float, Field(ge=0)]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str] | None, BeforeValidator(_as_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Select(_Strict):
    """Filters that all must match; a single name or a list each. One rule serves every matching device."""

    profile: Names = None
    site: Names = None
    device: Names = None
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _narrow_enough(self) -> Select:
        if not self.profile and not self.device:
            raise field_error("give at least a profile or a device", "profile")
        return self


class Level(_Strict):
    severity: Severity
    value: float
    on_delay_s: Seconds | None = Field(None, description="overrides the rule's on_delay_s for this level")


class Threshold(_Strict):
    point: PointName
    direction: Literal["high", "low"]
    levels: list[Level] = Field(min_length=1)
    deadband: float = Field(0.0, ge=0, description="absolute; a level clears past value - deadband (+ for low)")
    strict: bool = Field(False, description="raise only beyond the value (> / <): a limit that the value may equal")

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        _check_levels(self.direction, self.levels)
        return self


def _check_levels(direction: str, levels: list[Level]) -> None:
    for i in range(1, len(levels)):
        prev, cur = levels[i - 1], levels[i]
        if SEVERITY_RANK[cur.severity] <= SEVERITY_RANK[prev.severity]:
            raise field_error("levels must go up in severity (info, warning, critical)", "levels", i, "severity")
        if direction == "high" and cur.value <= prev.value:
            raise field_error(f"a high level must be above the one before ({prev.value})", "levels", i, "value")
        if direction == "low" and cur.value >= prev.value:
            raise field_error(f"a low level must be below the one before ({prev.value})", "levels", i, "value")


class Rate(_Strict):
    point: PointName
    per_minute_above: float = Field(gt=0, description="alarm when |change| per minute exceeds this")
    window_s: float = Field(60.0, gt=0, description="change measured against the oldest sample in this window")


class State(_Strict):
    """A state or bit: alarm when the value matches (``when: match``) or does not (``when: mismatch``)."""

    point: PointName
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1)
    range: tuple[float, float] | None = None
    when: Literal["match", "mismatch"] = "match"

    @model_validator(mode="after")
    def _one_test(self) -> State:
        given = [n for n, v in (("equals", self.equals), ("in", self.in_), ("range", self.range)) if v is not None]
        if len(given) != 1:
            raise field_error("give exactly one of equals, in, range", "point")
        if self.range is not None and self.range[0] > self.range[1]:
            raise field_error("range must be [min, max] with min <= max", "range")
        return self


class Compare(_Strict):
    point: PointName
    op: Literal["gt", "ge", "lt", "le", "eq", "ne"]
    value: Scalar


class BadQuality(_Strict):
    point: PointName | None = Field(None, description="None: every point of the device, each on its own")
    for_s: Seconds = 0.0
    include_uncertain: bool = False


class Frozen(_Strict):
    point: PointName
    samples: int = Field(ge=2, description="alarm when this many consecutive samples carry the same value")


class Deadman(_Strict):
    intervals: int = Field(ge=1)
    interval_s: float = Field(gt=0)

    @property
    def timeout_ms(self) -> int:
        return int(self.intervals * self.interval_s * 1000)


class Deviation(_Strict):
    """Two points of one device that should agree do not: |point - reference| > more_than (e.g. a gate's opening
    against the target the PLC was given). Give an on-delay for the time a correct movement may take."""

    point: PointName
    reference: PointName
    more_than: float = Field(gt=0)


class Offline(_Strict):
    """The edge says the device stopped answering (its retained ``status`` turned offline) for ``for_s``."""

    for_s: Seconds = 0.0


class Agent(_Strict):
    """The site's edge agent is gone: its death (the retained ``agent/state`` with online false, from its last will
    or a clean stop) not followed by a birth within ``death_hold_s``, or (a site whose agent was heard: not an HJ 212
    ingest's stations, which may push hourly) no message from any device of the site for ``timeout_s`` while the
    rules engine itself is
    connected and has caught up. One alert per site (device ``agent``); while it is active the site's deadman
    rules raise nothing (it is the cause). Select it with ``select: {device: agent}`` (and ``site`` to narrow)."""

    timeout_s: float = Field(60.0, gt=0, le=86400, description="site-wide silence after which the agent is lost")
    death_hold_s: float = Field(
        30.0,
        ge=0,
        le=86400,
        description="a death is believed once the agent has stayed away this long (measured: a connection lost "
        "and taken up again at once, its birth right after its last will; the edge retries within 30 s)",
    )

    @property
    def timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)

    @property
    def death_hold_ms(self) -> int:
        return int(self.death_hold_s * 1000)


AGENT_DEVICE = "agent"  # the device of an agent rule's alert (the topic scheme reserves it for the agent)


class Noise(_Strict):
    """Environmental noise against the GB 3096-2008 Table 1 limit of the device's functional zone (the device tag
    ``zone_tag``: 0, 1, 2, 3, 4a, 4b) for the local day or night (§3: day 06:00-22:00); with ``lmax_point``, at
    night also the §5.4 maximum-level rule (limit + 15 dB(A)). A level equal to the limit meets it. A device without
    a valid zone tag gets no verdict (logged once).

    The limit is for an equivalent level (Leq), so the rule judges the energy mean of the point's samples over the
    last ``window_s`` (10·lg of the mean of 10^(L/10)), not single readings; the day/night assessment over whole
    periods (Ld, Ln) is a report, not this alarm."""

    point: PointName = "noise_laeq"
    window_s: float = Field(300.0, gt=0, le=3600, description="the Leq is taken over this many seconds")
    zone_tag: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = "noise_zone"
    lmax_point: PointName | None = None


class Levels(_Strict):
    """High levels with a deadband (as a threshold's, without its point): a level held clears below value - deadband."""

    levels: list[Level] = Field(min_length=1)
    deadband: float = Field(0.0, ge=0)
    strict: bool = Field(False, description="raise only above the value (>)")

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        _check_levels("high", self.levels)
        return self


FLOOD_SIDES = ("upstream", "downstream")


class TideGate(_Strict):
    """A gate between a tidal (outer, flood) side and an inner river, judged by the head across it and by which side
    is the flood side (shared standards/sluice.md "Alarms on a tidal river gate", practice; warning levels per river
    and station are set by the water authority: give them per site with ``select.site`` / ``select.device``).

    The flood side is the device tag ``side_tag`` (``flood_side``): ``downstream`` when the outer, tidal water is
    the level below the sluice (``downstream``, 闸下 ``level_down``: an inner river's gate at its mouth), ``upstream``
    when it is the level above. A device without a valid tag gets no verdict (logged once). With outer and inner known:

    - gate closed, outer above inner: flood defence, correct: nothing;
    - inner at or above an ``inner`` level, outer lower, gate closed: the river could drain but cannot: that level;
    - inner at or above an ``inner`` level, outer at or above inner: cannot drain by gravity (pumps, dispatch): that
      level, whatever the gate;
    - gate open with the outer level above the inner one: the tide flows inland: the ``inflow_head`` level the head
      (outer - inner) reaches;
    - inner high, gate open, outer lower: draining as it should: nothing from this rule.

    The alert takes the highest severity of these. Closed: ``opening`` at most ``closed_at_most``."""

    upstream: PointName = "level_up"
    downstream: PointName = "level_down"
    opening: PointName = "gate_opening"
    side_tag: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = "flood_side"
    closed_at_most: float = Field(0.05, ge=0, description="an opening at or below this is closed (m)")
    inner: Levels = Field(description="inner (river side) levels, m on the station datum: warning, critical")
    inflow_head: Levels = Field(description="outer above inner with the gate open (m of head): tide flowing inland")


class Window(_Strict):
    """A statistic of one point over a calendar period (read from InfluxDB once the period is over) against levels.

    ``nodata: true`` is the no-data check: it raises the rule's ``severity`` when a device that sent the point
    recently has no sample of it in the period (the same as ``stat: count``, ``direction: low``, ``strict: true``
    and one level at 1).
    """

    point: PointName
    period: Literal["hour", "day"] = Field(description="hh:00 to hh+1:00, or 00:00 to 24:00, in ``timezone``")
    source: Literal["raw", "valid"] = Field(
        "raw",
        description="raw: the statistic of the stored samples; valid: the valid mean that rules.valid_means stored "
        "(validity rules and rounding applied; an invalid period gives no verdict)",
    )
    index: Literal["aqi", "class"] | None = Field(
        None,
        description="with source valid: read the derived index that rules.valid_means stores from the means "
        "(aqi: <measurement>_aqi_hourly / _daily, HJ 633; class: <measurement>_class_daily, GB 3838)",
    )
    nodata: bool = False
    stat: Literal["mean", "max", "min", "count", "max_8h"] = Field(
        "mean", description="max_8h: the daily maximum 8-hour mean (O3), with source valid and period day only"
    )
    direction: Literal["high", "low"] | None = None
    levels: list[Level] = Field(default_factory=list)
    deadband: float = Field(0.0, ge=0, description="absolute; a level clears once the statistic is back past it")
    strict: bool = Field(False, description="raise only beyond the value (> / <): a limit that the value may equal")
    min_count: int = Field(1, ge=1, description="samples needed for a verdict; fewer: no verdict, alerts kept")
    exclude_uncertain: bool = Field(False, description="leave samples of uncertain quality out (bad ones always are)")
    timezone: str = "Asia/Shanghai"
    delay_s: float = Field(120.0, ge=0, le=86400, description="wait after the period ends, for late data")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, key: str) -> str:
        try:
            ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {key!r} (an IANA name such as Asia/Shanghai)") from exc
        return key

    @model_validator(mode="after")
    def _consistent(self) -> Window:
        if self.nodata:
            extra = sorted(self.model_fields_set & {"stat", "direction", "levels", "deadband", "strict", "min_count"})
            if extra:
                raise field_error("a nodata check counts samples against 1; remove this field", extra[0])
            if self.source == "valid":
                raise field_error("a nodata check counts raw samples: remove source valid", "source")
            return self
        if self.direction is None:
            raise field_error("give direction (high or low), or nodata: true", "direction")
        if not self.levels:
            raise field_error("give at least one level, or nodata: true", "levels")
        _check_levels(self.direction, self.levels)
        if self.stat == "count" and "min_count" in self.model_fields_set:
            raise field_error("min_count does not apply to stat count", "min_count")
        if self.index is not None and self.source != "valid":
            raise field_error("a derived index is stored by rules.valid_means: give source: valid", "index")
        if self.source == "valid":
            self._check_valid_source()
        elif self.stat == "max_8h":
            raise field_error("stat max_8h is a stored valid mean: give source: valid", "stat")
        if self.exclude_uncertain and self.stat in ("max", "min"):
            # InfluxQL 1.x drops a row whose field is missing from any field filter, and a good sample has no
            # `.q` field: max/min of the good samples alone cannot be read in one query (mean and count can).
            raise field_error("exclude_uncertain works with stat mean or count only", "exclude_uncertain")
        return self

    def _check_valid_source(self) -> None:
        if self.stat not in ("mean", "max_8h"):
            raise field_error("a stored valid mean is read with stat mean or max_8h", "stat")
        if self.index is not None and self.stat != "mean":
            raise field_error("a derived index is read as stored: remove stat", "stat")
        if self.index == "class" and self.period != "day":
            raise field_error("the water class is a daily index: give period day", "period")
        if self.stat == "max_8h" and self.period != "day":
            raise field_error("the daily maximum 8-hour mean needs period day", "period")
        extra = sorted(self.model_fields_set & {"min_count", "exclude_uncertain"})
        if extra:
            raise field_error("a stored valid mean has its validity rule already (rules/means.yaml)", extra[0])

    @property
    def stored_field(self) -> str:
        """The field of the stored valid mean that this rule reads (source valid)."""
        return self.point + MAX_8H if self.stat == "max_8h" else self.point


KINDS = (
    "threshold",
    "rate",
    "state",
    "all",
    "any",
    "bad_quality",
    "frozen",
    "deadman",
    "offline",
    "window",
    "deviation",
    "noise",
    "tide_gate",
    "agent",
)


class Rule(_Strict):
    id: RuleId
    title: str = Field(min_length=1, max_length=200)
    title_zh: str = Field("", max_length=200, description="the title in Chinese (the console's zh-CN); empty: none")
    audience: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="who is told (water_ops, environment, safety, ...); none: from the device's domain tag",
    )
    select: Select
    severity: Severity | None = Field(None, description="for every kind but threshold (whose levels carry it)")
    on_delay_s: Seconds = 0.0
    off_delay_s: Seconds = 0.0
    threshold: Threshold | None = None
    rate: Rate | None = None
    state: State | None = None
    all_: list[Compare] | None = Field(None, alias="all", min_length=1)
    any_: list[Compare] | None = Field(None, alias="any", min_length=1)
    bad_quality: BadQuality | None = None
    frozen: Frozen | None = None
    deadman: Deadman | None = None
    offline: Offline | None = None
    deviation: Deviation | None = None
    noise: Noise | None = None
    tide_gate: TideGate | None = None
    agent: Agent | None = None
    window: Window | None = None

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, _attr(k)) is not None)

    @model_validator(mode="after")
    def _one_kind(self) -> Rule:
        given = [k for k in KINDS if getattr(self, _attr(k)) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise field_error(f"give exactly one condition of {', '.join(KINDS)} (found: {found})", "id")
        with_levels = given[0] in ("threshold", "tide_gate") or (self.window is not None and not self.window.nodata)
        if with_levels and self.severity is not None:
            raise field_error(f"a {given[0]}'s levels carry the severity; remove it here", "severity")
        if not with_levels and self.severity is None:
            raise field_error(f"a {given[0]} rule needs a severity", "id")
        if given[0] == "deadman" and (self.on_delay_s or self.off_delay_s):
            raise field_error("a deadman rule's delay is its intervals; remove on/off delays", "on_delay_s")
        if given[0] == "bad_quality" and self.on_delay_s:
            raise field_error("use bad_quality.for_s for how long quality must stay bad", "on_delay_s")
        if given[0] == "offline" and self.on_delay_s:
            raise field_error("use offline.for_s for how long the device must stay offline", "on_delay_s")
        if given[0] == "window":
            self._check_window()
        if given[0] == "agent":
            sel = self.select
            if sel.device != [AGENT_DEVICE] or sel.profile or sel.tags:
                raise field_error(f"an agent rule selects device {AGENT_DEVICE!r} (and sites) only", "select")
            if self.on_delay_s:
                raise field_error("an agent rule's delay is its timeout_s", "on_delay_s")
        return self

    def _check_window(self) -> None:
        if self.on_delay_s or self.off_delay_s:
            raise field_error("a window rule is judged once per period; remove on/off delays", "on_delay_s")
        if not self.select.profile:
            raise field_error("a window rule reads its profile's measurement: give select.profile", "select", "profile")
        for i, level in enumerate(self.window.levels if self.window else []):
            if level.on_delay_s is not None:
                raise field_error("a window level has no on_delay_s (judged once per period)", "window", "levels", i)


def _attr(kind: str) -> str:
    return kind + "_" if kind in ("all", "any") else kind


class RuleFile(_Strict):
    rules: list[Rule] = Field(default_factory=list)
