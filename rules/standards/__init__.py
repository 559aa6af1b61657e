"""Domain standards as pure, table-tested code: AQI (HJ 633-2012/2026), surface-water class (GB 3838-2002),
environmental noise limits (GB 3096-2008) and discharge permits (GB 13223-2011, ultra-low emission, GB 13271-2014,
GB 8978-1996 templates). No I/O except loading permit YAML; time and values are passed in.

- AQI: ``hourly_aqi(values, hour_start)``, ``daily_aqi(values, day)`` or ``aqi(values, at, report)`` give an
  ``AqiResult`` (AQI, level, primary pollutants, per-indicator IAQI, missing indicators, ``shown`` = number or NA);
  the edition follows the Asia/Shanghai date (``edition_for``); ``iaqi`` for one indicator.
- Water: ``water_class(values, WaterStation(...))`` -> ``WaterResult`` (class, deciding parameters, per-parameter
  classes); ``parameter_class`` for one value; ``misses_target``.
- Noise: ``noise_verdict(zone, at, laeq_db, lmax_db=...)``, ``noise_limit``, ``period_of``.
- Permits: ``load_templates()``, ``load_permits(path)`` -> ``{(site, device): Permit}``; ``o2_corrected``,
  ``check_limit``.
"""

from __future__ import annotations

from rules.standards.aqi import (
    AqiResult,
    Iaqi,
    aqi,
    daily_aqi,
    edition_for,
    hourly_aqi,
    iaqi,
    level_of,
    local_date,
    rounded_concentration,
)
from rules.standards.aqi_tables import (
    EDITIONS,
    HJ633_2012,
    HJ633_2026,
    IAQI_STEPS,
    Edition,
    Indicator,
    Level,
    Pollutant,
)
from rules.standards.noise import (
    GB3096_2008,
    DayPeriod,
    NoiseVerdict,
    NoiseZone,
    ZoneLimits,
    noise_limit,
    noise_verdict,
    period_of,
)
from rules.standards.permits import (
    TEMPLATES_FILE,
    Basis,
    CorrectionNotApplicable,
    LimitVerdict,
    Load,
    Permit,
    PermitTemplate,
    PollutantLimit,
    check_limit,
    load_permits,
    load_templates,
    o2_corrected,
)
from rules.standards.water import (
    DEFAULT_PARAMETERS,
    PARAMETERS,
    UNCLASSIFIED_POINTS,
    ParameterClass,
    WaterBody,
    WaterClass,
    WaterResult,
    WaterStation,
    misses_target,
    parameter_class,
    water_class,
)

__all__ = [
    "DEFAULT_PARAMETERS",
    "EDITIONS",
    "GB3096_2008",
    "HJ633_2012",
    "HJ633_2026",
    "IAQI_STEPS",
    "PARAMETERS",
    "TEMPLATES_FILE",
    "UNCLASSIFIED_POINTS",
    "AqiResult",
    "Basis",
    "CorrectionNotApplicable",
    "DayPeriod",
    "Edition",
    "Iaqi",
    "Indicator",
    "Level",
    "LimitVerdict",
    "Load",
    "NoiseVerdict",
    "NoiseZone",
    "ParameterClass",
    "Permit",
    "PermitTemplate",
    "Pollutant",
    "PollutantLimit",
    "WaterBody",
    "WaterClass",
    "WaterResult",
    "WaterStation",
    "ZoneLimits",
    "aqi",
    "check_limit",
    "daily_aqi",
    "edition_for",
    "hourly_aqi",
    "iaqi",
    "level_of",
    "load_permits",
    "load_templates",
    "local_date",
    "misses_target",
    "noise_limit",
    "noise_verdict",
    "o2_corrected",
    "parameter_class",
    "period_of",
    "rounded_concentration",
    "water_class",
]
