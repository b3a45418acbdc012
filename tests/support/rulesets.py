"""Rule set folders for tests: the packaged default policy copied somewhere writable (or
mounted as a ConfigMap), its version changed, or a rule set of a test's own beside the
default lexicons."""

from __future__ import annotations

import shutil
from pathlib import Path

from escalator.config import default_rules_dir


def copy_rules(folder: Path, *, with_tests: bool = False) -> Path:
    """A copy of the default policy in `folder` (its rule tests only if asked)."""
    ignored = ("__pycache__", "__init__.py") + (() if with_tests else ("tests",))
    shutil.copytree(default_rules_dir(), folder, ignore=shutil.ignore_patterns(*ignored))
    return folder


def default_version() -> str:
    """The version the packaged default policy declares (tests must not hard-code it: every
    change to the default rules raises it)."""
    text = (default_rules_dir() / "ruleset.yaml").read_text()
    start = text.index('version: "') + len('version: "')
    return text[start:text.index('"', start)]


def set_version(folder: Path, version: str) -> None:
    """Rewrite the version ruleset.yaml declares."""
    header = folder / "ruleset.yaml"
    text = header.read_text()
    start = text.index('version: "') + len('version: "')
    header.write_text(text[:start] + version + text[text.index('"', start):])


def rules_folder(tmp_path: Path, text: str) -> Path:
    """A rule set of one file, `text`, with the default lexicons, in tmp_path/rules."""
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "ruleset.yaml").write_text(text, encoding="utf-8")
    shutil.copytree(default_rules_dir() / "lexicons", folder / "lexicons")
    return folder


def configmap_mount(mount: Path, generation: str = "..2026_11_28_10_00_00.1") -> Path:
    """A copy of the default policy laid out as the kubelet mounts a ConfigMap: files that
    link through "..data", a link to the generation's folder (an update writes a new
    folder and swaps "..data" atomically)."""
    mount.mkdir()
    copy_rules(mount / generation)
    (mount / "..data").symlink_to(generation)
    for path in [*(mount / generation).glob("*.yaml"), mount / generation / "lexicons"]:
        (mount / path.name).symlink_to(Path("..data") / path.name)
    return mount


# A shadow rule set's one difference from the default rules: a customer the platform flags
# as a VIP goes to a person whatever else holds.
VIP_RULE = """\
rules:
  - id: vip-to-a-person
    description: A customer the platform flags as a VIP talks to a person.
    priority: 95
    when:
      all:
        - {fact: context.vip, eq: true}
    then:
      decision: route_to_human
"""
