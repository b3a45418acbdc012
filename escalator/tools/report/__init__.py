"""`escalator report`: why conversations were escalated, and whether they should have been,
from a decision log with its feedback, in one streaming pass.

The log is JSON lines as escalator.decisionlog writes them: decision records (`"kind":
"decision"`, or no kind) and feedback records (`"kind": "feedback"`), in any order and
from any number of files. What is computed, for a time range:
- escalations: the share of decisions that handed the conversation to a person (turns of
  a conversation already with one are counted apart), over time and by deciding rule,
  channel, language and tier;
- per rule: how often it decided and, of the feedback on its decisions, the share
  labelled `handoff_needed` (its precision in production) with a Wilson 95% interval;
- missed escalations (`should_have_escalated` feedback) against conversations the bot
  rightly kept (`resolved_by_bot`), by the facts at the time;
- per numeric threshold of the rule set: the fact's values among needed and not-needed
  handoffs (and missed ones), so an owner sees where the threshold sits;
- shadow rule sets: agreement, disagreements by rule pair with examples (ids and facts,
  never text), and who was right where feedback says.

Every record is selected by its own `time`: decisions made in the range, feedback given
in it. Feedback carries its decision's outcome and rules, so the counts by label and rule
need no join; the facts and segment come from the decision record, joined on
`decision_id`.

The modules, each importing only those before it: labels, errors, times, stats,
thresholds, histogram, accumulator (`Report`, the streaming pass), logfiles (`build`), and
the renderings text and html (html is not imported here: only where a page is drawn).
"""

from __future__ import annotations

from escalator.tools.report.accumulator import FORMAT, PARSER, Report
from escalator.tools.report.errors import CODES, ReportError
from escalator.tools.report.labels import DIMENSIONS, LABELS
from escalator.tools.report.logfiles import build, load_rules, open_log
from escalator.tools.report.text import text
from escalator.tools.report.times import iso, parse_time

__all__ = ["CODES", "DIMENSIONS", "FORMAT", "LABELS", "PARSER", "Report", "ReportError",
           "build", "iso", "load_rules", "open_log", "parse_time", "text"]
