"""What can be wrong with a log: the stable codes and the error that carries one."""

from __future__ import annotations

# Stable codes of what can be wrong with a log (the message says where, for people).
CODES = {
    "log_unreadable": "a log file cannot be opened or decompressed",
    "log_not_json": "a line is not JSON",
    "log_not_record": "a line is JSON but not a decision or feedback record: not an "
                      "object, or a field missing or of the wrong kind",
}


class ReportError(ValueError):
    """A log cannot be read: a stable code, and where."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
