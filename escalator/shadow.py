"""Shadow rule sets: a candidate rules folder decides every live turn beside the active
rules, on the same facts, and decides nothing.

ESCALATOR_SHADOW_RULES_DIR names the folder. It is loaded, checked and hot-reloaded like
the live one (escalator.reloader: a complete folder, checked completely, or refused with
its problems while the previous shadow stays), by its own reloader and into its own
holder, so nothing about it can touch the live rules; a folder refused at start leaves the
service running without a shadow until a good one appears.

The shadow sees the facts the live turn was decided on (the live lexicons scored the
message: a shadow folder's own lexicons are checked but not used for scoring; replaying
transcripts is how to try lexicon changes). A turn of a conversation already with a person
stays with the person in the shadow too (the sticky handoff is the state's, not the
rules'). What the shadow decided goes into the decision's record, is counted, and is
shown to a caller who asks for it; the answer is otherwise the live decision, unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escalator import metrics
from escalator.errors import PolicyError
from escalator.feedback import STICKY_RULE
from escalator.model import ROUTE, Decision, DecisionName, RulesetRef
from escalator.policy import Policy, PolicyHolder, load_policy
from escalator.reloader import RuleReloader
from escalator.ruleset.model import RuleSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """What the shadow rule set decided on a live turn's facts."""

    ruleset: RulesetRef
    decision: DecisionName
    rules: tuple[str, ...]
    agrees: bool

    def to_dict(self) -> dict[str, Any]:
        """The `shadow` block of the decision record and of the answer to a caller who asks."""
        return {"ruleset": {"name": self.ruleset.name, "version": self.ruleset.version,
                            "digest": self.ruleset.digest},
                "decision": self.decision, "rules": list(self.rules), "agrees": self.agrees}


class ShadowHolder:
    """The shadow policy (None until one loads), swapped atomically; a replaced one is
    freed once no turn evaluates with it (the live PolicyHolder does the freeing)."""

    def __init__(self, policy: Policy | None) -> None:
        self._lock = threading.Lock()
        self._holder = PolicyHolder(policy) if policy is not None else None

    @property
    def current(self) -> Policy | None:
        """The shadow policy new turns are judged with (None: no shadow yet)."""
        holder = self._holder
        return None if holder is None else holder.current

    @contextmanager
    def use(self) -> Iterator[Policy | None]:
        """The shadow policy, kept alive until the block ends."""
        holder = self._holder
        if holder is None:
            yield None
            return
        with holder.use() as policy:
            yield policy

    def swap(self, policy: Policy) -> None:
        """Make `policy` the shadow; the previous one is freed as soon as nothing uses it."""
        with self._lock:
            if self._holder is None:
                self._holder = PolicyHolder(policy)
                return
        self._holder.swap(policy)

    def close(self) -> None:
        """Free the shadow policy (at shutdown)."""
        if self._holder is not None:
            self._holder.close()


_published: tuple[str, str, str] | None = None


def _publish(ruleset: RuleSet) -> None:
    """Publish which shadow rule set runs: its series is 1, a replaced one drops to 0."""
    global _published
    now = (ruleset.name, ruleset.version, ruleset.digest)
    if _published is not None and _published != now:
        metrics.SHADOW_RULESET_INFO.labels(*_published).set(0)
    metrics.SHADOW_RULESET_INFO.labels(*now).set(1)
    _published = now


class Shadow:
    """A shadow rule set and its reloader: judges live decisions, decides nothing."""

    def __init__(self, directory: Path, interval_seconds: float = 0.0,
                 settle_seconds: float = 2.0) -> None:
        self.directory = directory
        try:
            policy: Policy | None = load_policy(directory)
        except PolicyError as exc:
            metrics.SHADOW_RELOADS.labels("failed").inc()
            log.error("shadow rules at %s refused; running without a shadow until the folder "
                      "is fixed:\n%s", directory, exc)
            policy = None
        if policy is not None:
            _publish(policy.ruleset)
        self.holder = ShadowHolder(policy)
        self.reloader = RuleReloader(self.holder, directory, interval_seconds, settle_seconds,
                                     what="shadow rules", publish=_publish,
                                     reloads=metrics.SHADOW_RELOADS)

    def judged(self, decision: Decision) -> Decision:
        """The decision with the shadow's verdict on its facts (unchanged if no shadow
        rule set is loaded); disagreements are counted."""
        with self.holder.use() as policy:
            if policy is None:
                return decision
            evaluation = policy.engine.evaluate(decision.facts)
            ruleset = policy.ruleset.ref()
        rules = tuple(rule.id for rule in evaluation.matches)
        decided: DecisionName = evaluation.decision
        if decision.facts.get("conversation.escalated") is True:
            decided, rules = ROUTE, (STICKY_RULE, *rules)
        agrees = decided == decision.decision
        metrics.SHADOW_DECISIONS.labels("true" if agrees else "false").inc()
        if not agrees:
            active = decision.reasons[0].rule if decision.reasons else "none"
            metrics.SHADOW_DISAGREEMENTS.labels(active, rules[0] if rules else "none").inc()
        return decision.judged(Verdict(ruleset, decided, rules, agrees))

    def publish_worker(self) -> None:
        """In a freshly forked worker: publish the shadow's metrics set before the fork."""
        global _published
        _published = None  # a fork's metrics file starts empty
        for result in ("success", "failed"):
            metrics.SHADOW_RELOADS.labels(result).inc(0)
        current = self.holder.current
        if current is not None:
            _publish(current.ruleset)

    def start(self) -> None:
        """Start the shadow's reload thread (in each worker, after the fork)."""
        self.reloader.start()

    def close(self) -> None:
        """Stop reloading and free the shadow policy."""
        self.reloader.stop()
        self.holder.close()
