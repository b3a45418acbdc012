"""Loading the scoring vocabularies and parameters (rules/lexicons/*.yaml) into Lexicons.

Everything expensive (the phrase index, token sets, the VADER analyzer with the extra
words) is built here once, so scoring a turn only looks things up. Every file is
validated with marshmallow (unknown keys refused) and checked against the others;
all problems are reported together, each with its file and line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from escalator.errors import PolicyError, Problem
from escalator.ruleset.folder import FOLDER, RulesFolder, read_folder
from escalator.ruleset.problems import validation_problems
from escalator.ruleset.yamlfile import line_of, load_yaml
from escalator.scoring.fitted import FEATURES, FittedModel
from escalator.scoring.labels import intent_key, variant_suffix_pattern
from escalator.scoring.text import (
    Pattern,
    PhraseIndex,
    fold,
    pattern_problem,
    pattern_words,
)
from escalator.validators import Exactly

# Kinds of phrase in the shared index (see PhraseIndex).
CUE = "cue"
TOPIC = "topic"
QUESTION_OPENER = "question_opener"
ISSUE_MARKER = "issue_marker"
ISSUE_TOPIC = "issue_topic"
REQUEST = "request"
ASK = "ask"
ASK_AFTER = "ask_after"
POLITE = "polite"
PERSON = "person"
NEGATION = "negation"
NOT_NEGATION = "not_negation"
NOT_PERSON = "not_person"
NOT_REQUEST = "not_request"

# Cues measured from the text itself rather than from phrases.
MEASURED_CUES = frozenset({"shouting", "exclamation", "long_message"})

FILES = ("scoring.yaml", "languages.yaml", "frustration.yaml", "topics.yaml",
         "complexity.yaml", "requests.yaml", "sentiment.yaml", "fitted_frustration.yaml",
         "fitted_breakdown.yaml")
# The fitted layers' weights files (escalator fit writes them), by model name.
FITTED_FILES = {"frustration": "fitted_frustration.yaml", "breakdown": "fitted_breakdown.yaml"}

_LABEL = Exactly(
    r"^[a-z][a-z0-9_]*$",
    error="is not a label: labels are lower-case letters, digits and '_' "
          "(e.g. threat_to_leave)")
_LANGUAGE = Exactly(r"^[a-z]{2,3}$",
                   error="is not a language code: language codes are ISO 639-1 codes such "
                         "as en, es, de")


class _Phrase(fields.String):
    """A word or phrase; explains the YAML pitfall of unquoted no/yes/on/off and numbers."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise ValidationError(f"was read by YAML as {str(value).lower()}: put the word in "
                                  "quotes, e.g. \"no\"")
        if isinstance(value, int | float):
            raise ValidationError(f"was read by YAML as a number: put it in quotes, "
                                  f"e.g. \"{value}\"")
        return super()._deserialize(value, attr, data, **kwargs)


def _phrases(**kwargs: Any) -> fields.List[Any]:
    return fields.List(_Phrase(), **kwargs)


def _per_language(**kwargs: Any) -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=_LANGUAGE), values=_phrases(), **kwargs)


def _labelled(**kwargs: Any) -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=_LABEL), values=_per_language(), **kwargs)


def _fraction(**kwargs: Any) -> fields.Float:
    return fields.Float(required=True, validate=validate.Range(0, 1), **kwargs)


def _half_life() -> fields.Float:
    return fields.Float(required=True, validate=validate.Range(0.1, 1000))


def _count(lo: int, hi: int) -> fields.Integer:
    return fields.Integer(required=True, strict=True, validate=validate.Range(lo, hi))


# --- scoring.yaml ---------------------------------------------------------------------------

class _SentimentSchema(Schema):
    half_life_turns = _half_life()
    trend_window = _count(2, 20)
    negative_threshold = fields.Float(required=True, validate=validate.Range(-1, 1))


