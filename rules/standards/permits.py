"""Discharge permits as data: limits per source and pollutant, and the pure checks against them.

Shipped templates (``permits.yaml``, package data) carry the national values in shared/standards: emissions.md
(GB 13223-2011 Table 1, the ultra-low emission programme, reference O2 per source type: coal 6 %, oil/gas boilers
3 %, gas turbines 15 %, GB 13271-2014 industrial boilers 9 % / 3.5 %) and water.md (GB 8978-1996 Table 4). A site's
permit file names a template per source and overrides any value. Loading reads YAML (the shell); ``o2_corrected``
and ``check_limit`` are pure.

- Oxygen correction (emissions.md): C_ref = C_measured × (21 − O2_ref) / (21 − O2_measured), both dry. At an O2
  of about 20 % or more the unit is off or the probe reads air: not corrected, excluded from exceedance decisions.
- A value equal to the limit complies (limits are maxima; a range includes its edges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_profiles import field_error
from infra.config_loader import ConfigError, YamlDoc, read_yaml, validate

TEMPLATES_FILE = Path(__file__).parent / "permits.yaml"
O2_AIR_LIMIT = 20.0  # emissions.md (practice): at or above about 20 % O2 the factor explodes; do not correct

PointName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Basis(StrEnum):
    HOURLY_MEAN = "hourly_mean"  # flue gas: O2-corrected hourly mean
    DAILY_MEAN = "daily_mean"
    LOAD = "load"  # a mass over a period (permitted emission amount)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Load(_Strict):
    value: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    unit: Literal["kg/h", "kg/d", "t/a"]


class PollutantLimit(_Strict):
    """One pollutant's limits; a field left out sets no limit of that kind."""

    hourly_mean: NonNegative | None = None
    daily_mean: NonNegative | None = None
    range: tuple[float, float] | None = Field(None, description="inside [low, high] on every basis (pH)")
    load: Load | None = None

    @model_validator(mode="after")
    def _check(self) -> PollutantLimit:
        if self.range is not None and not self.range[0] <= self.range[1]:
            raise field_error(f"range {list(self.range)}: low must not be above high", "range")
        if self.model_dump(exclude_none=True) == {}:
            raise field_error("give at least one of hourly_mean, daily_mean, range, load", "hourly_mean")
        return self

    def merged(self, override: PollutantLimit) -> PollutantLimit:
        """This limit with the fields ``override`` sets replaced."""
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


O2Ref = Annotated[float, Field(ge=0, lt=21, allow_inf_nan=False)]


