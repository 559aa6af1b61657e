"""Per-device changes to a profile's points, from the site file: one device's scale, offset, range, labels, decimals.

A drive's frequency scale depends on a parameter set on that drive (P0-10); a gas controller's decimals differ per
channel. The site file says so under the device (``points: {frequency: {scale: 0.01}}``) and the agent uses the
profile with those changes for that device only: decoding, ranges, published precision and write bounds alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_profiles.schema import DerivedPoint, Profile, _problem


class PointOverride(BaseModel):
    """What a device changes of one point of its profile; a field left out keeps the profile's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float | None = None
    offset: float | None = None
    range: tuple[float, float] | None = Field(default=None, description="engineering range [min, max]")
    states: dict[int, str] | None = Field(default=None, description="labels of coded values, replacing the profile's")
    decimals: int | None = Field(default=None, ge=0, le=9)
    unit: str | None = None

    @model_validator(mode="after")
    def _sane(self) -> PointOverride:
        if self.scale == 0:
            raise _problem("scale must not be 0", "scale")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise _problem(f"range [{self.range[0]}, {self.range[1]}] must have min < max", "range")
        return self

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


def override_problems(profile: Profile, overrides: Mapping[str, PointOverride]) -> list[str]:
    """Names of points the profile does not have, and changes a derived point cannot take (only decimals, unit)."""
    points = {p.name for p in profile.points}
    derived = set(profile.derived_names())
    out: list[str] = []
    for name, change in overrides.items():
        if name in derived:
            extra = sorted(set(change.changes()) - {"decimals", "unit"})
            if extra:
                out.append(f"{name!r} is a derived point: only decimals and unit can be set, not {', '.join(extra)}")
        elif name not in points:
            out.append(f"profile {profile.name!r} has no point {name!r} (its points: {', '.join(sorted(points))})")
    return out


def apply_overrides(profile: Profile, overrides: Mapping[str, PointOverride]) -> Profile:
    """The profile as this device has it (the same object when there is nothing to change)."""
    if not overrides:
        return profile
    update: dict[str, object] = {}
    for key in ("modbus", "mqtt", "internal"):
        spec = getattr(profile, key)
        if spec is None:
            continue
        points = [p.model_copy(update=overrides[p.name].changes()) if p.name in overrides else p for p in spec.points]
        update[key] = spec.model_copy(update={"points": points})
    if profile.derived is not None and any(d.name in overrides for d in profile.derived.points):
        derived: list[DerivedPoint] = [
            d.model_copy(update=overrides[d.name].changes()) if d.name in overrides else d
            for d in profile.derived.points
        ]
        update["derived"] = profile.derived.model_copy(update={"points": derived})
    return profile.model_copy(update=update)