class _ShoutingSchema(Schema):
    min_letters = _count(1, 1000)
    min_upper_ratio = _fraction()
    segment_words = _count(1, 100)


class _ExclamationSchema(Schema):
    min_run = _count(2, 20)


class _LongMessageSchema(Schema):
    min_words = _count(1, 10000)


def _log_odds() -> fields.Float:
    return fields.Float(required=True, validate=validate.Range(-10, 10))


class _FrustrationSchema(Schema):
    half_life_turns = _half_life()
    baseline = _log_odds()
    negative_sentiment = _log_odds()
    positive_sentiment = _log_odds()
    cue_weights = fields.Dict(keys=fields.String(validate=_LABEL), values=_log_odds(),
                              required=True)
    shouting = fields.Nested(_ShoutingSchema, required=True)
    exclamation = fields.Nested(_ExclamationSchema, required=True)
    long_message = fields.Nested(_LongMessageSchema, required=True)


class _RampSchema(Schema):
    free = fields.Float(required=True, validate=validate.Range(0, 100000))
    saturation = fields.Float(required=True, validate=validate.Range(0, 100000))
    weight = _fraction()

    @validates_schema
    def _saturation_above_free(self, data: dict[str, Any], **_: Any) -> None:
        if data["saturation"] <= data["free"]:
            raise ValidationError("must be greater than free", "saturation")


class _ComplexitySchema(Schema):
    questions = fields.Nested(_RampSchema, required=True)
    issues = fields.Nested(_RampSchema, required=True)
    length = fields.Nested(_RampSchema, required=True)
    topic_weights = fields.Dict(keys=fields.String(validate=_LABEL), values=_fraction(),
                                required=True)


def _intents(**kwargs: Any) -> fields.List[Any]:
    return fields.List(_Phrase(validate=validate.Length(1, 64)), **kwargs)


class _IntentSchema(Schema):
    low_confidence_below = _fraction()
    not_understood = _intents(load_default=list)
    answers = _intents(load_default=list)
    rejection = _intents(load_default=list)


class _SignatureSchema(Schema):
    size = _count(1, 64)
    bits = _count(8, 32)
    min_words = _count(1, 100)
    min_content_words = _count(0, 100)


class _LoopWeightsSchema(Schema):
    repeat = fields.Float(required=True, validate=validate.Range(0, 10))
    fallback = fields.Float(required=True, validate=validate.Range(0, 10))
    bot_repeat = fields.Float(required=True, validate=validate.Range(0, 10))
    intent_repeat = fields.Float(required=True, validate=validate.Range(0, 10))
    oscillation = fields.Float(load_default=0.0, validate=validate.Range(0, 10))
    not_understood = fields.Float(load_default=0.0, validate=validate.Range(0, 10))
    rejection = fields.Float(load_default=0.0, validate=validate.Range(0, 10))
    # Progress: how much an answer lowers the level (0, the default, leaves it alone).
    answer = fields.Float(load_default=0.0, validate=validate.Range(0, 10))


class _LoopsSchema(Schema):
    half_life_turns = _half_life()
    repeat_similarity = fields.Float(required=True,
                                     validate=validate.Range(0, 1, min_inclusive=False))
    remember = _count(1, 32)
    signature = fields.Nested(_SignatureSchema, required=True)
    weights = fields.Nested(_LoopWeightsSchema, required=True)
    prompt_variants = fields.List(
        fields.String(validate=Exactly(
            r"^(?=.)[a-z0-9]*#?$",
            error="is not a variant suffix: those are lower-case letters and digits, "
                  "optionally ending in '#' (any number), e.g. retry or v#")),
        load_default=list)


class _RequestsSchema(Schema):
    max_gap = _count(0, 10)
    negation_window = _count(0, 20)
    alone_max_words = _count(1, 20)


class _LanguageParamsSchema(Schema):
    min_votes = _count(1, 100)
    min_margin = _count(0, 100)


