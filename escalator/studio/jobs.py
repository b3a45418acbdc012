"""Replays of a corpus through the saved and the edited rules, in a child process.

Each conversation is decided by the service's own pipeline with both rule sets, and the
headline numbers are counted by the same summary as `escalator replay`
(escalator.tools.replay's RulesetSummary), so the studio shows the numbers the command
prints. On top of them: rates by channel, language and tier, when escalations happen (turn
of the first handoff), the audit of every turn's decision, and the turns of each
conversation whose decisions changed.

A replay runs in its own process, which loads both rule sets from the folders as the
studio read them, reports how far it got and sends its result back: deciding is CPU work
that holds Python's lock, and in a thread of the studio's process it made every page wait
for it (the home page took 195 ms instead of 50, up to 781 ms, while 5,250 conversations
were replayed: docs/performance/README.md). The processes are forked
from a fork server that imported escalator once (so one starts in milliseconds, and the
studio's threads and compiled rules are not copied into it); cancelling a replay ends its
process. Corpus text stays in the studio's processes, for the owner's eyes only.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from escalator.studio import engine
from escalator.studio.engine import (
    ROUTE,
    Change,
    Decision,
    Policy,
    RulesetSummary,
    RulesFolder,
    Transcript,
)

SEGMENTS = ("channel", "language", "tier")
# Conversations whose turns are kept to open (the first ones that changed).
MAX_KEPT = 2000
NOT_SENT = "(not sent)"


@dataclass
class Side:
    """What one rule set did to the corpus: replay's summary, rates by segment, and what
    the audit reads of every turn's decision."""

    summary: RulesetSummary
    # dimension -> segment -> [conversations, routed to a person]
    by_segment: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: {dimension: {} for dimension in SEGMENTS})
    first_turns: Counter[int] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, transcript: Transcript, decisions: list[Decision]) -> None:
        self.summary.add(decisions)
        first = next((d for d in decisions if d.decision == ROUTE), None)
        if first is not None:
            self.first_turns[first.turn_index] += 1
        segment = segment_of(transcript, decisions)
        for dimension in SEGMENTS:
            counts = self.by_segment[dimension].setdefault(segment[dimension], [0, 0])
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
class Result:
    """What a replay found, as its process sends it back."""

    saved: Side
    edited: Side | None
    # Every change, as `escalator replay --against` lists them; the first MAX_KEPT with
    # their turns and both decisions.
    changes: list[Change] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)


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
    result: Result | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _process: BaseProcess | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled", "failed")

    @property
    def saved(self) -> Side | None:
        """What the saved rules did (once done)."""
        return self.result.saved if self.result else None

    @property
    def edited(self) -> Side | None:
        """What the edited rules did, when they were replayed beside the saved ones."""
        return self.result.edited if self.result else None

    @property
    def changes(self) -> list[Change]:
        return self.result.changes if self.result else []

    @property
    def changed(self) -> list[Changed]:
        return self.result.changed if self.result else []

    @property
    def pid(self) -> int | None:
        """The id of the replay's process."""
        return self._process.pid if self._process is not None else None

    @property
    def compared(self) -> bool:
        """Whether an edited rule set was replayed beside the saved one."""
        return self.edited is not None

    def cancel(self) -> None:
        """Stop the replay now: its process is ended."""
        self._cancel.set()
        process = self._process
        if process is not None and process.is_alive():
            process.kill()

    def progress(self) -> dict[str, Any]:
        """How far the replay is, for the page that waits for it."""
        return {"status": self.status, "done": self.done, "total": self.total,
                "error": self.error}

    def conversation(self, conversation_id: str) -> Changed | None:
        """A changed conversation, by id."""
        return next((c for c in self.changed if c.change.conversation_id == conversation_id),
                    None)


# ------------------------------------------------------------------ in the child process

# How often the child reports how far it got.
PROGRESS_SECONDS = 0.1


def _transcripts(path: Path) -> Iterator[Transcript]:
    with path.open(encoding="utf-8") as stream:
        yield from engine.read_corpus(stream, path.name)


def _load(folder: RulesFolder, what: str) -> Policy:
    policy = engine.check_folder(folder).policy
    if policy is None:
        raise engine.CorpusError(f"the {what} rules do not load, so there is nothing to "
                                 "replay them with")
    return policy


