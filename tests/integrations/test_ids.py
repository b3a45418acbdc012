"""Platform ids become valid escalator ids, the same way every time (issue item 7)."""

from __future__ import annotations

import re

import pytest

from escalator.integrations.ids import VALID_ID, IdMapper, escalator_id

PLATFORM_IDS = [
    "a:1AbC|livechat",                     # Bot Framework / Direct Line
    "+14155550100",                        # SMS
    "whatsapp:+14155550100",               # WhatsApp through a messaging API
    "projects/p/locations/global/agents/a/sessions/" + "s" * 120,  # a CX session path
    "Ünïcödé user",
    "x" * 129,
]


@pytest.mark.parametrize("platform_id", PLATFORM_IDS)
def test_ids_escalator_refuses_become_a_stable_prefixed_hash(platform_id: str) -> None:
    mapped = escalator_id(platform_id, prefix="bf")
    assert VALID_ID.match(mapped)
    assert re.fullmatch(r"bf:h:[0-9a-f]{32}", mapped)
    assert escalator_id(platform_id, prefix="bf") == mapped


def test_valid_ids_are_kept_so_logs_stay_readable() -> None:
    for kept in ("c-42", "8f14e45f-ceea-467f-a0e6-1234567890ab", "user@example.com", "a" * 128):
        assert escalator_id(kept) == kept


def test_different_platform_ids_map_to_different_ids() -> None:
    mapped = {escalator_id(pid) for pid in PLATFORM_IDS}
    assert len(mapped) == len(PLATFORM_IDS)
    assert escalator_id("+14155550100") != escalator_id("+14155550101")


def test_an_id_that_looks_like_a_hash_is_hashed_so_it_cannot_pose_as_another() -> None:
    victim = escalator_id("+14155550100")
    assert escalator_id(victim) != victim


def test_a_key_changes_the_hash_and_always_hash_hides_valid_ids() -> None:
    plain = escalator_id("+14155550100")
    keyed = IdMapper(key=b"secret")("+14155550100")
    assert keyed != plain and VALID_ID.match(keyed)
    assert IdMapper(key=b"other")("+14155550100") != keyed
    hidden = IdMapper(prefix="wa", key=b"secret", always_hash=True)("14155550100")
    assert hidden.startswith("wa:h:") and "14155550100" not in hidden


def test_bad_prefixes_and_empty_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        IdMapper(prefix="Bad Prefix")
    with pytest.raises(ValueError):
        escalator_id("")