class _ScoringFileSchema(Schema):
    sentiment = fields.Nested(_SentimentSchema, required=True)
    frustration = fields.Nested(_FrustrationSchema, required=True)
    complexity = fields.Nested(_ComplexitySchema, required=True)
    intent = fields.Nested(_IntentSchema, required=True)
    loops = fields.Nested(_LoopsSchema, required=True)
    requests = fields.Nested(_RequestsSchema, required=True)
    language = fields.Nested(_LanguageParamsSchema, required=True)


# --- vocabulary files -------------------------------------------------------------------------

class _LanguageEntrySchema(Schema):
    letters = fields.String(load_default="")
    stop_words = _phrases(required=True)
    small_talk = _phrases(load_default=list)
    markers = _phrases(load_default=list)


class _LanguagesFileSchema(Schema):
    languages = fields.Dict(keys=fields.String(validate=_LANGUAGE),
                            values=fields.Nested(_LanguageEntrySchema), required=True)


class _FrustrationFileSchema(Schema):
    cues = _labelled(required=True)


class _TopicsFileSchema(Schema):
    topics = _labelled(required=True)


class _ComplexityFileSchema(Schema):
    question_openers = _per_language(required=True)
    issue_markers = _per_language(required=True)
    issue_topics = _labelled(required=True)


class _RequestLanguageSchema(Schema):
    requests = _phrases(load_default=list)
    asks = _phrases(load_default=list)
    asks_after = _phrases(load_default=list)
    polite = _phrases(load_default=list)
    persons = _phrases(load_default=list)
    fillers = _phrases(load_default=list)
    negations = _phrases(load_default=list)
    not_negations = _phrases(load_default=list)
    not_persons = _phrases(load_default=list)
    not_requests = _phrases(load_default=list)


class _RequestsFileSchema(Schema):
    intents = fields.List(fields.String(validate=validate.Length(1, 128)), load_default=list)
    languages = fields.Dict(keys=fields.String(validate=_LANGUAGE),
                            values=fields.Nested(_RequestLanguageSchema), required=True)


class _SentimentFileSchema(Schema):
    valence = fields.Dict(
        keys=fields.String(validate=_LANGUAGE),
        values=fields.Dict(keys=_Phrase(), values=fields.Float(validate=validate.Range(-4, 4))),
        required=True)


# --- fitted_*.yaml (see escalator.scoring.fitted) -------------------------------------------

class _TermSchema(Schema):
    weight = fields.Float(required=True, validate=validate.Range(-50, 50))
    center = fields.Float(required=True, validate=validate.Range(-1000, 1000))


def _fitted_schema(kind: str) -> type[Schema]:
    """The schema of one model's weights file: only that model's features are known."""
    terms = Schema.from_dict({name: fields.Nested(_TermSchema) for name in FEATURES[kind]},
                             name=f"_{kind.title()}FeaturesSchema")

    class _FittedFileSchema(Schema):
        model = fields.String(required=True, validate=validate.OneOf(
            [kind], error=f"must be {kind} in this file"))
        intercept = fields.Float(required=True, validate=validate.Range(-50, 50))
        top = _count(0, 20)
        features = fields.Nested(terms, required=True)
        # How the weights were fitted (the command, the data, the cross-validation): a
        # record for people, not read by the service.
        fit = fields.Dict(keys=fields.String(), load_default=dict)

    return _FittedFileSchema


_SCHEMAS: dict[str, type[Schema]] = {
    **{file: _fitted_schema(model) for model, file in FITTED_FILES.items()},
    "scoring.yaml": _ScoringFileSchema,
    "languages.yaml": _LanguagesFileSchema,
    "frustration.yaml": _FrustrationFileSchema,
    "topics.yaml": _TopicsFileSchema,
    "complexity.yaml": _ComplexityFileSchema,
    "requests.yaml": _RequestsFileSchema,
    "sentiment.yaml": _SentimentFileSchema,
}


# --- the parameters, typed ---------------------------------------------------------------------

