"""Intent names and bot prompt ids as the loop scorer compares them.

Platforms spell the same label differently ("nlu_fallback", "NLU-Fallback",
"Default Fallback Intent"), and many give a prompt several variants ("ask_email",
"ask_email_retry", "ask_email_2"). Both are normalised here, once per distinct label
(the results are cached: a bot has a few hundred labels, not millions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# Separators platforms put inside labels; any run of them reads as one "_".
_SEPARATORS = re.compile(r"[\s._:@-]+")


@lru_cache(maxsize=4096)
def intent_key(intent: str) -> str:
    """An intent name in the form the intent lists are compared in: casefolded, "_" separated."""
    return _SEPARATORS.sub("_", intent.strip().casefold())


def variant_suffix_pattern(suffixes: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern for a run of variant suffixes at the end of a prompt id, or None for none.

    Each suffix is a word ("retry") or a word ending in "#", which stands for any number
    ("v#" matches v2; "#" alone matches 2). They must follow a separator, so "retry"
    strips "ask_email_retry" but not "ask_retry_email" or "entry".
    """
    words = sorted({s for s in suffixes if s})
    if not words:
        return None
    parts = [re.escape(w[:-1]) + r"\d+" if w.endswith("#") else re.escape(w) for w in words]
    return re.compile(rf"(?:[._:@-](?:{'|'.join(parts)}))+$", re.IGNORECASE)


@lru_cache(maxsize=4096)
def prompt_key(prompt_id: str, variant: re.Pattern[str] | None) -> str:
    """The prompt a prompt id is a variant of: the id without its variant suffixes.

    "ask_email_retry" and "ask_email" are the same question asked again. Case is kept
    (only the suffixes match in any case), so an id without a suffix is its own key, as
    in memories stored before variants were recognised. An id that is nothing but
    suffixes keeps its own name.
    """
    if variant is None:
        return prompt_id
    return variant.sub("", prompt_id) or prompt_id
