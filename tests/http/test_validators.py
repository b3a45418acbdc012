"""Ids, names, labels and queues are checked whole, wherever they are validated."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from marshmallow import ValidationError

import escalator
from escalator.validators import Exactly

PACKAGE = Path(escalator.__file__).parent


@pytest.mark.parametrize("value", ["support\n", "support\r\n", "\nsupport", "sup port"])
def test_exactly_refuses_what_a_dollar_anchor_lets_through(value: str) -> None:
    queue = Exactly(r"^[a-z]+$", error="a queue name")
    assert queue("support") == "support"
    with pytest.raises(ValidationError, match="a queue name"):
        queue(value)


def test_no_validator_in_the_package_matches_only_a_prefix() -> None:
    # marshmallow's validate.Regexp calls re.match(): "^x$" accepts "x\n". Every pattern
    # check goes through Exactly (fullmatch) instead; plain re checks call fullmatch().
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Regexp" and path.name != "validators.py"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