def decay_of(half_life_turns: float) -> float:
    """The per-turn factor that halves a weight every `half_life_turns` turns."""
    return math.pow(0.5, 1.0 / half_life_turns)


@dataclass(frozen=True)
class Ramp:
    """0 up to `free`, rising linearly to `weight` at `saturation`."""

    free: float
    saturation: float
    weight: float

    def __call__(self, amount: float) -> float:
        if amount <= self.free:
            return 0.0
        share = min(1.0, (amount - self.free) / (self.saturation - self.free))
        return self.weight * share


@dataclass(frozen=True)
class Params:
    """The numbers from scoring.yaml, with half-lives turned into per-turn decay factors."""

    sentiment_decay: float
    trend_window: int
    negative_threshold: float
    frustration_decay: float
    # Frustration weights are log-odds (see frustration.turn_score).
    frustration_baseline: float
    negative_sentiment_weight: float
    positive_sentiment_weight: float
    cue_weights: Mapping[str, float]
    shouting_min_letters: int
    shouting_min_upper_ratio: float
    shouting_segment_words: int
    exclamation_min_run: int
    long_message_min_words: int
    questions: Ramp
    issues: Ramp
    length: Ramp
    topic_weights: Mapping[str, float]
    low_confidence_below: float
    loop_decay: float
    repeat_similarity: float
    remember: int
    signature_size: int
    signature_bits: int
    signature_min_words: int
    signature_min_content_words: int
    repeat_weight: float
    fallback_weight: float
    bot_repeat_weight: float
    intent_repeat_weight: float
    oscillation_weight: float
    not_understood_weight: float
    rejection_weight: float
    # an answer lowers the loop level by this much (progress), never below 0
    answer_weight: float
    # matches the variant suffixes at the end of a prompt id ("ask_email_retry"), if any
    prompt_variant: re.Pattern[str] | None
    # intent names, normalised by intent_key()
    not_understood_intents: frozenset[str]
    answer_intents: frozenset[str]
    rejection_intents: frozenset[str]
    max_gap: int
    negation_window: int
    alone_max_words: int
    language_min_votes: int
    language_min_margin: int


def _params(data: Mapping[str, Any]) -> Params:
    s, f, c, lo, r = (data["sentiment"], data["frustration"], data["complexity"],
                      data["loops"], data["requests"])
    return Params(
        sentiment_decay=decay_of(s["half_life_turns"]),
        trend_window=s["trend_window"],
        negative_threshold=s["negative_threshold"],
        frustration_decay=decay_of(f["half_life_turns"]),
        frustration_baseline=f["baseline"],
        negative_sentiment_weight=f["negative_sentiment"],
        positive_sentiment_weight=f["positive_sentiment"],
        cue_weights=dict(f["cue_weights"]),
        shouting_min_letters=f["shouting"]["min_letters"],
        shouting_min_upper_ratio=f["shouting"]["min_upper_ratio"],
        shouting_segment_words=f["shouting"]["segment_words"],
        exclamation_min_run=f["exclamation"]["min_run"],
        long_message_min_words=f["long_message"]["min_words"],
        questions=Ramp(**c["questions"]),
        issues=Ramp(**c["issues"]),
        length=Ramp(**c["length"]),
        topic_weights=dict(c["topic_weights"]),
        low_confidence_below=data["intent"]["low_confidence_below"],
        loop_decay=decay_of(lo["half_life_turns"]),
        repeat_similarity=lo["repeat_similarity"],
        remember=lo["remember"],
        signature_size=lo["signature"]["size"],
        signature_bits=lo["signature"]["bits"],
        signature_min_words=lo["signature"]["min_words"],
        signature_min_content_words=lo["signature"]["min_content_words"],
        repeat_weight=lo["weights"]["repeat"],
        fallback_weight=lo["weights"]["fallback"],
        bot_repeat_weight=lo["weights"]["bot_repeat"],
        intent_repeat_weight=lo["weights"]["intent_repeat"],
        oscillation_weight=lo["weights"]["oscillation"],
        not_understood_weight=lo["weights"]["not_understood"],
        rejection_weight=lo["weights"]["rejection"],
        answer_weight=lo["weights"]["answer"],
        prompt_variant=variant_suffix_pattern(lo["prompt_variants"]),
        not_understood_intents=frozenset(map(intent_key, data["intent"]["not_understood"])),
        answer_intents=frozenset(map(intent_key, data["intent"]["answers"])),
        rejection_intents=frozenset(map(intent_key, data["intent"]["rejection"])),
        max_gap=r["max_gap"],
        negation_window=r["negation_window"],
        alone_max_words=r["alone_max_words"],
        language_min_votes=data["language"]["min_votes"],
        language_min_margin=data["language"]["min_margin"],
    )


