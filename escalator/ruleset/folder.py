"""One read of a rules folder: its rule files and lexicons, as bytes, read safely.

Everything the service takes from a rules folder is read here, once per load: the rule
files (`*.yaml` at the top) and the lexicons (`lexicons/*.yaml`). The loaders parse these
bytes and the digest is taken over them, so what is checked, compiled and named by the
digest is exactly what was read, even if the folder changes meanwhile.

Limits first:
- only regular files are read. A FIFO, device, socket or folder named `*.yaml` is
  refused: opening a FIFO waits for a writer, reading a device may never end. Files are
  checked with lstat before they are opened, opened non-blocking and checked again.
- links are followed only while they stay inside the folder (a Kubernetes ConfigMap mount
  links every file through `..data`); a link leading out of it is refused.
- at most MAX_FILE_BYTES per file and MAX_FILES and MAX_TOTAL_BYTES in all; folders of
  more than MAX_ENTRIES names are not listed further.
- a folder holding a `..data` link is read the way Kubernetes writes it: from the folder
  `..data` points to, which the kubelet fills completely before it swaps the link. Such a
  read is of one complete generation (`atomic`). The top-level links are not read: right
  after a swap they may still name files of the previous generation.
Reads race with writers: a file that vanishes or is replaced while it is read makes the
whole folder be read again (a few times), and then refused, never read in part.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from escalator.errors import Problem
from escalator.model import computed_once

MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024
MAX_FILES = 128
MAX_ENTRIES = 1000  # names of any kind listed in one folder (a rules folder has a dozen)
LEXICON_FOLDER = "lexicons"
CONFIGMAP_LINK = "..data"
# A folder that keeps changing under the reader is read this many times before it is refused.
READ_ATTEMPTS = 5
FOLDER = ""  # the key of a problem with the folder as a whole in RulesFolder.refused

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


@dataclass(frozen=True)
class Refusal:
    """Why a file (or the folder) was not read: a problem code, and the words for it."""

    code: str
    why: str
    # The limit it went over, when the code is "budget".
    limit: str | None = None

    def problem(self, file: str) -> Problem:
        """This refusal as a problem of `file`."""
        return Problem(file, None, self.why, code=self.code, limit=self.limit)


# What two reads of a folder share when they read the same content (RulesFolder.key).
FolderKey = tuple[str, tuple[tuple[str, Refusal], ...]]


@dataclass(frozen=True)
class RulesFolder:
    """The files of a rules folder as read at one moment, and what was refused in it.

    `files` and `refused` are keyed by the path inside the folder ("loops.yaml",
    "lexicons/scoring.yaml"; FOLDER for the folder itself); `refused` says why, in words
    a policy owner can act on."""

    path: Path
    files: Mapping[str, bytes] = field(default_factory=dict)
    refused: Mapping[str, Refusal] = field(default_factory=dict)
    atomic: bool = False

    @computed_once
    def digest(self) -> str:
        """sha256 over the sorted names and bytes of the rule files and lexicons read: the
        rule set's public digest, so the same content always has the same digest."""
        digest = hashlib.sha256()
        for name in sorted(self.files):
            data = self.files[name]
            digest.update(name.encode("utf-8") + b"\0" + len(data).to_bytes(8, "big") + data)
        return "sha256:" + digest.hexdigest()

    @property
    def key(self) -> FolderKey:
        """What two reads must share to be of the same folder content."""
        return self.digest, tuple(sorted(self.refused.items()))

    def rule_files(self) -> list[str]:
        """The rule files read, by name, sorted."""
        return sorted(name for name in self.files if "/" not in name)

    def problems(self) -> list[Problem]:
        """This folder's refusals as problems (not those of its lexicons folder, which
        sub(LEXICON_FOLDER) reports), the folder's own first."""
        own = sorted((name, why) for name, why in self.refused.items()
                     if "/" not in name and name != LEXICON_FOLDER)
        return [why.problem(name or str(self.path)) for name, why in own]

    def sub(self, folder: str) -> RulesFolder:
        """The part of this read below `folder`, named as if that folder had been read."""
        prefix = f"{folder}/"
        refused = {name.removeprefix(prefix): why for name, why in self.refused.items()
                   if name.startswith(prefix)}
        if folder in self.refused:
            refused[FOLDER] = self.refused[folder]
        return RulesFolder(
            path=self.path / folder,
            files={name.removeprefix(prefix): data for name, data in self.files.items()
                   if name.startswith(prefix)},
            refused=refused, atomic=self.atomic)


def read_folder(path: Path) -> RulesFolder:
    """Read a rules folder's rule files and lexicons, refusing what is not safe to read;
    a folder that keeps changing while it is read is refused as a whole."""
    path = Path(path)
    for attempt in range(READ_ATTEMPTS):
        folder = _Reader(path).read()
        if folder is not None:
            return folder
        time.sleep(0.02 * (attempt + 1))  # a writer is busy: give it a moment
    return RulesFolder(path, refused={FOLDER: Refusal(
        "folder_changing", "the folder kept changing while it was read; it is read again at "
                           "the next reload")})


class _Changed(Exception):
    """Something vanished or was replaced while the folder was read."""


