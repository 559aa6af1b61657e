"""Small number helpers of the builders."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal


def share(part: int, whole: int) -> float | None:
    """``part / whole`` as a percentage with one decimal (GB/T 8170 half to even); None when ``whole`` is 0."""
    if whole <= 0:
        return None
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_EVEN))


def rounded(value: float, places: int = 3) -> float:
    """``value`` rounded half to even on its decimal text (never float ``round``)."""
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN))
