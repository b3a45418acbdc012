"""Fairness audit of a decision log: route-to-human rates by segment, and disparities.

Rates are compared within bands of need (how frustrated the customer was on that turn),
because a segment that is simply calmer should be routed less often. Within a band, a
segment whose rate is below four fifths of the best segment's rate is flagged (the
"four-fifths rule" of adverse-impact analysis). Turns already with a person
(conversation.escalated) are left out: they are not decisions about need.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from escalator.model import ROUTE

DIMENSIONS = ("channel", "language", "tier")
# Bands of need by the turn's frustration.score; the edges are the default policy's
# scale: below 0.3 calm, from 0.6 clearly frustrated.
BANDS = (("low frustration", 0.0, 0.3), ("medium frustration", 0.3, 0.6),
         ("high frustration", 0.6, 1.01))
FOUR_FIFTHS = 0.8
DEFAULT_MIN_COUNT = 30
NONE = "(none)"


class AuditError(ValueError):
    """A log line could not be read; the message names the line."""


def read_log(stream: TextIO, source: str = "log") -> Iterator[dict[str, Any]]:
    """The decision records of a JSON-lines log."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditError(f"{source}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or "decision" not in record or "facts" not in record:
            raise AuditError(f"{source}:{number}: not a decision record")
        yield record


@dataclass
class Rate:
    """How many decisions, and how many of them routed to a person."""

    decisions: int = 0
    routed: int = 0

    @property
    def rate(self) -> float:
        return self.routed / self.decisions if self.decisions else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "routed": self.routed,
                "rate": round(self.rate, 4)}


@dataclass(frozen=True)
class Disparity:
    """A segment routed at less than four fifths of the best segment's rate in its band."""

    dimension: str
    band: str
    segment: str
    rate: float
    best_segment: str
    best_rate: float

    @property
    def ratio(self) -> float:
        return self.rate / self.best_rate if self.best_rate else 1.0

    def explain(self) -> str:
        return (f"In the {self.band} band, {self.dimension} '{self.segment}' was routed to a "
                f"person {self.rate:.0%} of the time, against {self.best_rate:.0%} for "
                f"'{self.best_segment}' (ratio {self.ratio:.2f}, below {FOUR_FIFTHS}). "
                f"Customers in similar need are treated differently: check whether the "
                f"scores or the rules see this {self.dimension} differently.")


@dataclass(frozen=True)
class Comparison:
    """One dimension within one band: which segments were compared, and which had too few
    decisions to be (with their counts)."""

    dimension: str
    band: str
    compared: tuple[str, ...]
    too_small: tuple[tuple[str, int], ...]

    @property
    def made(self) -> bool:
        """Whether at least two segments were compared (a disparity could be seen)."""
        return len(self.compared) >= 2

    def as_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "band": self.band, "made": self.made,
                "compared": list(self.compared), "too_small": dict(self.too_small)}


# What an audit concluded: a disparity, none among the segments it could compare, or
# nothing compared at all (which must never read as "no disparity").
DISPARITY = "disparity"
NO_DISPARITY = "no_disparity"
TOO_LITTLE_DATA = "too_little_data"


@dataclass
class AuditResult:
    """Rates overall, by segment, by segment within each band, and the disparities."""

    min_count: int
    overall: Rate = field(default_factory=Rate)
    skipped_with_person: int = 0
    by_segment: dict[str, dict[str, Rate]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Rate)))
    by_band: dict[str, dict[str, dict[str, Rate]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(Rate))))
    disparities: list[Disparity] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """DISPARITY, NO_DISPARITY (among the segments compared) or TOO_LITTLE_DATA."""
        if self.disparities:
            return DISPARITY
        return NO_DISPARITY if any(c.made for c in self.comparisons) else TOO_LITTLE_DATA

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "decisions": self.overall.decisions,
            "overall": self.overall.as_dict(),
            "skipped_with_person": self.skipped_with_person,
            "min_count": self.min_count,
            "by_segment": {d: {s: r.as_dict() for s, r in sorted(segs.items())}
                           for d, segs in self.by_segment.items()},
            "by_band": {d: {b: {s: r.as_dict() for s, r in sorted(segs.items())}
                            for b, segs in bands.items()}
                        for d, bands in self.by_band.items()},
            "disparities": [dict(vars(x), ratio=round(x.ratio, 4)) for x in self.disparities],
            "comparisons": [c.as_dict() for c in self.comparisons],
        }