def replay(corpus: Path, saved: RulesFolder, edited: RulesFolder | None,
           progress: Callable[[int, int], None]) -> Result:
    """Replay the corpus with the saved rules and, if given, the edited ones; `progress`
    is told (conversations done, conversations in all) as it goes."""
    total = engine.count_lines(corpus)
    before = _load(saved, "saved")
    after: Policy | None = None
    try:
        after = _load(edited, "edited") if edited is not None else None
        result = Result(Side(_summary(before)), Side(_summary(after)) if after else None)
        done, reported = 0, time.monotonic()
        progress(done, total)
        for transcript in _transcripts(corpus):
            old = engine.decide_transcript(before, transcript)
            result.saved.add(transcript, old)
            if after is not None and result.edited is not None:
                new = engine.decide_transcript(after, transcript)
                result.edited.add(transcript, new)
                change = engine.first_change(transcript.conversation_id, old, new)
                if change is not None:
                    result.changes.append(change)
                    if len(result.changed) < MAX_KEPT:
                        result.changed.append(Changed(change, transcript, old, new))
            done += 1
            if time.monotonic() - reported >= PROGRESS_SECONDS:
                progress(done, total)
                reported = time.monotonic()
        progress(done, total)
        return result
    finally:
        before.close()
        if after is not None:
            after.close()


def _child(conn: Connection) -> None:
    """A replay process: wait for one replay, run it, send progress and the result."""
    # Ctrl-C in the studio's terminal reaches the whole process group: the studio ends
    # its replays itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        corpus, saved, edited = conn.recv()
    except EOFError:
        return  # cancelled before it was handed its replay
    try:
        result = replay(corpus, saved, edited,
                        lambda done, total: conn.send(("progress", done, total)))
    except (engine.CorpusError, OSError, UnicodeDecodeError) as exc:
        conn.send(("failed", str(exc)))
    except Exception as exc:  # shown to the owner, the trace to the terminal
        traceback.print_exc()
        conn.send(("failed", f"the replay failed unexpectedly ({type(exc).__name__}: {exc})"))
    else:
        conn.send(("done", result))
    finally:
        conn.close()


def _summary(policy: Policy) -> RulesetSummary:
    ref = policy.ruleset.ref()
    return RulesetSummary(ref.name, ref.version, ref.digest)


# ------------------------------------------------------------------ in the studio

@dataclass
class _Process:
    """A replay's process, and the studio's end of its pipe."""

    process: BaseProcess
    conn: Connection

    @classmethod
    def start(cls) -> _Process:
        context = multiprocessing.get_context("forkserver")
        # Taken by the fork server when it starts (the first replay of this process).
        context.set_forkserver_preload([__name__])
        ours, theirs = context.Pipe()
        process = context.Process(target=_child, args=(theirs,), name="escalator-replay",
                                  daemon=True)
        process.start()
        theirs.close()
        return cls(process, ours)

    def end(self) -> None:
        """End the process (if it still runs) and close the pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


def _follow(job: Replay, child: _Process, saved: RulesFolder,
            edited: RulesFolder | None) -> None:
    """Hand the replay to its process and follow it to the end (in a studio thread)."""
    started = time.perf_counter()
    job.status = "running"
    status, error, result = "failed", "the replay failed unexpectedly", None
    try:
        if job._cancel.is_set():
            raise EOFError
        child.conn.send((job.corpus, saved, edited))
        while True:
            message = child.conn.recv()
            if message[0] == "progress":
                job.done, job.total = message[1], message[2]
            elif message[0] == "done":
                status, error, result = "done", "", message[1]
                break
            else:
                error = message[1]
                break
    except (EOFError, OSError):
        # The process is gone: ended by a cancel, or by something else (the kernel's
        # out-of-memory killer).
        if job._cancel.is_set():
            status, error = "cancelled", ""
        else:
            child.end()
            error = ("the replay's process ended unexpectedly (exit code "
                     f"{child.process.exitcode})")
    finally:
        # Finished only once its process is gone.
        child.end()
        job.seconds = time.perf_counter() - started
        job.result, job.error, job.status = result, error, status


class Jobs:
    """The replays of one studio, each in a process of its own, kept until it stops."""

    def __init__(self, keep: int = 10) -> None:
        self._jobs: dict[str, Replay] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, corpus: Path, saved: RulesFolder, edited: RulesFolder | None) -> Replay:
        """A new replay of `corpus` with the saved rules and, if given, the edited ones."""
        job = Replay(uuid.uuid4().hex[:12], corpus)
        # Outside the lock: the first start also starts the fork server (about a second).
        child = _Process.start()
        job._process = child.process
        with self._lock:
            if self._closed:
                child.end()
                raise RuntimeError("the studio is closed")
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                oldest = next(iter(self._jobs))
                self._jobs.pop(oldest).cancel()
            thread = threading.Thread(target=_follow, args=(job, child, saved, edited),
                                      name=f"replay-{job.id}", daemon=True)
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
        """End every replay's process and wait (up to `seconds` in all) for them."""
        with self._lock:
            self._closed = True
            jobs, threads = list(self._jobs.values()), list(self._threads)
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + seconds
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
