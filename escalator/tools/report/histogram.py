"""Histograms of a fact's values: bounded bins, their summary, and bins for a chart with
one edge on a threshold."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from escalator.ruleset.catalogue import lookup
from escalator.tools.report.stats import _maybe
from escalator.tools.report.thresholds import Threshold

MAX_BINS = 2000


class Histogram:
    """Counts of a number in bins of `step` (floor(value / step)); when it holds more than
    MAX_BINS bins the step doubles, so its size stays bounded whatever the values."""

    __slots__ = ("counts", "step", "total")

    def __init__(self, step: float) -> None:
        self.step = step
        self.counts: dict[int, int] = defaultdict(int)
        self.total = 0

    def add(self, value: float) -> None:
        self.counts[math.floor(value / self.step)] += 1
        self.total += 1
        if len(self.counts) > MAX_BINS:
            merged: dict[int, int] = defaultdict(int)
            for key, count in self.counts.items():
                merged[key // 2] += count
            self.counts = merged
            self.step *= 2

    def bins(self) -> list[tuple[float, int]]:
        """(lower edge, count) in order."""
        return [(key * self.step, self.counts[key]) for key in sorted(self.counts)]

    def quantile(self, q: float) -> float | None:
        """The lower edge of the bin holding the q-quantile (None when empty)."""
        if not self.total:
            return None
        target = q * self.total
        seen = 0
        for lower, count in self.bins():
            seen += count
            if seen >= target:
                return lower
        return None  # pragma: no cover - seen reaches total

    def range(self) -> tuple[float, float] | None:
        if not self.counts:
            return None
        return min(self.counts) * self.step, (max(self.counts) + 1) * self.step


def _step(fact: str) -> float:
    spec = lookup(fact)
    if spec is not None and spec.type == "integer":
        return 1.0
    if spec is not None and spec.minimum is not None and spec.maximum is not None:
        return (spec.maximum - spec.minimum) / 200
    return 0.01


def _summary(hist: Histogram) -> dict[str, Any]:
    return {"count": hist.total, "median": _maybe(hist.quantile(0.5)),
            "p90": _maybe(hist.quantile(0.9))}



def _nice(width: float) -> float:
    """A readable bin width at least `width` (1, 2, 2.5 or 5 times a power of ten)."""
    if width <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(width))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= width * 0.999:
            return factor * power
    return 10.0 * power  # pragma: no cover


def _display_bins(threshold: Threshold, hists: Sequence[Histogram], *, integer: bool,
                  target: int = 16) -> tuple[list[float], list[list[int]]]:
    """Bins for a chart, one edge on the threshold: edges (lower edge of each bin, then
    the last bin's upper edge) and each histogram's counts in them."""
    ranges = [r for r in (h.range() for h in hists) if r is not None]
    t = threshold.value
    low = min([t, *(r[0] for r in ranges)])
    high = max([t, *(r[1] for r in ranges)])
    width = max((high - low) / target, 1.0 if integer else 1e-9)
    width = float(math.ceil(width)) if integer else _nice(width)
    high = max(high, t + width)  # a bin on the far side of the threshold, even if empty
    first = t - math.ceil((t - low) / width - 1e-9) * width
    count = max(1, math.ceil((high - first) / width - 1e-9))
    edges = [round(first + i * width, 6) + 0.0 for i in range(count + 1)]  # never -0.0
    counts = []
    for hist in hists:
        binned = [0] * count
        for lower, n in hist.bins():
            centre = lower + hist.step / 2 if not integer else lower
            index = min(max(int((centre - first) // width), 0), count - 1)
            binned[index] += n
        counts.append(binned)
    return edges, counts
