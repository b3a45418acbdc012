"""Whole-value pattern checks for ids, names, labels and queues, wherever they are validated.

Python's `$` also matches before a final newline, so `re.match(r"^[a-z]+$", "x\\n")` succeeds:
a rule id, a queue or a turn id ending in a newline would pass a `^...$` check and travel on
into state, metrics labels and logs. Every such check goes through fullmatch() instead.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, validate


class Exactly(validate.Regexp):
    """A marshmallow Regexp validator that must match the whole value (fullmatch).

    The patterns may keep ^...$ (they also go into the OpenAPI document, where JSON Schema
    reads them as whole-value anchors); fullmatch() makes Python read them the same way.
    """

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value
