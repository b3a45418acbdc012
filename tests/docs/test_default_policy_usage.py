"""The policy guide's "Limits" says how much of each limit the default policy uses; this
measures the packaged rules the way the limits are counted and fails, printing the right
sentence, when the guide no longer says it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from escalator.policy import load_policy
from escalator.ruleset import compiler
from escalator.ruleset.conditions import Condition, Leaf, size

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "policy" / "guide.md"


def _depth_and_values(node: yaml.Node) -> tuple[int, int]:
    """Nesting as the YAML limit counts it (every node, a scalar included, is a level) and
    values with aliases expanded (a key and its value both count)."""
    if isinstance(node, yaml.ScalarNode):
        return 1, 1
    children = (node.value if isinstance(node, yaml.SequenceNode)
                else [part for pair in node.value for part in pair])
    measured = [_depth_and_values(child) for child in children]
    return 1 + max((d for d, _ in measured), default=0), 1 + sum(v for _, v in measured)


def _leaves(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    items = getattr(condition, "items", None) or (condition.item,)  # type: ignore[union-attr]
    return [leaf for item in items for leaf in _leaves(item)]


def usage() -> str:
    """The guide's sentence, with the default policy's figures measured now."""
    files = sorted(ROOT.joinpath("rules").glob("*.yaml")) + sorted(
        ROOT.joinpath("rules", "lexicons").glob("*.yaml"))
    measured = [_depth_and_values(yaml.compose(path.read_text(encoding="utf-8")))
                for path in files]
    policy = load_policy(ROOT / "rules")
    try:
        rules = policy.ruleset.rules
        # The engine's share as the compiler counts it (its private steps: compile each
        # condition, expand it into alternatives, pack them into engine rulesets).
        keys = compiler._Keys()
        alternatives = [(f"r{index}_{number}", compiler._engine_priority(rule), atoms)
                        for index, rule in enumerate(rules)
                        for number, atoms in enumerate(
                            compiler._expand(compiler._compile(rule.when, keys)))]
        engine_rulesets = len(compiler._shards(alternatives))
        assert engine_rulesets == len(policy.engine._handles)
    finally:
        policy.close()
    longest_list = max((len(leaf.value) for rule in rules for leaf in _leaves(rule.when)
                        if isinstance(leaf.value, tuple)), default=0)
    return (f"nesting {max(d for d, _ in measured)}, "
            f"{max(v for _, v in measured):,} values in its largest file, "
            f"lists of {longest_list} values, "
            f"{sum(size(rule.when) for rule in rules):,} condition parts, "
            f"{len(alternatives):,} engine rules with "
            f"{sum(len(atoms) for _, _, atoms in alternatives):,} comparisons in "
            f"{engine_rulesets} engine ruleset{'s' if engine_rulesets > 1 else ''}")


def test_the_guide_says_what_the_default_policy_uses() -> None:
    text = " ".join(GUIDE.read_text(encoding="utf-8").split())
    said = re.search(r"The default policy uses a small part of each: (.+?) \(`pytest", text)
    assert said is not None, "the sentence is gone from docs/policy/guide.md"
    assert said.group(1) == usage(), f"write: {usage()}"
