"""The bridge's validation is the shared one (``device_profiles.validate``, which the rules engine uses too)."""

from __future__ import annotations

from device_profiles.validate import (
    Declared,
    Invalid,
    KnownSite,
    Origin,
    Registry,
    SiteLoader,
    ValueKind,
    check,
    check_values,
    declared_types,
)

__all__ = [
    "Declared",
    "Invalid",
    "KnownSite",
    "Origin",
    "Registry",
    "SiteLoader",
    "ValueKind",
    "check",
    "check_values",
    "declared_types",
]
