"""Charts as inline SVG, drawn on the server: no chart library, no script, no network.

Why SVG from Python: a chart is then part of the page's HTML, so it shows offline, in a
page saved to disk or e-mailed as one file (the self-contained HTML report reuses this
module), with JavaScript off, and prints sharply. Each chart carries a <title> and a
<desc> for screen readers, writes every value as text beside its bar (colour is never the
only cue), and styles itself with attributes rather than a stylesheet, so it looks the
same wherever it is pasted. The colours pass WCAG AA contrast on white.

Two kinds, which cover the studio and the report:
- `bars`: horizontal bars, one group per category, one bar per series (e.g. the saved
  and the edited rule set), with an optional dashed reference line per group (the
  four-fifths threshold of an audit) and categories shown as "not enough data";
- `columns`: vertical bars over an ordered axis (escalations by turn number), with an
  optional dashed marker between two columns (a rule's threshold in the report).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

# Series colours, each at least 4.5:1 against white (text drawn in them stays readable).
PALETTE = ("#4a5568", "#0b63a8", "#8a4b00", "#6b3fa0")
FLAGGED = "#b3261e"
TEXT = "#1a202c"
MUTED = "#4a5568"
FONT = "font-family=\"system-ui, sans-serif\""


@dataclass(frozen=True)
class Series:
    """One set of values drawn in one colour (None: no value for that category)."""

    name: str
    values: Sequence[float | None]
    notes: Sequence[str] = ()  # text after the value, per category ("12 of 40")
    # An interval per category (e.g. a 95% confidence interval), drawn as a whisker over
    # the bar by `bars`; none by default.
    intervals: Sequence[tuple[float, float] | None] = ()


@dataclass(frozen=True)
class Group:
    """Per category: a reference value drawn as a dashed line, flagged bars (series index),
    and categories with too little data to draw (their text instead of bars)."""

    references: Sequence[float | None] = ()
    reference_label: str = ""
    flagged: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # (series, cat)
    missing: dict[int, str] = field(default_factory=dict)  # category -> why no bar


def percent(value: float) -> str:
    """0.1234 -> "12.3%"."""
    return f"{value * 100:.1f}%"


def _svg(width: int, height: int, title: str, description: str, body: list[str],
         chart_id: str) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>'
        + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "start", color: str = TEXT,
          size: int = 13, weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{color}" '
            f'font-size="{size}" font-weight="{weight}" {FONT}>{escape(text)}</text>')


def bars(title: str, categories: Sequence[str], series: Sequence[Series], *,
         maximum: float = 1.0, fmt: Callable[[float], str] = percent,
         group: Group | None = None, chart_id: str = "chart", width: int = 640,
         label_width: int = 150, value_width: int = 130) -> Markup:
    """Horizontal bars: each category a row group with one bar per series (room on the
    left for the category names, on the right for the values written after the bars)."""
    group = group or Group()
    bar_height, gap = 16, 10
    plot = width - label_width - value_width
    rows = max(len(series), 1)
    legend = 24 if len(series) > 1 or group.reference_label else 0
    height = legend + len(categories) * (rows * bar_height + gap) + 8
    body: list[str] = []
    x = label_width
    for index, one in enumerate(series if len(series) > 1 else ()):
        color = PALETTE[index % len(PALETTE)]
        body.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{color}"/>')
        body.append(_text(x + 16, 15, one.name, size=12))
        x += 24 + 8 * len(one.name)
    if group.reference_label:
        body.append(f'<line x1="{x}" y1="10" x2="{x + 18}" y2="10" stroke="{TEXT}" '
                    f'stroke-width="2" stroke-dasharray="4 3"/>')
        body.append(_text(x + 24, 15, group.reference_label, size=12))
    described: list[str] = []
    y = legend
    scale = plot / maximum if maximum > 0 else 0.0
    for cat, category in enumerate(categories):
        block = rows * bar_height
        body.append(_text(label_width - 8, y + block / 2 + 5, category, anchor="end"))
        if cat in group.missing:
            body.append(_text(label_width + 4, y + block / 2 + 5, group.missing[cat],
                              color=MUTED, size=12))
            described.append(f"{category}: {group.missing[cat]}")
        else:
            for index, one in enumerate(series):
                value = one.values[cat] if cat < len(one.values) else None
                top = y + index * bar_height
                note = one.notes[cat] if cat < len(one.notes) else ""
                if value is None:
                    continue
                flagged = (index, cat) in group.flagged
                color = FLAGGED if flagged else PALETTE[index % len(PALETTE)]
                length = max(value * scale, 1.0)
                body.append(f'<rect x="{label_width}" y="{top + 2}" width="{length:.1f}" '
                            f'height="{bar_height - 4}" fill="{color}"/>')
                shown = fmt(value) + (f" ({note})" if note else "")
                if flagged:
                    shown += " below threshold"
                interval = one.intervals[cat] if cat < len(one.intervals) else None
                end = length
                if interval is not None:
                    low, high = (label_width + v * scale for v in interval)
                    middle = top + bar_height / 2
                    body.append(
                        f'<path d="M{low:.1f} {middle - 4:.1f}v8M{low:.1f} {middle:.1f}'
                        f'H{high:.1f}M{high:.1f} {middle - 4:.1f}v8" stroke="{TEXT}" '
                        f'stroke-width="1.5" fill="none"/>')
                    end = max(length, high - label_width)
                body.append(_text(label_width + end + 6, top + bar_height - 4, shown,
                                  color=color, size=12))
                described.append(f"{category}, {one.name}: {shown}")
            reference = (group.references[cat] if cat < len(group.references) else None)
            if reference is not None:
                rx = label_width + reference * scale
                body.append(f'<line x1="{rx:.1f}" y1="{y}" x2="{rx:.1f}" y2="{y + block}" '
                            f'stroke="{TEXT}" stroke-width="2" stroke-dasharray="4 3"/>')
        y += block + gap
    return _svg(width, height, title, "; ".join(described), body, chart_id)


def columns(title: str, labels: Sequence[str], series: Sequence[Series], *,
            fmt: Callable[[float], str] = lambda v: f"{v:g}", axis_label: str = "",
            chart_id: str = "chart", width: int = 640, height: int = 220,
            marker: float | None = None, marker_label: str = "", show_values: bool = True,
            label_every: int = 1) -> Markup:
    """Vertical bars over an ordered axis, one bar per series at each label.

    `marker`: a dashed line at that position of the axis (in columns from the left edge:
    2.0 is between the second and the third), named by `marker_label`; with many columns,
    `show_values=False` leaves the values to the description and `label_every` writes
    every n-th label only."""
    top, bottom, left = 40 if len(series) > 1 else 20, 40, 8
    plot_height = height - top - bottom
    maximum = max((v for one in series for v in one.values if v is not None), default=0.0)
    scale = plot_height / maximum if maximum > 0 else 0.0
    slot = (width - 2 * left) / max(len(labels), 1)
    bar = max(min(slot / (len(series) + 1), 28.0), 2.0)
    body: list[str] = []
    x = left
    for index, one in enumerate(series if len(series) > 1 else ()):
        color = PALETTE[index % len(PALETTE)]
        body.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{color}"/>')
        body.append(_text(x + 16, 17, one.name, size=12))
        x += 24 + 8 * len(one.name)
    base = top + plot_height
    body.append(f'<line x1="{left}" y1="{base}" x2="{width - left}" y2="{base}" '
                f'stroke="{MUTED}" stroke-width="1"/>')
    described: list[str] = []
    for position, label in enumerate(labels):
        start = left + position * slot + (slot - bar * len(series)) / 2
        for index, one in enumerate(series):
            value = one.values[position] if position < len(one.values) else None
            if value is None:
                continue
            length = value * scale
            color = PALETTE[index % len(PALETTE)]
            bx = start + index * bar
            body.append(f'<rect x="{bx:.1f}" y="{base - length:.1f}" width="{bar - 2:.1f}" '
                        f'height="{length:.1f}" fill="{color}"/>')
            if value and show_values:
                body.append(_text(bx + (bar - 2) / 2, base - length - 3, fmt(value),
                                  anchor="middle", color=color, size=11))
            described.append(f"{label}, {one.name}: {fmt(value)}")
        if position % label_every == 0:
            body.append(_text(left + position * slot + slot / 2, base + 16, label,
                              anchor="middle", size=12))
    if marker is not None:
        mx = left + marker * slot
        body.append(f'<line x1="{mx:.1f}" y1="{top - 6}" x2="{mx:.1f}" y2="{base}" '
                    f'stroke="{FLAGGED}" stroke-width="2" stroke-dasharray="5 3"/>')
        if marker_label:
            anchor = "end" if mx > width * 0.7 else "start"
            body.append(_text(mx + (-4 if anchor == "end" else 4), top - 8, marker_label,
                              anchor=anchor, color=FLAGGED, size=12))
    if axis_label:
        body.append(_text(width / 2, height - 6, axis_label, anchor="middle", color=MUTED,
                          size=12))
    return _svg(width, height, title, "; ".join(described), body, chart_id)
