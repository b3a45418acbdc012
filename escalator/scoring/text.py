"""Text handling shared by the scorers: folding, words, phrase matching, signatures, language.

Everything here works on a *folded* form of the text: casefolded, accents stripped,
"n't" read as " not", apostrophes splitting words. Vocabulary phrases are folded the
same way when they are loaded, so a policy owner writes "já disse" or "don't" and it
matches "JA DISSE!!" or "dont"... (the latter only if listed too: folding is not
spelling correction).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import struct
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# NFKD splits "é" into "e" + a combining accent; dropping the accents is the fold.
_COMBINING = re.compile(r"[\u0300-\u036f]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
# A word is a run of letters/digits of any script; a run of clause punctuation ends
# a clause (and a sentence when it holds one of _SENTENCE_END).
_WORD = re.compile(r"[^\W_]+")
# The same runs in ASCII text, where [^\W_] is exactly [0-9A-Za-z]; re matches the
# explicit class about twice as fast as the Unicode one, and most messages are ASCII.
_ASCII_WORD = re.compile(r"[0-9A-Za-z]+")
_CLAUSE_BREAK = re.compile(r"([.!?;:,\n]+)")
_SENTENCE_END = frozenset(".!?\n")
# In vocabulary phrases, "#" is any number and a trailing "*" makes a word a prefix.
_PATTERN_PIECE = re.compile(r"#|[^\W_]+\*?")
NUMBER = "#"
_STAR_INSIDE = re.compile(r"\*[^\W_]")
PREFIX_MIN = 3


# --- What the customer wrote, as a reader sees it -----------------------------------------

def _format_characters() -> frozenset[str]:
    """Every format character (Unicode category Cf)."""
    # Unicode has assigned Cf only in planes 0, 1 and 14 (tests/scoring checks all 17):
    # scanning those takes ~30 ms at import, all of them ~280 ms.
    return frozenset(chr(c) for block in (range(0x20000), range(0xE0000, 0xE1000))
                     for c in block if unicodedata.category(chr(c)) == "Cf")


# Zero-width spaces and joiners, the soft hyphen, byte-order marks, bidi controls: invisible,
# so "hu\u200bman" reads "human" to a person, and must to the scorers too. A set, not a
# regular expression: a class of these 163 characters costs re ~18 us per message, the set
# ~1.6 us to find there are none.
_FORMAT = _format_characters()
_ASCII_LETTER = re.compile("[A-Za-z]")

# Letters of other scripts that look like a Latin letter, and that letter: every letter of
# Unicode's confusables (UTS #39, as the confusable-homoglyphs package ships them) whose
# look-alike is one ASCII letter and that NFKC leaves alone, capitals kept capital (Unicode
# gives "l" for I, its skeleton). tests/scoring/test_normalise.py derives it again and
# prints the new table if Unicode's list has moved.
_LOOKALIKES = str.maketrans(
    ("\u037f\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d"
     "\u039f\u03a1\u03a4\u03a5\u03a7\u03b1\u03b3\u03b9\u03bd\u03bf"
     "\u03c1\u03c3\u03c5\u03dc\u03f3\u03fa\u0405\u0406\u0408\u0410"
     "\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423"
     "\u0425\u042c\u0430\u0433\u0435\u043e\u0440\u0441\u0443\u0445"
     "\u0455\u0456\u0458\u0461\u0474\u0475\u04ae\u04af\u04bb\u04bd"
     "\u04c0\u04cf\u0501\u050c\u051b\u051c\u051d\u054d\u054f\u0555"
     "\u0561\u0563\u0566\u0570\u0578\u057c\u057d\u0581\u0584\u0585"
     "\u0b20\u0d20\u101d\u10e7\u10ff\u1200\u12d0\u13a0\u13a1\u13a2"
     "\u13a5\u13a9\u13aa\u13ab\u13ac\u13b3\u13b7\u13bb\u13bd\u13c0"
     "\u13c2\u13c3\u13cf\u13d2\u13d4\u13d5\u13d9\u13da\u13de\u13df"
     "\u13e2\u13e6\u13e7\u13f3\u13f4\u142f\u144c\u146d\u146f\u1472"
     "\u148d\u14aa\u1541\u157c\u157d\u1587\u15af\u15b4\u15c5\u15de"
     "\u15ea\u15f0\u15f7\u16b7\u16c1\u16d5\u16d6\u1d26\u2c85\u2c8e"
     "\u2c92\u2c94\u2c98\u2c9a\u2c9e\u2c9f\u2ca2\u2ca3\u2ca4\u2ca5"
     "\u2ca6\u2ca8\u2cac\u2cd0\u2d38\u2d39\u2d4f\u2d54\u2d55\u2d5d"
     "\ua4d0\ua4d1\ua4d2\ua4d3\ua4d4\ua4d6\ua4d7\ua4d9\ua4da\ua4dc"
     "\ua4dd\ua4df\ua4e0\ua4e1\ua4e2\ua4e3\ua4e6\ua4e7\ua4ea\ua4eb"
     "\ua4ec\ua4ee\ua4f0\ua4f2\ua4f3\ua4f4\ua647\ua6df\uab75\uab81"
     "\uab83\uab93\uaba9\uabaa\uabaf\U00010282\U00010286\U00010287\U0001028a\U00010290"
     "\U00010292\U00010295\U00010296\U00010297\U000102a0\U000102a1\U000102a2\U000102a5\U000102ab\U000102b0"
     "\U000102b1\U000102b2\U000102b4\U000102cf\U00010301\U00010302\U00010309\U00010311\U00010315\U00010317"
     "\U00010404\U00010415\U0001041b\U00010420\U0001042c\U0001043d\U00010448\U000104b4\U000104c2\U000104ce"
     "\U000104ea\U000104f6\U00010513\U00010516\U00010518\U0001051c\U0001051d\U00010525\U00010526\U00010527"
     "\U00011706\U0001170a\U0001170e\U0001170f\U000118a0\U000118a2\U000118a3\U000118a4\U000118a6\U000118a9"
     "\U000118ae\U000118b2\U000118b5\U000118b8\U000118bc\U000118c0\U000118c1\U000118c2\U000118c3\U000118c4"
     "\U000118c8\U000118d7\U000118d8\U000118dc\U00016f08\U00016f0a\U00016f16\U00016f28\U00016f35\U00016f3a"
     "\U00016f40\U00016f42\U00016f43"),
    ("JABEZHIKMNOPTYXayivopouFjMSIJABEKMHOPCTYXbareopcyxsijwVvYyheIidGqWwUSO"
     "wqqhnnugfoOooyoUODRTiYAJEWMHYGhZbRWSVSLCPKdGBVUPdbJLxHxRbFADDMBXlKMrrH"
     "IKMNOoPpCcTYXLVElOQXBPdDTGKJCZFMNLSRVHWXYAElOUiVirwzvscBEFlXOPSTABCFOM"
     "TYXHBClMTXOCLSocsROUouNOKCVFLXvwwwVFLYEZELOUTvsFizoouyVTLlRSAUY"))
_LOOKALIKE_LETTERS = frozenset(chr(c) for c in _LOOKALIKES)
# Latin letters: ASCII and the Latin blocks (accented letters of Western languages and more).
_LATIN_LETTERS = frozenset(
    chr(c) for block in (range(0x41, 0x5B), range(0x61, 0x7B), range(0xC0, 0x250),
                         range(0x1E00, 0x1F00), range(0x2C60, 0x2C80), range(0xA720, 0xA800),
                         range(0xAB30, 0xAB70))
    for c in block if unicodedata.name(chr(c), "").startswith("LATIN"))


def normalise_text(text: str) -> str:
    """The text as a reader sees it: compatibility forms unified (NFKC: fullwidth and styled
    letters, ligatures), format characters removed, and in words written in Latin letters
    the letters of other scripts that look like Latin ones replaced by them ("human" with a
    Cyrillic shha for its h reads "human"). Words wholly in another script (Russian, Greek)
    stay as they are. ASCII text is returned as it is, at no cost."""
    if text.isascii():
        return text
    # An acute accent (U+00B4) typed for an apostrophe is one to fold(); NFKC would make it
    # a space and a combining accent.
    text = unicodedata.normalize("NFKC", text.replace("\u00b4", "'"))
    if not _FORMAT.isdisjoint(text):
        text = "".join(c for c in text if c not in _FORMAT)
    if _LOOKALIKE_LETTERS.isdisjoint(text) or not _ASCII_LETTER.search(text):
        return text  # the usual case: nothing to fold, or no Latin word to fold it into
    return _WORD.sub(_latin_word, text)


def _latin_word(match: re.Match[str]) -> str:
    word = match.group()
    letters = set(word)
    if letters.isdisjoint(_LOOKALIKE_LETTERS) or letters.isdisjoint(_LATIN_LETTERS):
        return word
    # Folded only if every letter is Latin or has a Latin look-alike: "human" with a
    # Cyrillic em for its m is not folded, since no Latin letter looks like a small em.
    others = letters - _LATIN_LETTERS - _LOOKALIKE_LETTERS
    if not all(c.isdigit() for c in others):
        return word
    return word.translate(_LOOKALIKES)


def fold_accents(text: str) -> str:
    """The text with accents removed and case kept ("Pésimo" -> "Pesimo")."""
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


def fold(text: str) -> str:
    """The matching form of a text: casefolded, accents removed, "n't" read as " not"."""
    folded = fold_accents(text.translate(_APOSTROPHES).casefold())
    return folded.replace("n't", " not")


@dataclass(frozen=True)
class Words:
    """The words of a folded message, with the clause and sentence each belongs to."""

    words: tuple[str, ...]
    clauses: tuple[int, ...]
    sentences: tuple[int, ...]
    # Index of the first word of each sentence that has words, in order.
    sentence_starts: tuple[int, ...]
    # Sentence numbers that ended with a "?".
    questions: frozenset[int]

    def __len__(self) -> int:
        return len(self.words)


EMPTY_WORDS = Words((), (), (), (), frozenset())


def split_words(folded: str) -> Words:
    """Split folded text into words; punctuation only marks clause and sentence ends.

    Runs on every turn, so the text is cut at punctuation runs first and each stretch
    between them is split into words in one findall(), rather than looking at every
    word and punctuation run in Python.
    """
    words: list[str] = []
    clauses: list[int] = []
    sentences: list[int] = []
    starts: list[int] = []
    questions: set[int] = set()
    clause = sentence = 0
    started = -1
    word = _ASCII_WORD if folded.isascii() else _WORD
    # With its capturing group, split() alternates: text, punctuation run, text, ...
    for position, piece in enumerate(_CLAUSE_BREAK.split(folded)):
        if position % 2:
            clause += 1
            if "?" in piece:
                questions.add(sentence)
            if not _SENTENCE_END.isdisjoint(piece):
                sentence += 1
            continue
        found = word.findall(piece)
        if not found:
            continue
        if started != sentence:
            starts.append(len(words))
            started = sentence
        words += found
        clauses += [clause] * len(found)
        sentences += [sentence] * len(found)
    return Words(tuple(words), tuple(clauses), tuple(sentences), tuple(starts),
                 frozenset(questions))


def pattern_words(phrase: str) -> tuple[str, ...]:
    """The words of a vocabulary phrase, folded; "#" and "word*" are kept as wildcards."""
    return tuple(_PATTERN_PIECE.findall(fold(normalise_text(phrase))))


def pattern_problem(phrase: str) -> str | None:
    """Why a vocabulary phrase cannot be used, or None when it is fine."""
    words = pattern_words(phrase)
    if not words:
        return f"phrase {phrase!r} has no words"
    for word in words:
        if word.endswith("*") and len(word) - 1 < PREFIX_MIN:
            return (f"phrase {phrase!r}: a word ending in '*' needs at least {PREFIX_MIN} "
                    "letters before the '*'")
    folded = fold(normalise_text(phrase))
    if _STAR_INSIDE.search(folded) or folded.count("*") != sum(w.endswith("*") for w in words):
        return f"phrase {phrase!r}: '*' may only end a word"
    return None


@dataclass(frozen=True)
class Pattern:
    """A vocabulary phrase ready to match: its folded words, what kind it is, its label."""

    words: tuple[str, ...]
    kind: str
    label: str


@dataclass(frozen=True)
class Match:
    """Where a pattern matched: words[start:end]."""

    start: int
    end: int
    kind: str
    label: str


def _is_wild(word: str) -> bool:
    return word == NUMBER or word.endswith("*")


@dataclass
class _Start:
    """The phrases that start with one plain word (see PhraseIndex)."""

    # one-word phrases: (kind, label)
    singles: list[tuple[str, str]] = field(default_factory=list)
    # longer phrases with a plain second word, by that second word
    pairs: dict[str, list[Pattern]] = field(default_factory=dict)
    # longer phrases whose second word is a wildcard ("for # days")
    wild_second: list[Pattern] = field(default_factory=list)


def _is_plain(pattern: Pattern) -> bool:
    return not any(map(_is_wild, pattern.words))


class PhraseIndex:
    """All vocabulary phrases, indexed so a message is scanned once, cheaply.

    Most phrases are one plain word (a dictionary hit) or start with two plain words
    (indexed by the pair, so common first words like "i" or "the" do not drag every
    phrase starting with them into the comparison). Wildcard starts are rare and kept
    in small side tables.

    find() runs on every word of every turn, hence its shape: one dictionary look-up
    per word finds everything that starts with that word (most words start nothing),
    and a phrase without wildcards is compared as one tuple slice.
    """

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self._starts: dict[str, _Start] = {}
        self._prefix: dict[str, list[Pattern]] = {}
        self._number: list[Pattern] = []
        # phrases without wildcards, which find() compares as whole tuples
        self._plain: set[int] = set()
        seen: set[tuple[tuple[str, ...], str, str]] = set()
        for pattern in patterns:
            key = (pattern.words, pattern.kind, pattern.label)
            if key in seen or not pattern.words:
                continue
            seen.add(key)
            first = pattern.words[0]
            if first == NUMBER:
                self._number.append(pattern)
            elif first.endswith("*"):
                self._prefix.setdefault(first[:PREFIX_MIN], []).append(pattern)
            elif len(pattern.words) == 1:
                self._starts.setdefault(first, _Start()).singles.append(
                    (pattern.kind, pattern.label))
            elif _is_wild(pattern.words[1]):
                self._starts.setdefault(first, _Start()).wild_second.append(pattern)
            else:
                start = self._starts.setdefault(first, _Start())
                start.pairs.setdefault(pattern.words[1], []).append(pattern)
            if _is_plain(pattern):
                self._plain.add(id(pattern))
        # Patterns are kept alive by the tables above, so their ids stay theirs.
        self.size = len(seen)

    def _matches_at(self, pattern: Pattern, words: tuple[str, ...], start: int) -> bool:
        end = start + len(pattern.words)
        if end > len(words):
            return False
        if id(pattern) in self._plain:
            return words[start:end] == pattern.words
        # A pattern word matches the same word, "#" any number, "word*" any word that
        # starts with "word". Equality is tested first for all three: a message word has
        # no "#" or "*", so it never equals a wildcard.
        for pattern_word, word in zip(pattern.words, words[start:end], strict=True):
            if pattern_word == word:
                continue
            if pattern_word == NUMBER:
                if not word.isdigit():
                    return False
            elif not (pattern_word.endswith("*") and word.startswith(pattern_word[:-1])):
                return False
        return True

    def find(self, words: Sequence[str]) -> list[Match]:
        """Every place a pattern matches (overlaps included), in word order."""
        words = tuple(words)  # a no-op for Words.words; slices compare with phrases
        found: list[Match] = []
        last = len(words) - 1
        for start, word in enumerate(words):
            # Per start: one-word phrases, then longer ones by their second word, by a
            # wildcard second word, by a prefix first word, by a number first word.
            candidates: list[Pattern] = []
            entry = self._starts.get(word)
            if entry is not None:
                for kind, label in entry.singles:
                    found.append(Match(start, start + 1, kind, label))
                if entry.pairs and start < last:
                    candidates += entry.pairs.get(words[start + 1], ())
                candidates += entry.wild_second
            if self._prefix:
                candidates += self._prefix.get(word[:PREFIX_MIN], ())
            if self._number and word.isdigit():
                candidates += self._number
            for pattern in candidates:
                if self._matches_at(pattern, words, start):
                    found.append(Match(start, start + len(pattern.words), pattern.kind,
                                       pattern.label))
        return found


# --- Signatures ---------------------------------------------------------------------------

_SIGNATURE_PERSON = b"escalator-sig"


# Every content word of every turn is hashed: copying a hasher whose parameters
# (digest size, personalisation) are set up once costs about half of building one per
# word, for the same digest.
_SIGNATURE_HASHER = hashlib.blake2b(digest_size=4, person=_SIGNATURE_PERSON)


def word_hash(word: str, bits: int) -> int:
    """A `bits`-bit one-way hash of one folded word (BLAKE2b, truncated)."""
    hasher = _SIGNATURE_HASHER.copy()
    hasher.update(word.encode("utf-8"))
    return int.from_bytes(hasher.digest(), "big") >> (32 - bits)


def signature(words: Iterable[str], size: int, bits: int) -> tuple[int, ...]:
    """A bottom-k MinHash sketch of a set of words: the `size` smallest word hashes, sorted.

    Why this shape: the order of words and any word beyond the `size` kept are dropped,
    and each hash is only `bits` wide (16 by default), so one value stands for many
    possible words of a whole vocabulary. A hash of a single word can still be guessed
    by hashing a dictionary (that is true of any word-level signature); the truncation
    makes each guess ambiguous rather than impossible, which is why callers also drop
    stop words and small talk before signing and never sign very short messages.
    """
    hashes = {word_hash(word, bits) for word in words}
    return tuple(sorted(hashes)[:size])


def similarity(a: Sequence[int], b: Sequence[int], size: int) -> float:
    """Estimated Jaccard similarity of the word sets behind two bottom-k sketches (0..1)."""
    if not a or not b:
        return 0.0
    shared = set(a).intersection(b)
    if not shared:
        return 0.0  # the usual case for two messages: no need to sort their union
    union = sorted(shared.union(a, b))[:size]
    return len(shared.intersection(union)) / len(union)


def pack_signature(hashes: Sequence[int], bits: int) -> str:
    """A sketch as a short ASCII string (2 or 4 bytes per hash, URL-safe base64)."""
    raw = struct.pack(f">{len(hashes)}{'H' if bits <= 16 else 'I'}", *hashes)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


# Every turn compares the new message with the remembered ones, so the same stored
# sketches are unpacked again and again; a small cache of sketches (hashes, never words)
# saves most of that.
@functools.lru_cache(maxsize=4096)
def unpack_signature(packed: str, bits: int) -> tuple[int, ...]:
    """Inverse of pack_signature(); an unreadable value gives an empty sketch."""
    width, code = (2, "H") if bits <= 16 else (4, "I")
    try:
        raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
    except (ValueError, TypeError):
        return ()
    if len(raw) % width:
        return ()
    return struct.unpack(f">{len(raw) // width}{code}", raw)


# Called for the bot's prompt id and the NLU intent of every turn: a bot has a few
# hundred of them, so a small cache (of ids and labels, never customer text) saves
# the hashing.
@functools.lru_cache(maxsize=4096)
def short_hash(label: str) -> str:
    """A 6-character one-way tag for an id or label (32-bit BLAKE2b), to keep memory small."""
    digest = hashlib.blake2b(label.encode("utf-8"), digest_size=4,
                             person=b"escalator-id").digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


# --- Language -----------------------------------------------------------------------------

UNDETERMINED = "und"


def normalise_language(code: str) -> str:
    """The primary subtag of a language tag, lower case ("pt-BR" -> "pt")."""
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary or UNDETERMINED


def detect_language(words: Sequence[str], casefolded: str,
                    stop_words: Mapping[str, tuple[str, ...]],
                    letters: Mapping[str, frozenset[str]],
                    min_votes: int, min_margin: int) -> str:
    """The language whose stop words and letters win the vote, or "und" when unsure."""
    votes: dict[str, int] = {}
    for word in words:
        for language in stop_words.get(word, ()):
            votes[language] = votes.get(language, 0) + 1
    for language, typical in letters.items():
        # The same test as `not typical.isdisjoint(casefolded)`, since `typical` holds
        # single characters: a few substring searches in C instead of a set look-up
        # for every character of the message, for each language.
        if any(letter in casefolded for letter in typical):
            votes[language] = votes.get(language, 0) + 1
    if not votes:
        return UNDETERMINED
    ranked = sorted(votes.items(), key=lambda item: item[1], reverse=True)
    best, best_votes = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if best_votes < min_votes or best_votes - runner_up < min_margin:
        return UNDETERMINED
    return best