def _band(record: dict[str, Any]) -> str:
    score = record["facts"].get("frustration.score", 0.0)
    for name, low, high in BANDS:
        if low <= float(score) < high:
            return name
    return BANDS[-1][0]


def audit(records: Iterable[dict[str, Any]],
          min_count: int = DEFAULT_MIN_COUNT) -> AuditResult:
    """Count every record and flag segments below four fifths of the best in their band."""
    result = AuditResult(min_count=min_count)
    for record in records:
        if record["facts"].get("conversation.escalated"):
            result.skipped_with_person += 1
            continue
        routed = record["decision"] == ROUTE
        band = _band(record)
        segment = record.get("segment") or {}
        result.overall.decisions += 1
        result.overall.routed += routed
        for dimension in DIMENSIONS:
            value = segment.get(dimension) or NONE
            for rate in (result.by_segment[dimension][value],
                         result.by_band[dimension][band][value]):
                rate.decisions += 1
                rate.routed += routed
    for dimension, bands in result.by_band.items():
        for band, segments in bands.items():
            counted = {s: r for s, r in segments.items() if r.decisions >= min_count}
            result.comparisons.append(Comparison(
                dimension, band, tuple(sorted(counted)),
                tuple(sorted((s, r.decisions) for s, r in segments.items()
                             if r.decisions < min_count))))
            if len(counted) < 2:
                continue
            best_segment, best = max(counted.items(), key=lambda item: item[1].rate)
            for name, rate in sorted(counted.items()):
                if best.rate > 0 and rate.rate < FOUR_FIFTHS * best.rate:
                    result.disparities.append(Disparity(dimension, band, name, rate.rate,
                                                        best_segment, best.rate))
    return result


def report(result: AuditResult) -> str:
    """What the audit found, in plain words."""
    lines = [f"{result.overall.decisions} decisions audited "
             f"({result.skipped_with_person} turns already with a person left out); "
             f"{result.overall.rate:.1%} routed to a person."]
    for dimension, segments in result.by_segment.items():
        shown = ", ".join(f"{s} {r.rate:.1%} of {r.decisions}"
                          for s, r in sorted(segments.items()))
        lines.append(f"by {dimension}: {shown}")
    for dimension, bands in result.by_band.items():
        for band, segments in bands.items():
            shown = ", ".join(f"{s} {r.rate:.1%} of {r.decisions}"
                              for s, r in sorted(segments.items()))
            lines.append(f"  {band}, by {dimension}: {shown}")
    verdict = result.verdict
    if verdict == DISPARITY:
        lines.append(f"{len(result.disparities)} disparity(ies) found:")
        lines.extend(f"- {d.explain()}" for d in result.disparities)
    elif verdict == NO_DISPARITY:
        lines.append(f"No disparity among the segments compared: within each band of "
                     f"frustration, every segment with at least {result.min_count} decisions "
                     f"was routed at no less than four fifths of the best segment's rate in "
                     f"that band.")
    else:
        lines.append(f"Too little data to compare: no band of frustration held two segments "
                     f"of the same {' or '.join(DIMENSIONS)} with at least "
                     f"{result.min_count} decisions each, so a disparity can be neither "
                     f"found nor ruled out.")
    not_compared = [_not_compared(c, result.min_count) for c in result.comparisons
                    if c.too_small or not c.made]
    if not_compared:
        lines.append("Not compared:")
        lines.extend(f"- {line}" for line in not_compared)
        lines.append(f"Segments need {result.min_count} decisions in a band to be compared "
                     f"(--min-count): collect a longer log, or lower --min-count knowing that "
                     f"rates from few decisions are unreliable.")
    return "\n".join(lines)


def _not_compared(comparison: Comparison, min_count: int) -> str:
    """Why segments of one dimension in one band were left out, in plain words."""
    where = f"in the {comparison.band} band, by {comparison.dimension}"
    small = ", ".join(f"'{s}' ({n} decision{'s' if n != 1 else ''})"
                      for s, n in comparison.too_small)
    if len(comparison.compared) + len(comparison.too_small) == 1:
        alone = (comparison.compared or [s for s, _ in comparison.too_small])[0]
        return f"{where}: only '{alone}' appears, so there is nothing to compare it with"
    if comparison.made:
        return f"{where}: {small}: too few decisions (fewer than {min_count})"
    if comparison.compared:
        alone = comparison.compared[0]
        others = f"; {small} had too few" if small else ""
        return (f"{where}: only '{alone}' had enough decisions, and there was nothing to "
                f"compare it with{others}")
    return f"{where}: {small}: too few decisions to compare (fewer than {min_count} each)"
