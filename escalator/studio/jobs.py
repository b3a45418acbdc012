"""Replays of a corpus through the saved and the edited rules, in the background.

Each conversation is decided by the service's own pipeline with both rule sets, and the
headline numbers are counted by the same summary as `escalator replay`
(escalator.tools.replay's RulesetSummary), so the studio shows the numbers the command
prints. On top of them: rates by channel, language and tier, when escalations happen (turn
of the first handoff), the audit of every turn's decision, and the turns of each
conversation whose decisions changed.

A replay runs in a thread, reports how far it got, and stops at the next conversation when
cancelled. Corpus text stays in this process's memory, for the owner's eyes only.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escalator.studio import engine
from escalator.studio.engine import (
    ROUTE,
    AuditResult,
    Change,
    Decision,
    Policy,
    RulesetSummary,
    Transcript,
)

SEGMENTS = ("channel", "language", "tier")
# Conversations whose turns are kept to open (the first ones that changed).
MAX_KEPT = 2000
NOT_SENT = "(not sent)"


class Cancelled(Exception):
    """The owner stopped the replay."""


@dataclass
class Side:
    """What one rule set did to the corpus: replay's summary, rates by segment, audit."""

    summary: RulesetSummary
    by_segment: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    first_turns: Counter[int] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)
    audit: AuditResult | None = None

    def add(self, transcript: Transcript, decisions: list[Decision]) -> None:
        self.summary.add(decisions)
        first = next((d for d in decisions if d.decision == ROUTE), None)
        if first is not None:
            self.first_turns[first.turn_index] += 1
        segment = segment_of(transcript, decisions)
        for dimension in SEGMENTS:
            counts = self.by_segment[dimension][segment[dimension]]
            counts[0] += 1
            counts[1] += first is not None
        for turn, decision in zip(transcript.turns, decisions, strict=True):
            record = engine.log_record(decision, turn, 0.0)
            # What the audit reads, no more (a corpus can be long).
            self.records.append({"decision": record["decision"], "segment": record["segment"],
                                 "facts": {k: record["facts"].get(k) for k in
                                           ("conversation.escalated", "frustration.score")}})

    def rates(self, dimension: str) -> dict[str, tuple[int, int]]:
        """Per segment: (conversations, routed to a person)."""
        return {name: (c[0], c[1]) for name, c in sorted(self.by_segment[dimension].items())}


def segment_of(transcript: Transcript, decisions: list[Decision]) -> dict[str, str]:
    """A conversation's channel, tier and language: those of its first turn."""
    turn, facts = transcript.turns[0], decisions[0].facts
    language = facts.get("message.language")
    return {"channel": turn.channel or NOT_SENT, "tier": turn.tier or NOT_SENT,
            "language": str(language) if language else NOT_SENT}


@dataclass
class Changed:
    """A conversation decided differently: replay's Change, and its turns to show."""

    change: Change
    transcript: Transcript
    saved: list[Decision]
    edited: list[Decision]


@dataclass
class Replay:
    """One replay job and, once done, its result."""

    id: str
    corpus: Path
    status: str = "waiting"  # running, done, cancelled, failed
    done: int = 0
    total: int = 0
    error: str = ""
    seconds: float = 0.0
    saved: Side | None = None
    edited: Side | None = None
    # Every change, as `escalator replay --against` lists them; the first MAX_KEPT with
    # their turns and both decisions.
    changes: list[Change] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled", "failed")

    @property
    def compared(self) -> bool:
        """Whether an edited rule set was replayed beside the saved one."""
        return self.edited is not None

    def cancel(self) -> None:
        """Stop at the next conversation."""
        self._cancel.set()

    def progress(self) -> dict[str, Any]:
        """How far the replay is, for the page that waits for it."""
        return {"status": self.status, "done": self.done, "total": self.total,
                "error": self.error}

    def conversation(self, conversation_id: str) -> Changed | None:
        """A changed conversation, by id."""
        return next((c for c in self.changed if c.change.conversation_id == conversation_id),
                    None)


PolicyContext = Callable[[], AbstractContextManager[Policy | None]]


def _transcripts(path: Path) -> Iterator[Transcript]:
    with path.open(encoding="utf-8") as stream:
        yield from engine.read_corpus(stream, path.name)


def run(job: Replay, saved: PolicyContext, edited: PolicyContext | None) -> None:
    """Replay the corpus (in the calling thread); the job records progress and result."""
    started = time.perf_counter()
    job.status = "running"
    try:
        job.total = engine.count_lines(job.corpus)
        with saved() as before, (edited() if edited else nullcontext(None)) as after:
            if before is None:
                raise engine.CorpusError("the saved rules do not load, so there is "
                                         "nothing to replay them with")
            job.saved = Side(_summary(before))
            job.edited = Side(_summary(after)) if after is not None else None
            for transcript in _transcripts(job.corpus):
                if job._cancel.is_set():
                    raise Cancelled
                old = engine.decide_transcript(before, transcript)
                job.saved.add(transcript, old)
                if after is not None and job.edited is not None:
                    new = engine.decide_transcript(after, transcript)
                    job.edited.add(transcript, new)
                    change = engine.first_change(transcript.conversation_id, old, new)
                    if change is not None:
                        job.changes.append(change)
                        if len(job.changed) < MAX_KEPT:
                            job.changed.append(Changed(change, transcript, old, new))
                job.done += 1
        for side in (job.saved, job.edited):
            if side is not None:
                side.audit = engine.audit(side.records)
        job.status = "done"
    except Cancelled:
        job.status = "cancelled"
    except (engine.CorpusError, OSError, UnicodeDecodeError) as exc:
        job.status, job.error = "failed", str(exc)
    finally:
        job.seconds = time.perf_counter() - started


def _summary(policy: Policy) -> RulesetSummary:
    ref = policy.ruleset.ref()
    return RulesetSummary(ref.name, ref.version, ref.digest)


class Jobs:
    """The replays of one studio: started in threads, kept until the studio stops."""

    def __init__(self, keep: int = 10) -> None:
        self._jobs: dict[str, Replay] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, corpus: Path, saved: PolicyContext, edited: PolicyContext | None
              ) -> Replay:
        """A new replay, running."""
        job = Replay(uuid.uuid4().hex[:12], corpus)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                oldest = next(iter(self._jobs))
                self._jobs.pop(oldest).cancel()
        thread = threading.Thread(target=run, args=(job, saved, edited),
                                  name=f"replay-{job.id}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def get(self, job_id: str) -> Replay | None:
        """A replay by id."""
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self, finished: bool = True) -> Replay | None:
        """The most recent replay (finished ones only, by default)."""
        with self._lock:
            for job in reversed(self._jobs.values()):
                if job.status == "done" or not finished:
                    return job
        return None

    def close(self, seconds: float = 10.0) -> None:
        """Cancel every replay and wait (up to `seconds` in all) for their threads to stop,
        so none is still deciding with a rule set the studio is about to free."""
        with self._lock:
            jobs, threads = list(self._jobs.values()), list(self._threads)
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + seconds
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
