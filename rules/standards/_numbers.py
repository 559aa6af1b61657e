"""Exact numbers for standards arithmetic: measured values as decimals, rounded the GB/T 8170 way.

GB/T 8170-2008 §3.2 (numerical rounding): round to the nearest; when the discarded part is exactly 5 (nothing but
zeros after it), keep the retained digit if it is even and raise it if it is odd ("round half to even" on the
decimal digits). Floats are turned into decimals through their shortest repr, so 2.45 is the decimal 2.45 that a
person reads, not the binary 2.4500000000000001776...; float ``round()`` is never used.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

Number = int | float | Decimal


def as_decimal(value: Number, what: str) -> Decimal:
    """``value`` as an exact decimal; NaN and infinities raise ValueError, non-numbers TypeError, naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{what}: {value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what}: {value!r} is not a finite number")
    dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not dec.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return dec


def round_gbt8170(value: Decimal, decimals: int) -> Decimal:
    """``value`` rounded to ``decimals`` places by GB/T 8170-2008 §3.2 (half to even on the decimal digits)."""
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
