"""Proportions as the report shows them: the Wilson interval, ratios and rounding."""

from __future__ import annotations

from escalator.tools.stats import Z95, wilson

__all__ = ["Z95", "wilson"]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float) -> float:
    return round(value, 4)


def _maybe(value: float | None) -> float | None:
    return None if value is None else round(value, 4)

