"""The storage schema in InfluxDB that the bridge writes and every reader (API, rules) queries.

A point ``P`` of a sample is the field ``P``; its quality, when not good, the integer field ``P.q`` (the wire
contract's ``Quality`` code) and its reason the string field ``P.reason``. Measurement and tags come from the
device profile (``measurement``; tags ``site``, ``device``, ``profile``, ``domain`` and the profile's own).
"""

from __future__ import annotations

QUALITY_SUFFIX = ".q"
REASON_SUFFIX = ".reason"

__all__ = ["QUALITY_SUFFIX", "REASON_SUFFIX"]
