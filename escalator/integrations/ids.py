"""Platform ids and labels as escalator takes them: the same platform id always maps to
the same valid id, and a platform's labels and locales are made to fit.

escalator accepts ids of 1-128 characters of `A-Z a-z 0-9 . _ : @ -`. Platforms send
ids outside that: Bot Framework's `a:1AbC|livechat`, messaging's `+14155550100` and
`whatsapp:+14155550100`, Dialogflow CX session paths longer than 128 characters. An id
that fits is kept, so logs and state stay readable; any other id becomes
`<prefix>:h:<32 hex digits>`, the first 128 bits of its SHA-256 (or of its HMAC-SHA256
when a key is given). A kept id that already has that form is hashed too, so a platform
id can never pose as the hash of another.

A key makes the hash impossible to recompute from a guessed id (a phone number, say)
without it; with `always_hash` no platform id reaches escalator's logs or Redis keys
as it was sent. Changing either changes every mapped id: conversations in progress
then start again as new ones.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

MAX_ID_CHARS = 128
VALID_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_PREFIX = re.compile(r"^[a-z0-9-]{1,32}$")
_HASHED = re.compile(r"^[a-z0-9-]{1,32}:h:[0-9a-f]{32}$")
_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._:@-]+")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class IdMapper:
    """Maps platform ids to escalator ids: kept when valid, else a prefixed (keyed) hash."""

    prefix: str = "id"
    key: bytes | None = None
    always_hash: bool = False

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError("an id prefix is 1-32 characters of a-z, 0-9 and '-'")

    def __call__(self, platform_id: str) -> str:
        """The escalator id for this platform id (deterministic for a given prefix and key)."""
        if not isinstance(platform_id, str) or not platform_id:
            raise ValueError("a platform id is a non-empty string")
        if (not self.always_hash and VALID_ID.match(platform_id)
                and not _HASHED.match(platform_id)):
            return platform_id
        raw = platform_id.encode("utf-8", "surrogatepass")
        if self.key is not None:
            digest = hmac.new(self.key, raw, hashlib.sha256).hexdigest()
        else:
            digest = hashlib.sha256(raw).hexdigest()
        return f"{self.prefix}:h:{digest[:32]}"


def escalator_id(platform_id: str, prefix: str = "id", key: bytes | None = None) -> str:
    """The escalator id of a platform id: itself when valid, else `<prefix>:h:<hash>`."""
    return IdMapper(prefix, key)(platform_id)


def label(value: str | None) -> str | None:
    """A platform label (intent, tier, channel) in the form escalator accepts, or None.

    Characters escalator refuses become "_" (intents are compared with separators
    read as "_" anyway), and the label is cut to 64 characters."""
    if value is None:
        return None
    cleaned = _LABEL_CHARS.sub("_", str(value).strip())[:64]
    return cleaned if cleaned.strip("_") else None


def language_tag(value: str | None) -> str | None:
    """A platform locale ("en_US", "pt-BR") as a language tag, or None when it is not one."""
    if not value:
        return None
    tag = value.strip().replace("_", "-")
    return tag if _LANGUAGE.match(tag) else None