class PermitTemplate(_Strict):
    title: str
    basis: str  # the standard or document the values come from
    medium: Literal["flue_gas", "wastewater"]
    o2_ref: O2Ref | None = None
    limits: dict[PointName, PollutantLimit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _o2(self) -> PermitTemplate:
        if self.medium == "flue_gas" and self.o2_ref is None:
            raise field_error("a flue-gas source needs its reference O2 (o2_ref, %)", "o2_ref")
        if self.medium == "wastewater" and self.o2_ref is not None:
            raise field_error("a wastewater outlet has no reference O2", "o2_ref")
        return self


class TemplateFile(_Strict):
    templates: dict[Name, PermitTemplate]


class SourceEntry(_Strict):
    """One source in a site's permit file: a template and the permit's own values over it."""

    site: Name
    device: Name
    template: Name | None = None
    title: str | None = None
    basis: str | None = None
    medium: Literal["flue_gas", "wastewater"] | None = None
    o2_ref: O2Ref | None = None
    limits: dict[PointName, PollutantLimit] = Field(default_factory=dict)


class PermitFile(_Strict):
    sources: list[SourceEntry]


@dataclass(frozen=True, slots=True)
class Permit:
    """A source's resolved permit: the template with the site's overrides applied."""

    site: str
    device: str
    template: str | None
    title: str
    basis: str
    medium: Literal["flue_gas", "wastewater"]
    o2_ref: float | None
    limits: Mapping[str, PollutantLimit]


@dataclass(frozen=True, slots=True)
class LimitVerdict:
    pollutant: str
    basis: Basis
    value: float
    limit: float | tuple[float, float]
    unit: str | None  # for a load limit: its unit
    exceeded: bool


class CorrectionNotApplicable(ValueError):
    """The O2 reading is too high to correct (unit off or probe in air): mark the value, judge nothing on it."""


# --- loading (the shell) ---------------------------------------------------------------------------------------
def load_templates(path: Path = TEMPLATES_FILE) -> Mapping[str, PermitTemplate]:
    """The permit templates of ``path`` (default: the shipped ones); ConfigError names file, line and field."""
    return MappingProxyType(dict(validate(TemplateFile, read_yaml(path), "permit templates").templates))


def load_permits(path: Path, templates: Mapping[str, PermitTemplate] | None = None) -> Mapping[tuple[str, str], Permit]:
    """A site's permits by (site, device); every problem is one line of a ConfigError naming file:line and field."""
    known = load_templates() if templates is None else templates
    doc = read_yaml(path)
    pf = validate(PermitFile, doc, "permit file")
    problems: list[str] = []
    out: dict[tuple[str, str], Permit] = {}
    for i, entry in enumerate(pf.sources):
        key = (entry.site, entry.device)
        if key in out:
            problems.append(_where(doc, i, "device", f"duplicate source {entry.site}/{entry.device}"))
            continue
        permit = _resolve(entry, known, doc, i, problems)
        if permit is not None:
            out[key] = permit
    if problems:
        raise ConfigError(problems)
    return MappingProxyType(out)


def _resolve(
    entry: SourceEntry, known: Mapping[str, PermitTemplate], doc: YamlDoc, i: int, problems: list[str]
) -> Permit | None:
    base: PermitTemplate | None = None
    if entry.template is not None:
        base = known.get(entry.template)
        if base is None:
            problems.append(
                _where(doc, i, "template", f"unknown template {entry.template!r}; known: {', '.join(sorted(known))}")
            )
            return None
    medium = entry.medium or (base.medium if base else None)
    o2_ref = entry.o2_ref if "o2_ref" in entry.model_fields_set else (base.o2_ref if base else None)
    if medium is None:
        problems.append(_where(doc, i, "medium", "give a template or a medium (flue_gas or wastewater)"))
        return None
    if medium == "flue_gas" and o2_ref is None:
        problems.append(_where(doc, i, "o2_ref", "a flue-gas source needs its reference O2 (o2_ref, %)"))
        return None
    if medium == "wastewater" and o2_ref is not None:
        problems.append(_where(doc, i, "o2_ref", "a wastewater outlet has no reference O2"))
        return None
    limits = dict(base.limits) if base else {}
    for name, override in entry.limits.items():
        limits[name] = limits[name].merged(override) if name in limits else override
    title = entry.title or (base.title if base else f"{entry.site}/{entry.device}")
    basis = entry.basis or (base.basis if base else "site permit")
    return Permit(entry.site, entry.device, entry.template, title, basis, medium, o2_ref, MappingProxyType(limits))


def _where(doc: YamlDoc, i: int, field: str, msg: str) -> str:
    line = doc.line_of(["sources", i, field]) or doc.line_of(["sources", i]) or 1
    return f"{doc.path}:{line}: permit file, field sources[{i}].{field}: {msg}"


# --- pure checks -------------------------------------------------------------------------------------------------
def o2_corrected(c_measured: float, o2_measured: float, o2_ref: float, *, o2_limit: float = O2_AIR_LIMIT) -> float:
    """``c_measured`` at the reference O2 (emissions.md): C × (21 − O2_ref) / (21 − O2_measured)."""
    if not 0 <= o2_measured < o2_limit:
        raise CorrectionNotApplicable(
            f"O2 {o2_measured} % is outside [0, {o2_limit}) %: not corrected "
            "(unit off or probe in air); exclude the value from exceedance decisions"
        )
    if not 0 <= o2_ref < 21:
        raise ValueError(f"reference O2 {o2_ref} % is outside [0, 21) %")
    return c_measured * (21 - o2_ref) / (21 - o2_measured)


def check_limit(
    permit: Permit, pollutant: str, basis: Basis | str, value: float, *, unit: str | None = None
) -> LimitVerdict | None:
    """``value`` against the permit's limit of ``pollutant`` on ``basis``; None when the permit sets none.

    Flue-gas concentrations are compared after O2 correction (``o2_corrected``) by the caller; a load needs its
    ``unit``, which must be the limit's.
    """
    b = Basis(basis)
    lim = permit.limits.get(pollutant)
    if lim is None:
        return None
    if b is Basis.LOAD:
        if lim.load is None:
            return None
        if unit != lim.load.unit:
            raise ValueError(
                f"{permit.site}/{permit.device} {pollutant}: load given in {unit!r}, the limit is in {lim.load.unit}"
            )
        return LimitVerdict(pollutant, b, value, lim.load.value, lim.load.unit, value > lim.load.value)
    if lim.range is not None:
        low, high = lim.range
        return LimitVerdict(pollutant, b, value, lim.range, None, not low <= value <= high)
    maximum = lim.hourly_mean if b is Basis.HOURLY_MEAN else lim.daily_mean
    if maximum is None:
        return None
    return LimitVerdict(pollutant, b, value, maximum, None, value > maximum)
