"""Small statistics shared by the benchmarks."""

from __future__ import annotations

__all__ = ["pct"]


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolated between the two nearest ranks; NaN for none."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
