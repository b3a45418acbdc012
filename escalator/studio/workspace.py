"""The rules a studio shows: the saved folder, the owner's unsaved edits, and their check.

The saved rule set is the folder as it is on disk (or, on the service, the active rule
set). Edits are whole rule files held in memory until the owner saves; each edit is
checked by the same code as `escalator rules check`, against the saved set for the version
warning. Saving writes only the edited rule files, only into the folder the studio was
given, each to a temporary file in that folder then renamed over the old one (the service's
reloader reads only `*.yaml`, so it never sees a half-written file), and is refused while
the check fails.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from escalator.studio import engine
from escalator.studio.engine import Check, Policy, PolicyHolder, Problem, RulesFolder

# Rule files the studio may write: directly in the folder, plain names (as inline rule sets).
FILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.yaml$")


class StudioError(ValueError):
    """Something the owner asked cannot be done; the message says why in plain words."""


@dataclass(frozen=True)
class Saved:
    """The saved rule set as read: the read itself and its policy (None if refused)."""

    folder: RulesFolder
    check: Check


class Workspace:
    """The saved rules and the draft of one studio, safe to use from request threads."""

    def __init__(self, path: Path, *, writable: bool,
                 active: PolicyHolder | None = None) -> None:
        self.path = path.resolve()
        self.writable = writable
        # On the service: the running rule set, which the studio only reads.
        self._active = active
        self._lock = threading.RLock()
        self._edits: dict[str, bytes | None] = {}
        self._saved: Saved | None = None
        self._own_saved: PolicyHolder | None = None
        self._draft: Check | None = None
        self._draft_holder: PolicyHolder | None = None
        self.refresh()

    # ------------------------------------------------------------------ reading
    def refresh(self) -> None:
        """Read the folder again if it changed on disk (a git pull, another editor)."""
        with self._lock:
            if self._active is not None:
                self._refresh_active()
                return
            folder = engine.read_folder(self.path)
            if self._saved is not None and self._saved.folder.digest == folder.digest:
                return
            lexicons = self._saved.check.policy if self._saved is not None else None
            check = engine.check_folder(folder, lexicons_from=lexicons)
            self._saved = Saved(folder, check)
            if self._active is None and check.policy is not None:
                if self._own_saved is None:
                    self._own_saved = PolicyHolder(check.policy)
                else:
                    self._own_saved.swap(check.policy)
            self._recheck()

    def _refresh_active(self) -> None:
        """On the service: the active rule set (its rules are only read, never compiled
        again here), and its folder's files to show."""
        assert self._active is not None
        policy = self._active.current
        if self._saved is not None and self._saved.check.policy is policy:
            return
        # Only the rule set's description is read from `policy` outside use(): a reload may
        # free its engine, never its rules.
        folder = engine.read_folder(policy.ruleset.source)
        self._saved = Saved(folder, Check([], list(policy.ruleset.warnings), policy))

    @property
    def saved(self) -> Saved:
        """The saved folder and its check."""
        assert self._saved is not None
        return self._saved

    @contextmanager
    def saved_policy(self) -> Iterator[Policy | None]:
        """The saved (on the service: the active) policy, kept alive while in use."""
        holder = self._active or self._own_saved
        if holder is None:
            yield None
            return
        with holder.use() as policy:
            yield policy

    @contextmanager
    def draft_policy(self) -> Iterator[Policy | None]:
        """The edited policy when there are edits and they pass the check, else None."""
        with self._lock:
            holder = self._draft_holder if self._edits else None
        if holder is None:
            yield None
            return
        with holder.use() as policy:
            yield policy

    @property
    def draft_folder(self) -> RulesFolder | None:
        """The folder as the edits would leave it, when there are edits and they pass the
        check, else None."""
        with self._lock:
            if not self._edits or self._draft is None or not self._draft.ok:
                return None
            return engine.merged_folder(self.path, self.saved.folder, self._edits)

    @property
    def draft(self) -> Check:
        """The check of the rules as edited (the saved check when nothing is edited)."""
        with self._lock:
            return self._draft or self.saved.check

    @property
    def edited(self) -> list[str]:
        """Rule files changed, added or removed since the last save."""
        with self._lock:
            return sorted(self._edits)

    def rule_files(self) -> list[str]:
        """The rule files of the draft, by name."""
        with self._lock:
            names = set(self.saved.folder.rule_files())
            for name, data in self._edits.items():
                (names.discard if data is None else names.add)(name)
            return sorted(names)

    def text(self, name: str) -> str:
        """A rule file as edited (or saved)."""
        with self._lock:
            self._known(name)
            data = self._edits.get(name, self.saved.folder.files.get(name))
            if data is None:
                raise StudioError(f"there is no rule file {name}")
            return data.decode("utf-8", errors="replace")

    def saved_text(self, name: str) -> str | None:
        """A rule file as saved (None when it is new)."""
        data = self.saved.folder.files.get(name)
        return None if data is None else data.decode("utf-8", errors="replace")

    def file_of(self, rule_id: str) -> str:
        """The rule file that holds a rule of the draft (or of the saved set)."""
        for check in (self.draft, self.saved.check):
            if check.policy is not None:
                for rule in check.policy.ruleset.rules:
                    if rule.id == rule_id:
                        return rule.file
        raise StudioError(f"there is no rule '{rule_id}'")

    def _known(self, name: str) -> None:
        if not FILE_NAME.fullmatch(name):
            raise StudioError(f"'{name}' is not a rule file name: NAME.yaml, with letters, "
                              "digits, - and _")

    # ------------------------------------------------------------------ checking
    def try_text(self, name: str, text: str) -> Check:
        """The check of the draft with one file's text replaced (nothing is kept)."""
        self._known(name)
        with self._lock:
            edits = {**self._edits, name: text.encode("utf-8")}
            check = self._check(edits)
        if check.policy is not None:
            check.policy.close()
        return check

    def _check(self, edits: dict[str, bytes | None]) -> Check:
        folder = engine.merged_folder(self.path, self.saved.folder, edits)
        before = engine.folder_identity(self.path) if self.saved.folder.files else None
        with self.saved_policy() as lexicons:
            return engine.check_folder(folder, before, lexicons_from=lexicons)

    def _recheck(self) -> None:
        """Check the draft again (after an edit or a change of the saved set)."""
        if not self._edits:
            self._draft = None
            return
        check = self._check(self._edits)
        self._draft = check
        if check.policy is not None:
            if self._draft_holder is None:
                self._draft_holder = PolicyHolder(check.policy)
            else:
                self._draft_holder.swap(check.policy)
            # The holder owns the compiled policy from here on.

    # ------------------------------------------------------------------ editing
    def _writable(self) -> None:
        if not self.writable:
            raise StudioError("This studio only shows the rules: it runs on the service, "
                              "which never changes its own rule files. Change them with "
                              "`escalator studio` on a copy of the folder.")

    def set_text(self, name: str, text: str) -> Check:
        """Replace a rule file of the draft (a new name adds one); its check."""
        self._writable()
        self._known(name)
        with self._lock:
            data = text.encode("utf-8")
            if self.saved.folder.files.get(name) == data:
                self._edits.pop(name, None)
            else:
                self._edits[name] = data
            self._recheck()
            return self.draft

    def remove(self, name: str) -> Check:
        """Remove a rule file from the draft."""
        self._writable()
        self._known(name)
        with self._lock:
            if name in self.saved.folder.files:
                self._edits[name] = None
            else:
                self._edits.pop(name, None)
            self._recheck()
            return self.draft

    def discard(self) -> None:
        """Forget every unsaved edit."""
        with self._lock:
            self._edits.clear()
            self._recheck()

    def save(self, version: str | None = None) -> list[str]:
        """Write the edited files into the folder (with `version` set first, if given);
        refused while the check fails. The names written."""
        self._writable()
        with self._lock:
            if version:
                self._set_version(version)
            if not self._edits:
                raise StudioError("There is nothing to save: no rule was changed.")
            if not self.draft.ok:
                raise StudioError(f"Not saved: the rules have {len(self.draft.problems)} "
                                  "problem(s). Fix them first; the rule files were not "
                                  "touched.")
            written = []
            for name, data in sorted(self._edits.items()):
                target = self.path / name
                if data is None:
                    target.unlink(missing_ok=True)
                else:
                    _write_atomically(self.path, name, data)
                written.append(name)
            self._edits.clear()
            self.refresh()
            self._recheck()
            return written

    def _set_version(self, version: str) -> None:
        from escalator.studio.ruleyaml import set_version

        for name in self.rule_files():
            changed = set_version(self.text(name), version)
            if changed is not None:
                if changed != self.text(name):
                    self.set_text(name, changed)
                return
        raise StudioError("No rule file declares a version.")

    def close(self) -> None:
        """Free the compiled rule sets the studio made (not the service's)."""
        with self._lock:
            if self._draft_holder is not None:
                self._draft_holder.close()
            if self._own_saved is not None:
                self._own_saved.close()


def _write_atomically(folder: Path, name: str, data: bytes) -> None:
    """Write a file as a whole or not at all: a temporary file beside it, flushed, then
    renamed over it (the temporary name does not end in .yaml, so no reader takes it for
    a rule file)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".studio-tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        existing = folder / name
        if existing.exists():
            os.chmod(temporary, existing.stat().st_mode & 0o777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, existing)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def problems_of(check: Check, name: str | None = None) -> list[Problem]:
    """The check's problems, those of one file only when `name` is given."""
    return [p for p in check.problems if name is None or p.file == name]
