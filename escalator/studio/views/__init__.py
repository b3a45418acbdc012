"""The studio's pages: read the policy, change it, try it, replay it, audit it, save it.

Server-rendered (Flask and Jinja); the little JavaScript there is (the YAML editor, checks
as you type, replay progress) only makes pages quicker: every action also works as a
plain form post.

One blueprint (base.py: with what every page shares, and the login), its pages by group:
policy.py (the rules page, the YAML editor, saving), rules.py (the rule form and the rule
actions), playground.py (trying a conversation, the rule tests), replays.py (replays
and the fairness audit) and report.py (the report on a decision log). Importing this
package registers them all.
"""

from __future__ import annotations

from escalator.studio.views import playground, policy, replays, report, rules
from escalator.studio.views.base import EXTENSION, Studio, bp
from escalator.studio.views.replays import start_replay

__all__ = ["EXTENSION", "Studio", "bp", "playground", "policy", "replays", "report", "rules",
           "start_replay"]