class _Reader:
    """One attempt at reading a folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = ""
        self.files: dict[str, bytes] = {}
        self.refused: dict[str, Refusal] = {}
        self.total = 0

    def read(self) -> RulesFolder | None:
        """The folder, or None when it changed under the reader."""
        try:
            return self._read()
        except _Changed:
            return None

    def _read(self) -> RulesFolder:
        if not self.path.is_dir():
            return RulesFolder(self.path,
                               refused={FOLDER: Refusal("file_unreadable", "is not a folder")})
        self.root = os.path.realpath(self.path)
        content, generation = self.root, None
        link = os.path.join(self.root, CONFIGMAP_LINK)
        if os.path.islink(link):
            generation = self._resolve(CONFIGMAP_LINK, link, stat.S_ISDIR)
            if generation is None:
                return self._done(atomic=False)
            content = generation
        for name in self._list(content):
            if name.endswith(".yml"):
                self.refused[name] = Refusal("file_name", "rule files must end in .yaml; "
                                                          "rename it (it would otherwise be "
                                                          "ignored)")
            elif name.endswith(".yaml"):
                self._read_file(name, os.path.join(content, name))
        lexicons = os.path.join(content, LEXICON_FOLDER)
        if os.path.lexists(lexicons):
            real = self._resolve(LEXICON_FOLDER, lexicons, stat.S_ISDIR)
            if real is not None:
                for name in self._list(real):
                    if name.endswith(".yaml"):
                        self._read_file(f"{LEXICON_FOLDER}/{name}", os.path.join(real, name))
        if generation is not None and os.path.realpath(link) != generation:
            raise _Changed  # swapped while read: what was read may be half of the old one
        return self._done(atomic=generation is not None)

    def _done(self, atomic: bool) -> RulesFolder:
        return RulesFolder(Path(self.path), self.files, self.refused, atomic)

    def _list(self, folder: str) -> list[str]:
        names: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if len(names) == MAX_ENTRIES:
                        self.refused[FOLDER] = Refusal(
                            "budget", f"holds more than {MAX_ENTRIES} names; a rules folder "
                                      "holds rule files, lexicons/ and tests/ only",
                            "folder_names")
                        return []
                    names.append(entry.name)
        except FileNotFoundError as exc:
            raise _Changed from exc
        except OSError as exc:
            self.refused[FOLDER] = _unreadable(f"cannot be listed: {exc.strerror}")
            return []
        return sorted(names)

    def _resolve(self, name: str, path: str, wanted: Callable[[int], bool]) -> str | None:
        """The real path of `path` if it is inside the folder and passes `wanted` (a stat
        test); otherwise None, with the reason in refused."""
        try:
            real = os.path.realpath(path, strict=True)
            info = os.lstat(real)
        except FileNotFoundError as exc:
            if not os.path.islink(path):
                raise _Changed from exc  # removed since the folder was listed
            target = os.path.realpath(path)
            self.refused[name] = _unreadable(
                _outside(target) if not _inside(self.root, target) else
                f"is a link to {target}, which does not exist")
            return None
        except OSError as exc:
            self.refused[name] = _unreadable(f"cannot be read: {exc.strerror}")
            return None
        if not _inside(self.root, real):
            self.refused[name] = _unreadable(_outside(real))
            return None
        if not wanted(info.st_mode):
            need = "a folder" if wanted is stat.S_ISDIR else "a plain file"
            self.refused[name] = _unreadable(f"is {_kind(info.st_mode)}, not {need}; only "
                                             "plain files inside the rules folder are read")
            return None
        return real

    def _read_file(self, name: str, path: str) -> None:
        if len(self.files) >= MAX_FILES:
            self.refused[FOLDER] = Refusal("budget", f"holds more than {MAX_FILES} rule and "
                                                     "lexicon files; remove some", "files")
            return
        real = self._resolve(name, path, stat.S_ISREG)
        if real is None:
            return
        try:
            before = os.lstat(real)
            if before.st_size > MAX_FILE_BYTES:
                self.refused[name] = _too_large(before.st_size)
                return
            fd = os.open(real, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise _Changed from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # replaced by a link since it was checked
                raise _Changed from exc
            self.refused[name] = _unreadable(f"cannot be read: {exc.strerror}")
            return
        try:
            opened = os.fstat(fd)
            if (not stat.S_ISREG(opened.st_mode)
                    or (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino)):
                raise _Changed
            data = _read_at_most(fd, MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.refused[name] = _unreadable(f"cannot be read: {exc.strerror}")
            return
        finally:
            os.close(fd)
        if len(data) > MAX_FILE_BYTES:
            self.refused[name] = _too_large(len(data))
            return
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            self.refused[FOLDER] = Refusal(
                "budget", f"its rule and lexicon files hold more than "
                          f"{MAX_TOTAL_BYTES // 1024 // 1024} MiB together; make them smaller",
                "total_bytes")
            return
        self.files[name] = data


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _outside(target: str) -> str:
    return (f"is a link to {target}, outside the rules folder; only files inside the "
            "folder are read (copy the file in instead)")


def _unreadable(why: str) -> Refusal:
    return Refusal("file_unreadable", why)


def _too_large(size: int) -> Refusal:
    return Refusal("budget", f"is {size} bytes; a rule or lexicon file may be at most "
                             f"{MAX_FILE_BYTES // 1024} KiB", "file_bytes")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a plain file"
    return "not a plain file"
