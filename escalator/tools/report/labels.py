"""The names the report counts under: feedback labels, segment dimensions, and the rule
and values that stand for none or for the rest."""

from __future__ import annotations

STICKY_RULE = "handoff-in-progress"  # escalator.pipeline's rule for turns already with a person
DEFAULT_RULE = "(default)"  # what a decision no rule matched is counted under
NONE = "(none)"  # a segment the turn did not carry
OTHER = "(other)"  # past MAX_VALUES distinct values of a dimension
LABELS = ("handoff_needed", "handoff_not_needed", "should_have_escalated", "resolved_by_bot")
NEEDED, NOT_NEEDED, MISSED, RESOLVED = LABELS
DIMENSIONS = ("channel", "language", "tier")
