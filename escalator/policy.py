"""A policy: one rule set compiled into the engine, with the vocabularies its scorers use."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from escalator.errors import PolicyError, Problem
from escalator.ruleset.compiler import CompiledRuleSet
from escalator.ruleset.folder import LEXICON_FOLDER, RulesFolder, read_folder
from escalator.ruleset.loader import load_ruleset
from escalator.ruleset.model import RuleSet
from escalator.ruleset.vocabulary import Vocabulary
from escalator.scoring import Lexicons, load_lexicons
from escalator.scoring.lexicons import MEASURED_CUES


@dataclass(frozen=True)
class Policy:
    """Everything a decision needs that comes from the rules folder."""

    ruleset: RuleSet
    engine: CompiledRuleSet
    lexicons: Lexicons

    def close(self) -> None:
        """Free the engine's handle once no decision uses this policy any more."""
        self.engine.close()


def vocabulary_of(lexicons: Lexicons) -> Vocabulary:
    """The labels these lexicons let the scorers produce (topics, cues, languages)."""
    return Vocabulary(
        topics=frozenset(lexicons.params.topic_weights),
        cues=frozenset(lexicons.params.cue_weights) | MEASURED_CUES,
        languages=frozenset(lexicons.languages),
    )


def load_policy(source: Path | RulesFolder, lexicons: Lexicons | None = None) -> Policy:
    """Load, check and compile a rules folder (or one read of it, so that what is compiled
    is exactly what was read); PolicyError lists every problem found.

    `lexicons`, when given, are used instead of the folder's own (already loaded and
    checked ones: parsing them is most of a load's time)."""
    folder = source if isinstance(source, RulesFolder) else read_folder(source)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    ruleset: RuleSet | None = None
    if not folder.path.is_dir():
        raise PolicyError([Problem(str(folder.path), None, "the rules folder does not exist",
                                   code="file_unreadable")])
    if lexicons is None:
        try:
            lexicons = load_lexicons(folder.sub(LEXICON_FOLDER))
        except PolicyError as exc:
            problems.extend(exc.problems)
    try:
        ruleset = load_ruleset(folder, vocabulary_of(lexicons) if lexicons else None)
    except PolicyError as exc:
        problems.extend(exc.problems)
        warnings.extend(exc.warnings)
    if problems or lexicons is None or ruleset is None:
        raise PolicyError(problems, warnings)
    return Policy(ruleset=ruleset, engine=CompiledRuleSet(ruleset), lexicons=lexicons)


@dataclass(frozen=True)
class Check:
    """What checking a rules folder found: its errors (refused when any; by file and line,
    those of a whole file or rule set after the located ones) and warnings, and the
    compiled policy when it loads (the caller closes it)."""

    problems: list[Problem]
    warnings: list[Problem]
    policy: Policy | None

    @property
    def ok(self) -> bool:
        """Whether the rule set would be accepted."""
        return self.policy is not None

    def found(self) -> list[Problem]:
        """Errors and then warnings, as `escalator rules check` shows them."""
        return [*self.problems, *self.warnings]


def check_policy(source: Path | RulesFolder, lexicons: Lexicons | None = None) -> Check:
    """Load, check and compile a rules folder (or a read of one) as the service would,
    keeping what was found rather than raising; `lexicons` as for load_policy."""
    try:
        policy = load_policy(source, lexicons)
    except PolicyError as exc:
        errors = sorted(exc.problems, key=lambda p: (p.file, p.line is None, p.line or 0))
        return Check(errors, list(exc.warnings), None)
    return Check([], list(policy.ruleset.warnings), policy)


INLINE_FILE = re.compile(r"^(lexicons/)?[A-Za-z0-9_-]{1,64}\.yaml$")
MAX_INLINE_FILES = 32
# The file a problem of a rule set sent inline as a whole is named by.
INLINE_RULESET = "ruleset"


def check_inline_files(files: Mapping[str, str]) -> None:
    """PolicyError unless the names and count of files sent inline are acceptable."""
    problems = [Problem(name, None, "file names are NAME.yaml or lexicons/NAME.yaml",
                        code="file_name")
                for name in files if not INLINE_FILE.fullmatch(name)]
    problems += [Problem(name, None, "the file is not valid UTF-8 text", code="file_unreadable")
                 for name, text in files.items() if not _encodable(text)]
    if len(files) > MAX_INLINE_FILES:
        problems.append(Problem(INLINE_RULESET, None, f"at most {MAX_INLINE_FILES} files",
                                code="budget", limit="files"))
    if problems:
        raise PolicyError(problems)


def load_inline_policy(files: Mapping[str, str], where: Path, lexicons_from: Path,
                       lexicons: Lexicons) -> Policy:
    """A policy from files sent in a request ({"name.yaml": text}), read in memory as if
    they were a folder at `where` (an existing folder; nothing is written). Without
    lexicons in the request, `lexicons` (the active ones) are used, and the lexicon files
    of the folder `lexicons_from` (the active rule set's) go into the digest."""
    check_inline_files(files)
    data = {name: text.encode("utf-8") for name, text in files.items()}
    sends_lexicons = any(name.startswith(f"{LEXICON_FOLDER}/") for name in files)
    if not sends_lexicons:
        active = read_folder(lexicons_from).sub(LEXICON_FOLDER)
        data.update({f"{LEXICON_FOLDER}/{name}": content
                     for name, content in active.files.items()})
    try:
        return load_policy(RulesFolder(where, data), None if sends_lexicons else lexicons)
    except PolicyError as exc:
        # Name files as the caller sent them, not by the folder they were read "from".
        raise PolicyError(named_inside(exc.problems, where)) from None


def named_inside(problems: Iterable[Problem], folder: Path) -> list[Problem]:
    """The problems with each file named by its path inside `folder` ("." for the folder
    itself): rule files are named so already, lexicons by the folder's path and theirs."""
    inside = f"{folder}/"
    return [replace(p, file="." if p.file == str(folder) else p.file.removeprefix(inside))
            for p in problems]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON can carry them, files cannot
        return False
    return True


class PolicyHolder:
    """The active policy, swapped atomically; a replaced policy is freed once unused.

    Decisions take the policy with `use()`, so a reload never frees an engine that a
    decision in flight is still evaluating with (durable-rules handles must be freed
    explicitly, and freeing one in use would crash the process).
    """

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._lock = threading.Lock()
        self._users: dict[int, int] = {id(policy): 0}
        self._retired: dict[int, Policy] = {}

    @property
    def current(self) -> Policy:
        """The policy new decisions use (for reading its rule set; decide with use())."""
        return self._policy

    @contextmanager
    def use(self) -> Iterator[Policy]:
        """The active policy, kept alive until the block ends."""
        with self._lock:
            policy = self._policy
            self._users[id(policy)] = self._users.get(id(policy), 0) + 1
        try:
            yield policy
        finally:
            with self._lock:
                self._users[id(policy)] -= 1
                done = self._users[id(policy)] == 0 and id(policy) in self._retired
                if done:
                    del self._retired[id(policy)], self._users[id(policy)]
            if done:
                policy.close()

    def swap(self, policy: Policy) -> None:
        """Make `policy` active; the previous one is freed as soon as nothing uses it."""
        with self._lock:
            previous, self._policy = self._policy, policy
            self._users.setdefault(id(policy), 0)
            idle = self._users.get(id(previous), 0) == 0
            if idle:
                self._users.pop(id(previous), None)
            else:
                self._retired[id(previous)] = previous
        if idle:
            previous.close()

    def close(self) -> None:
        """Free the active policy (at shutdown)."""
        self._policy.close()