@dataclass(frozen=True)
class Lexicons:
    """Everything the scorers need, validated and pre-built; shared read-only by all turns."""

    params: Params
    languages: tuple[str, ...]
    index: PhraseIndex
    # folded word -> the languages it votes for: its stop words, small talk and markers
    stop_words: Mapping[str, tuple[str, ...]]
    letters: Mapping[str, frozenset[str]]
    # words a repeat signature ignores: stop words and small talk of every language
    not_content: frozenset[str]
    fillers: frozenset[str]
    request_intents: frozenset[str]
    # the fitted layers (fitted_frustration.yaml, fitted_breakdown.yaml)
    frustration_model: FittedModel
    breakdown_model: FittedModel
    analyzer: SentimentIntensityAnalyzer = field(repr=False, compare=False)
    # words VADER gives a valence to, and the emoji it reads (for a cheap pre-check)
    vader_words: frozenset[str] = field(repr=False, compare=False)
    vader_emoji: frozenset[str] = field(repr=False, compare=False)


# --- loading -------------------------------------------------------------------------------

class _Collector:
    """Gathers problems from every file so a policy owner sees them all at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, file: str, node: Any, message: str, *, code: str,
            fallback: int | None = None) -> None:
        self.problems.append(Problem(file, line_of(node, fallback), message, code=code))


def _load_files(folder: RulesFolder, problems: _Collector,
                skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """Each file's (raw YAML, validated data); files with problems are left out, and so
    are the files in `skip` (not read at all)."""
    loaded: dict[str, tuple[Any, Any]] = {}
    if FOLDER in folder.refused:  # e.g. lexicons/ links out of the rules folder
        problems.problems.append(folder.refused[FOLDER].problem(str(folder.path)))
        return loaded
    problems.problems.extend(why.problem(str(folder.path / name))
                             for name, why in sorted(folder.refused.items())
                             # unread; named or not in FILES
                             if name.endswith(".yaml") and name not in skip)
    for name in FILES:
        if name in skip:
            continue
        display = str(folder.path / name)
        if name not in folder.files:
            if name not in folder.refused:
                problems.problems.append(Problem(display, None, "file is missing",
                                                 code="file_missing"))
            continue
        try:
            raw = load_yaml(folder.files[name], display)
        except PolicyError as exc:
            problems.problems.extend(exc.problems)
            continue
        if not isinstance(raw, Mapping):
            problems.add(display, raw, "the file must be a mapping of keys to values",
                         code="schema", fallback=1)
            continue
        try:
            data = _SCHEMAS[name]().load(raw)
        except ValidationError as exc:
            problems.problems.extend(validation_problems(exc, raw, display,
                                                         schema=_SCHEMAS[name]))
            continue
        loaded[name] = (raw, data)
    return loaded


def _check_phrases(file: str, raw: Any, data: Any, problems: _Collector, path: str = "") -> None:
    """Every phrase in a vocabulary must have words, and use '*' only to end a word."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            child = raw.get(key) if isinstance(raw, Mapping) else raw
            _check_phrases(file, child if child is not None else raw, value, problems,
                           f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for position, phrase in enumerate(data):
            if isinstance(phrase, str):
                problem = pattern_problem(phrase)
                if problem:
                    problems.add(file, raw, f"{path}[{position}]: {problem}", code="phrase")


def _words_of(phrases: list[str]) -> list[str]:
    """Single folded words from a list that may hold phrases ("s'il vous plaît")."""
    return [word for phrase in phrases for word in pattern_words(phrase)]


def load_lexicons(source: Path | RulesFolder, *, fitted: bool = True) -> Lexicons:
    """Load and validate rules/lexicons (the folder, or a read of it); raise PolicyError
    listing every problem found.

    fitted=False neither reads nor needs the fitted layers' files (their scores are then
    those of an empty model, 0.5): what `escalator fit` computes the features with, so a
    missing or broken weights file can be rebuilt."""
    folder = source if isinstance(source, RulesFolder) else read_folder(Path(source))
    directory = folder.path
    problems = _Collector()
    loaded = _load_files(folder, problems, () if fitted else tuple(FITTED_FILES.values()))

    for name in FILES[2:]:
        if name in loaded and name not in ("sentiment.yaml", *FITTED_FILES.values()):
            raw, data = loaded[name]
            _check_phrases(str(Path(directory) / name), raw, data, problems)
    _cross_check(Path(directory), loaded, problems)
    if problems.problems:
        raise PolicyError(problems.problems)
    return _build({name: data for name, (_, data) in loaded.items()})


def _cross_check(directory: Path, loaded: dict[str, tuple[Any, Any]],
                 problems: _Collector) -> None:
    """Labels must have weights (and weights labels); languages must be declared."""
    def name(file: str) -> str:
        return str(directory / file)

    declared: set[str] | None = None
    if "languages.yaml" in loaded:
        declared = set(loaded["languages.yaml"][1]["languages"])
    if declared is not None:
        for file, (raw, data) in loaded.items():
            for language, node in _language_uses(file, raw, data):
                if language not in declared:
                    problems.add(name(file), node,
                                 f"language {language!r} is not declared in languages.yaml",
                                 code="lexicon_mismatch")
    if "scoring.yaml" in loaded:
        raw_scoring, scoring = loaded["scoring.yaml"]
        pairs: tuple[tuple[str, str, str, str, frozenset[str]], ...] = (
            ("frustration.yaml", "cues", "frustration", "cue_weights", MEASURED_CUES),
            ("topics.yaml", "topics", "complexity", "topic_weights", frozenset()))
        for file, key, section, weights_key, measured in pairs:
            if file not in loaded:
                continue
            raw, data = loaded[file]
            labels = set(data[key])
            weights = set(scoring[section][weights_key])
            weights_node = raw_scoring[section][weights_key]
            for label in sorted(labels - weights):
                problems.add(name(file), raw[key][label],
                             f"{key}.{label}: no weight for this label in scoring.yaml "
                             f"({section}.{weights_key})", code="lexicon_mismatch")
            for label in sorted(weights - labels - measured):
                problems.add(name("scoring.yaml"), weights_node,
                             f"{section}.{weights_key}.{label}: no phrases for this label in "
                             f"{file}", code="lexicon_mismatch")


def _language_uses(file: str, raw: Any, data: Any) -> list[tuple[str, Any]]:
    """(language code, YAML node) for every per-language section of a file."""
    uses: list[tuple[str, Any]] = []
    if file in ("frustration.yaml", "topics.yaml"):
        key = "cues" if file == "frustration.yaml" else "topics"
        for label, per_language in data[key].items():
            uses += [(code, raw[key][label]) for code in per_language]
    elif file == "complexity.yaml":
        for key in ("question_openers", "issue_markers"):
            uses += [(code, raw[key]) for code in data[key]]
        for label, per_language in data["issue_topics"].items():
            uses += [(code, raw["issue_topics"][label]) for code in per_language]
    elif file == "requests.yaml":
        uses += [(code, raw["languages"]) for code in data["languages"]]
    elif file == "sentiment.yaml":
        uses += [(code, raw["valence"]) for code in data["valence"]]
    return uses


def _patterns(kind: str, label: str, phrases: list[str]) -> list[Pattern]:
    return [Pattern(pattern_words(phrase), kind, label) for phrase in phrases]


def _build(data: Mapping[str, Any]) -> Lexicons:
    params = _params(data["scoring.yaml"])
    languages = data["languages.yaml"]["languages"]

    stop_words: dict[str, list[str]] = {}
    not_content: set[str] = set()
    letters: dict[str, frozenset[str]] = {}
    for code, entry in languages.items():
        voters = entry["stop_words"] + entry["small_talk"] + entry["markers"]
        for word in _words_of(voters):
            if code not in stop_words.setdefault(word, []):
                stop_words[word].append(code)
        not_content.update(_words_of(entry["stop_words"]))
        not_content.update(_words_of(entry["small_talk"]))
        if entry["letters"]:
            letters[code] = frozenset(entry["letters"].casefold())

    patterns: list[Pattern] = []
    for label, per_language in data["frustration.yaml"]["cues"].items():
        for phrases in per_language.values():
            patterns += _patterns(CUE, label, phrases)
    for label, per_language in data["topics.yaml"]["topics"].items():
        for phrases in per_language.values():
            patterns += _patterns(TOPIC, label, phrases)
    complexity = data["complexity.yaml"]
    for phrases in complexity["question_openers"].values():
        patterns += _patterns(QUESTION_OPENER, "", phrases)
    for phrases in complexity["issue_markers"].values():
        patterns += _patterns(ISSUE_MARKER, "", phrases)
    for label, per_language in complexity["issue_topics"].items():
        for phrases in per_language.values():
            patterns += _patterns(ISSUE_TOPIC, label, phrases)

    requests = data["requests.yaml"]
    fillers: set[str] = set()
    kinds = (("requests", REQUEST), ("asks", ASK), ("asks_after", ASK_AFTER),
             ("polite", POLITE), ("persons", PERSON), ("negations", NEGATION),
             ("not_negations", NOT_NEGATION),
             ("not_persons", NOT_PERSON), ("not_requests", NOT_REQUEST))
    for entry in requests["languages"].values():
        for key, kind in kinds:
            patterns += _patterns(kind, "", entry[key])
        fillers.update(_words_of(entry["fillers"]))

    analyzer = SentimentIntensityAnalyzer()
    # Extra words are stored folded: score_turn hands VADER accent-folded text.
    for per_language in data["sentiment.yaml"]["valence"].values():
        for word, valence in per_language.items():
            if valence == 0:
                # Neutral means "not a sentiment word": removing it (rather than storing
                # 0) keeps compound()'s cheap exit for texts with no sentiment word.
                analyzer.lexicon.pop(fold(word).strip(), None)
            else:
                analyzer.lexicon[fold(word).strip()] = float(valence)

    return Lexicons(
        params=params,
        languages=tuple(sorted(languages)),
        index=PhraseIndex(patterns),
        stop_words={word: tuple(codes) for word, codes in stop_words.items()},
        letters=letters,
        not_content=frozenset(not_content),
        fillers=frozenset(fillers),
        request_intents=frozenset(requests["intents"]),
        frustration_model=_fitted(data, "frustration"),
        breakdown_model=_fitted(data, "breakdown"),
        analyzer=analyzer,
        vader_words=frozenset(analyzer.lexicon),
        vader_emoji=frozenset(analyzer.emojis),
    )


def _fitted(data: Mapping[str, Any], model: str) -> FittedModel:
    loaded = data.get(FITTED_FILES[model])
    if loaded is None:  # load_lexicons(fitted=False)
        return FittedModel(model, 0.0, (), 0)
    return FittedModel.of(model, loaded["intercept"],
                          {name: (term["weight"], term["center"])
                           for name, term in loaded["features"].items()},
                          loaded["top"])
