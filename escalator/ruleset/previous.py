"""The rule set a changed folder replaces, so `rules check` can say when its version was not raised.

Every decision names the rule set's version; two different rule sets under one version
cannot be told apart in decisions, logs or dashboards. `escalator rules check` compares
the folder with what it replaces, found in one of three places:

- a running service (`--against http://host:port`): its `GET /v1/ruleset`;
- another folder (`--against DIR`), e.g. the rules in production;
- by default, when the folder is in a git checkout, the same folder at git HEAD (the
  last commit): what a policy owner's edit changes.

The comparison is by digest (the same sha256 over rule files and lexicons that the
service reports), so any change, lexicons included, counts.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from escalator.errors import PolicyError, Problem
from escalator.ruleset.folder import RulesFolder, read_folder
from escalator.ruleset.yamlfile import LineDict, load_yaml

GIT_TIMEOUT_SECONDS = 10
HTTP_TIMEOUT_SECONDS = 10


class PreviousError(Exception):
    """The rule set to compare with could not be read; the message says why."""


@dataclass(frozen=True)
class Identity:
    """A rule set's version and digest, and where it was read (for messages)."""

    version: str | None
    digest: str
    source: str
    # Where the version is declared (file, line), to point a warning at it.
    version_file: str | None = None
    version_line: int | None = None


def folder_identity(directory: Path, source: str | None = None) -> Identity:
    """The version and digest of a rules folder, read even when the set has problems."""
    return read_identity(read_folder(directory), source or str(directory))


def read_identity(folder: RulesFolder, source: str | None = None) -> Identity:
    """The version and digest of a folder already read (its files in memory)."""
    version: str | None = None
    where: tuple[str | None, int | None] = (None, None)
    for name in folder.rule_files():
        try:
            document = load_yaml(folder.files[name], name)
        except PolicyError:
            continue
        if isinstance(document, LineDict) and isinstance(document.get("version"), str):
            version = document["version"]
            where = (name, document.line_of_key("version"))
            break
    return Identity(version, folder.digest, source or str(folder.path), *where)


def git_head_identity(directory: Path) -> Identity | None:
    """The folder as committed at git HEAD; None when it is not in a git checkout (or
    has no committed version yet)."""
    try:
        top = _git(directory, "rev-parse", "--show-toplevel").decode().strip()
        relative = directory.resolve().relative_to(Path(top).resolve()).as_posix()
        listed = _git(Path(top), "ls-tree", "-r", "--name-only", "HEAD", "--",
                      relative).decode().splitlines()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    prefix = "" if relative == "." else relative + "/"
    # Rule files directly in the folder, and its lexicons: what the digest covers.
    wanted = [name[len(prefix):] for name in listed if name.endswith(".yaml")]
    wanted = [name for name in wanted if "/" not in name
              or (name.startswith("lexicons/") and name.count("/") == 1)]
    if not any("/" not in name for name in wanted):
        return None
    with tempfile.TemporaryDirectory(prefix="escalator-head-") as folder:
        root = Path(folder)
        (root / "lexicons").mkdir()
        for name in wanted:
            try:
                data = _git(Path(top), "show", f"HEAD:{prefix}{name}")
            except (OSError, subprocess.SubprocessError):
                return None
            (root / name).write_bytes(data)
        shown = prefix or "./"
        return folder_identity(root, f"git HEAD ({shown})")


def _git(directory: Path, *args: str) -> bytes:
    result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                            timeout=GIT_TIMEOUT_SECONDS, check=True)
    return result.stdout


def service_identity(url: str, api_key: str | None = None) -> Identity:
    """The active rule set of a running service (GET /v1/ruleset); PreviousError if it
    cannot be asked."""
    endpoint = url.rstrip("/") + "/v1/ruleset"
    request = urllib.request.Request(endpoint, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        hint = " (give a key with --api-key)" if exc.code in (401, 403) else ""
        raise PreviousError(f"{endpoint} answered {exc.code}{hint}") from exc
    except (OSError, ValueError) as exc:
        raise PreviousError(f"cannot read {endpoint}: {exc}; is the service running "
                            "there?") from exc
    if not isinstance(body, dict) or not isinstance(body.get("digest"), str):
        raise PreviousError(f"{endpoint} did not answer with a rule set")
    version = body.get("version")
    return Identity(version if isinstance(version, str) else None, body["digest"], url)


def next_version(version: str) -> str:
    """A suggestion: the version with its last number raised (2026.11.2 -> 2026.11.3)."""
    found = re.search(r"(\d+)(\D*)$", version)
    if not found:
        return version + ".1"
    number, tail = found.groups()
    return version[:found.start()] + str(int(number) + 1) + tail


def compare(current: Identity, previous: Identity) -> tuple[str, list[Problem]]:
    """A one-line account of the change, and a warning when the rules changed but the
    version did not."""
    if current.digest == previous.digest:
        return f"unchanged since {previous.source} (version {previous.version})", []
    if current.version != previous.version:
        return (f"changed since {previous.source}: version {previous.version} -> "
                f"{current.version}"), []
    version = current.version or ""
    warning = Problem(
        current.version_file or current.source, current.version_line,
        f"the rules differ from {previous.source} but the version is still '{version}'; "
        f"raise it (e.g. version: \"{next_version(version)}\"), or decisions, logs and "
        "GET /v1/ruleset cannot tell the two rule sets apart", code="version_unchanged")
    return f"changed since {previous.source}, version unchanged ({version})", [warning]
